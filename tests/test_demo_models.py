"""The bundled demo checkpoints: found by demo_model_path, safe to load, true to their config, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from linop_core import demo_models
from linop_core.demo_models import DEMO_MODEL_FILES, demo_model_path
from linop_core.engines import MatEngine
from linop_core.model.checkpoint import load_checkpoint, load_generator
from linop_core.model.presets import config_to_dict
from trainer.config import load_config
from trainer.networks import resolve_model_config

MAX_BYTES = 25 * 1024 * 1024
TASKS = {"inpaint": "mammo-inpaint", "outpaint": "cxr-outpaint"}


def _bundled(task: str) -> Path:
    path = demo_model_path(task)  # type: ignore[arg-type]
    assert path is not None, f"the {task} demo model is not in resources/models"
    return path


@pytest.mark.parametrize("task", sorted(TASKS))
def test_demo_model_is_bundled_small_and_documented(task: str) -> None:
    path = _bundled(task)
    assert path.name == DEMO_MODEL_FILES[task]
    assert path.stat().st_size <= MAX_BYTES
    stem = path.name.removesuffix(".pt")
    assert (path.parent / f"{stem}.yaml").is_file()
    metrics = json.loads((path.parent / f"{stem}.metrics.json").read_text(encoding="utf-8"))
    assert metrics["kimg"] > 0 and metrics["fid_feature"]
    trained_with = (path.parent / "TRAINED_WITH.md").read_text(encoding="utf-8")
    assert f"trainer/configs/demo-{TASKS[task].split('-')[0]}.yaml" in trained_with


@pytest.mark.parametrize("task", sorted(TASKS))
def test_demo_model_loads_weights_only_and_matches_its_config(task: str) -> None:
    path = _bundled(task)
    payload = torch.load(path, map_location="cpu", weights_only=True)  # raises if anything but data is pickled
    assert payload["metadata"]["storage_dtype"] == "float16"
    checkpoint = load_checkpoint(path)
    assert checkpoint.G is None and checkpoint.D is None  # an inference bundle
    assert checkpoint.metadata["training_kimg"] > 0
    train_config = load_config(path.with_name(path.name.removesuffix(".pt") + ".yaml"))
    assert train_config.data.task == TASKS[task]
    assert checkpoint.preset == train_config.model.preset
    expected = resolve_model_config(train_config.model.preset, train_config.model.overrides)
    assert config_to_dict(checkpoint.config) == config_to_dict(expected)
    generator, _ = load_generator(path)  # strict: every weight fits the config
    assert sum(p.numel() for p in generator.parameters()) > 0


@pytest.mark.parametrize("task", sorted(TASKS))
def test_demo_model_output_is_deterministic_per_seed(task: str) -> None:
    engine = MatEngine(_bundled(task), device="cpu")
    res = engine.resolution
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) / res
    image = (0.3 + 0.4 * xx * yy)[None].repeat(2, axis=0)
    keep = np.ones((2, res, res), dtype=bool)
    keep[:, res // 4 : res // 2, res // 4 : res // 2] = False
    first = engine.generate(image, keep, [7, 8])
    again = engine.generate(image, keep, [7, 8])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[0], first[1])  # the seed matters
    np.testing.assert_array_equal(first[:, keep[0]], image[:, keep[0]])  # known pixels pass through
    assert np.isfinite(first).all() and first.min() >= 0.0 and first.max() <= 1.0


def test_demo_model_path_searches_the_folders_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.setattr(demo_models, "demo_model_dirs", lambda: [first, second])
    assert demo_model_path("inpaint") is None
    (second / DEMO_MODEL_FILES["inpaint"]).write_bytes(b"x")
    assert demo_model_path("inpaint") == second / DEMO_MODEL_FILES["inpaint"]
    (first / DEMO_MODEL_FILES["inpaint"]).write_bytes(b"x")
    assert demo_model_path("inpaint") == first / DEMO_MODEL_FILES["inpaint"]
    assert demo_model_path("outpaint") is None


def test_demo_model_path_rejects_unknown_tasks() -> None:
    with pytest.raises(ValueError, match="inpaint, outpaint"):
        demo_model_path("segment")  # type: ignore[arg-type]
