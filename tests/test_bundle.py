"""Bundling a trained generator (trainer.bundle): fp16 bundle, config copy, metrics from the run's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from linop_core.errors import LinopError
from linop_core.model.checkpoint import load_checkpoint, load_generator, save_checkpoint
from linop_core.model.presets import build_generator
from trainer import bundle
from trainer.config import load_config, shipped_config_path
from trainer.metrics_log import read_metrics
from trainer.networks import resolve_model_config


def _run(tmp_path: Path) -> tuple[Path, Path]:
    config_path = shipped_config_path("demo-mammo")
    train_config = load_config(config_path)
    model_config = resolve_model_config(train_config.model.preset, train_config.model.overrides)
    run = tmp_path / "run"
    snapshot = run / "snapshots" / "snapshot-000000.500kimg.pt"
    save_checkpoint(snapshot, config=model_config, preset=train_config.model.preset,
                    G_ema=build_generator(model_config, seed=1), extra={"training_kimg": 0.5})
    lines = [
        {"kind": "train", "kimg": 0.4, "nimg": 400, "time/sec_per_kimg": 812.3, "G/adv": 1.5, "D/total": 2.7},
        {"kind": "fid", "kimg": 0.5, "nimg": 500, "fid": 0.25, "fid_feature": "randconv-0-64", "num_images": 64},
        {"kind": "train", "kimg": 0.6, "nimg": 600, "time/sec_per_kimg": 790.0, "G/adv": 1.4, "D/total": 2.6},
        {"kind": "fid", "kimg": 0.75, "nimg": 750, "fid": 0.125, "fid_feature": "randconv-0-64", "num_images": 64},
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "tra'  # a run killed mid-write
    (run / "metrics.jsonl").write_text(text, encoding="utf-8")
    return snapshot, config_path


def test_bundle_writes_fp16_weights_config_copy_and_metrics(tmp_path: Path) -> None:
    snapshot, config_path = _run(tmp_path)
    out = tmp_path / "models" / "demo.pt"
    metrics = bundle.bundle(snapshot, config_path, out, machine="test box", selected_by="a test")

    payload = torch.load(out, map_location="cpu", weights_only=True)
    assert payload["metadata"]["storage_dtype"] == "float16" and payload["G"] is None
    assert load_checkpoint(out).metadata["training_kimg"] == 0.5
    original, _ = load_generator(snapshot)
    bundled, _ = load_generator(out)
    for a, b in zip(original.state_dict().values(), bundled.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a.half().float())
    assert out.with_suffix(".yaml").read_bytes() == config_path.read_bytes()

    written = json.loads(out.with_suffix(".metrics.json").read_text(encoding="utf-8"))
    assert written == metrics
    assert written["checkpoint_from"] == "run/snapshots/snapshot-000000.500kimg.pt"
    assert written["kimg"] == 0.5 and written["trained_kimg_total"] == 0.6
    assert written["fid_at_checkpoint"] == 0.25
    assert (written["best_fid"], written["best_fid_kimg"]) == (0.125, 0.75)
    assert written["sec_per_kimg_last_tick"] == 812.3  # the tick before the checkpoint, not after
    assert written["last_tick_losses"] == {"G/adv": 1.5, "D/total": 2.7}
    assert written["machine"] == "test box" and written["selected_by"] == "a test"


def test_bundle_refuses_a_config_of_another_model(tmp_path: Path) -> None:
    snapshot, _ = _run(tmp_path)
    with pytest.raises(LinopError, match="different model"):
        bundle.bundle(snapshot, shipped_config_path("smoke"), tmp_path / "x.pt", machine="m", selected_by="")
    assert not (tmp_path / "x.pt").exists()


def test_damaged_metrics_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "fid"}\nnot json\n{"kind": "fid"}\n', encoding="utf-8")
    with pytest.raises(LinopError, match=r"metrics.jsonl:2"):
        read_metrics(path)
