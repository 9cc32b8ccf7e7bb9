"""The training loop on CPU: finite losses, FID checkpoint choice, exact resume, preset mismatch, 2-process gloo.

Every run is a handful of steps of mat-small shrunk to 64×64 (``model.overrides``) at batch 2 on a phantom root.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from linop_core.errors import ModelError
from linop_core.model.checkpoint import load_generator
from trainer.config import Config, load_config
from trainer.data import ensure_root
from trainer.distributed import DistInfo
from trainer.loop import Trainer
from trainer.run_files import load_training_state

CPU = DistInfo(rank=0, world=1, local_rank=0, device=torch.device("cpu"))


def tiny_overrides(root: Path, steps: int, batch: int = 2, batch_gpu: int = 2) -> list[str]:
    kimg = steps * batch / 1000
    return [
        f"data.root={root}",
        "data.phantom.n=4",
        "data.resolution=64",
        "model.overrides.resolution=64",
        "model.overrides.stage1_tokens=16",
        f"train.batch={batch}",
        f"train.batch_gpu={batch_gpu}",
        f"train.total_kimg={kimg}",
        "optim.d_reg_interval=2",  # R1 on every other step, so resume crosses an R1 step
        f"eval.every_kimg={2 * batch / 1000}",
        "eval.num_images=4",
        "eval.batch=4",
        f"log.tick_kimg={batch / 1000}",
        f"log.checkpoint_kimg={2 * batch / 1000}",
        "log.snapshot_kimg=1000",
        "log.image_kimg=1000",
    ]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """One intra-op thread: on a shared 2-core machine, OpenMP threads fighting over cores cost 10-20x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loop_data") / "mammo"
    ensure_root(load_config("smoke", [f"data.root={path}", "data.phantom.n=4"]).data)
    return path


def _config(root: Path, steps: int, *extra: str) -> Config:
    return load_config("smoke", [*tiny_overrides(root, steps), *extra])


def _assert_same_state(a: dict, b: dict) -> None:
    for name in ("G", "D", "G_ema"):
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
    for name in ("opt_G", "opt_D"):
        for index, state in a[name]["state"].items():
            for key, value in state.items():
                torch.testing.assert_close(value, b[name]["state"][index][key], rtol=1e-5, atol=1e-6)
    assert a["cur_nimg"] == b["cur_nimg"] and a["step"] == b["step"]


@pytest.mark.slow
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(root: Path, tmp_path: Path) -> None:
    steps = 3
    straight = Trainer(_config(root, steps), tmp_path / "straight", CPU).run()
    assert straight["kimg"] == pytest.approx(0.006) and not straight["stopped"]

    first = Trainer(_config(root, steps), tmp_path / "resumed", CPU)
    first.should_stop = lambda: first.step >= 1
    summary = first.run()
    assert summary["stopped"] and load_training_state(tmp_path / "resumed" / "last.pt")["step"] == 1
    resumed = Trainer(_config(root, steps), tmp_path / "resumed", CPU, resume=True).run()
    assert not resumed["stopped"] and resumed["step"] == steps

    a = load_training_state(tmp_path / "straight" / "last.pt")
    b = load_training_state(tmp_path / "resumed" / "last.pt")
    _assert_same_state(a, b)
    assert a["best_fid"] == pytest.approx(b["best_fid"], rel=1e-5)

    # Losses are finite, learning rates carry the lazy-regularisation correction, FID carries its extractor.
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == steps
    for record in train:
        for key in ("G/adv", "G/l1", "D/total"):
            assert math.isfinite(record[key])
    assert train[0]["lr/G"] == pytest.approx(1e-3 * 4 / 5) and train[0]["lr/D"] == pytest.approx(1e-3 * 2 / 3)
    assert any("D/r1" in r for r in train)
    fids = [r for r in records if r["kind"] == "fid"]
    assert fids and all(r["fid_feature"] == "randconv-0-64" and math.isfinite(r["fid"]) for r in fids)
    resumed_records = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["nimg"] for r in resumed_records if '"train"' in r] == [2, 4, 6]  # no duplicates

    # best.pt is a generator checkpoint the synthesis engine can load.
    generator, checkpoint = load_generator(tmp_path / "straight" / "best.pt")
    assert checkpoint.metadata["fid_feature"] == "randconv-0-64"
    assert checkpoint.metadata["fid"] == pytest.approx(a["best_fid"])
    out = generator(torch.zeros(1, 1, 64, 64), torch.ones(1, 1, 64, 64))
    assert out.shape == (1, 1, 64, 64) and torch.isfinite(out).all()

    # A resume that asks for another model stops before building anything, naming the checkpoint.
    with pytest.raises(ModelError, match=r"last\.pt.*preset"):
        Trainer(_config(root, steps, "model.preset=mat-256"), tmp_path / "resumed", CPU, resume=True)

    # --init from our own state starts a new run with those weights.
    init = Trainer(_config(root, 1, f"model.init={tmp_path / 'straight' / 'last.pt'}", "eval.every_kimg=0"),
                   tmp_path / "init", CPU)
    torch.testing.assert_close(init.G_ema.state_dict(), a["G_ema"])
    assert init.cur_nimg == 0


@pytest.mark.slow
def test_two_process_gloo_run(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    overrides = tiny_overrides(root, steps=2, batch=2, batch_gpu=1)
    command = [sys.executable, "-m", "trainer.train", "--gpus", "2", "--device", "cpu", "--no-progress",
               "--config", "smoke", "--out", str(out)]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=170, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_training_state(out / "last.pt")
    assert state["world"] == 2 and len(state["rng"]) == 2
    assert state["cur_nimg"] == 4 and state["step"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["G/adv"]) for r in records if r["kind"] == "train")
    assert any(r["kind"] == "fid" for r in records)
