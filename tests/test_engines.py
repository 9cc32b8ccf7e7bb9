"""Engines: device choice, the biharmonic baseline, MAT determinism by seed, batching and out-of-memory retry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from linop_core.engines import BiharmonicEngine, Engine, MatEngine, pick_device
from linop_core.errors import LinopError, ModelError
from linop_core.masks import box_hole, random_mat_mask

# ----------------------------------------------------------------------------------------------- helpers


def _mat_small(channels: int = 1) -> tuple[nn.Module, object]:
    """A randomly initialised mat-small generator and an in-memory checkpoint record for it."""
    pytest.importorskip("linop_core.model.generator", reason="linop_core.model.generator (helper D) not present")
    import dataclasses

    from linop_core.model.checkpoint import Checkpoint
    from linop_core.model.presets import build_generator, config_to_dict, get_config

    cfg = dataclasses.replace(get_config("mat-small"), img_channels=channels)
    generator = build_generator(cfg, seed=0)
    checkpoint = Checkpoint(path=Path("in-memory"), format_version=1, preset="mat-small",
                            config_dict=config_to_dict(cfg), G_ema={})
    return generator, checkpoint


def _inputs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.stack([(0.3 + 0.4 * xx * yy + 0.05 * rng.random((size, size))) for _ in range(n)])
    keep = np.stack([random_mat_mask(rng, (size, size)) > 0.5 for _ in range(n)])
    return images.astype(np.float32), keep


class _FakeSynthesis(nn.Module):
    def keep_map_shapes(self, batch: int, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (batch, 4, 2), (batch, 2, 2, 2)

    def noise_shapes(self, height: int, width: int) -> dict[str, tuple[int, int]]:
        return {"dec.conv": (height, width)}


class _FakeGenerator(nn.Module):
    """Fills holes with a value derived from z; raises CUDA OOM for batches larger than ``max_batch``."""

    def __init__(self, max_batch: int) -> None:
        super().__init__()
        self.synthesis = _FakeSynthesis()
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []

    def forward(self, img: torch.Tensor, mask: torch.Tensor, z: torch.Tensor, **kwargs: object) -> torch.Tensor:
        self.batch_sizes.append(img.shape[0])
        if img.shape[0] > self.max_batch:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        fill = torch.tanh(z[:, :1, None, None]).expand_as(img)
        return img * mask + fill * (1 - mask)


class _FakeCheckpoint:
    path = None
    preset = "fake"

    class config:  # mimics Checkpoint.config
        resolution = 32
        img_channels = 1
        z_dim = 8


# ----------------------------------------------------------------------------------------------- device


def test_pick_device_auto_and_cpu() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device(None)
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif torch.backends.mps.is_available():
        assert auto.type == "mps"
    else:
        assert auto == torch.device("cpu")
    assert pick_device("auto") == auto


def test_pick_device_refuses_missing_devices() -> None:
    with pytest.raises(LinopError, match="not a device name"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(LinopError, match="cpu"):
            pick_device("cuda")
    else:
        with pytest.raises(LinopError, match="CUDA device"):
            pick_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(LinopError, match="MPS is not available"):
            pick_device("mps")


# ----------------------------------------------------------------------------------------------- biharmonic


def test_biharmonic_fills_holes_smoothly_and_ignores_seeds() -> None:
    engine = BiharmonicEngine(64)
    assert isinstance(engine, Engine)
    xx = np.mgrid[0:64, 0:64][1].astype(np.float32)
    ramp = (0.2 + 0.6 * xx / 63.0)[None].repeat(2, axis=0)
    keep = ~box_hole((64, 64), (16.0, 16.0, 48.0, 48.0))[None].repeat(2, axis=0)
    calls: list[tuple[int, int]] = []
    out = engine.generate(ramp, keep, [1, 2], progress=lambda d, t: calls.append((d, t)))
    assert out.dtype == np.float32 and out.shape == ramp.shape
    assert np.array_equal(out[keep], ramp[keep])
    assert np.abs(out - ramp).max() < 0.01  # a linear ramp is biharmonic: recovered
    assert np.array_equal(out[0], out[1])
    assert calls == [(1, 2), (2, 2)]
    prov = engine.provenance()
    assert prov["seed_used"] is False and "seeds do not change" in prov["note"]


def test_biharmonic_checks_sizes() -> None:
    engine = BiharmonicEngine(64, max_side=128)
    with pytest.raises(ValueError, match="multiple"):
        engine.generate(np.zeros((1, 50, 64), np.float32), np.ones((1, 50, 64), bool), [0])
    with pytest.raises(LinopError, match="128 px"):
        engine.generate(np.zeros((1, 192, 192), np.float32), np.ones((1, 192, 192), bool), [0])
    with pytest.raises(ValueError, match="one seed per image"):
        engine.generate(np.zeros((2, 64, 64), np.float32), np.ones((2, 64, 64), bool), [0])


# ----------------------------------------------------------------------------------------------- MAT


@pytest.mark.slow
def test_mat_is_deterministic_by_seed_and_batch_independent() -> None:
    # noise_mode "random" is the hard case: every candidate also draws per-layer noise.
    engine = MatEngine(_mat_small(), device="cpu", batch_size=2, noise_mode="random")
    assert engine.resolution == 256 and engine.model_name == "mat-small"
    images, keep = _inputs(2, 256)
    first = engine.generate(images, keep, [11, 12])
    assert first.shape == images.shape and first.dtype == np.float32
    assert np.array_equal(first[keep], images[keep])  # known pixels untouched
    assert first.min() >= 0.0 and first.max() <= 1.0
    pair = engine.generate(images[[1, 1]], keep[[1, 1]], [12, 99])
    alone = engine.generate(images[1:2], keep[1:2], [12])
    # Seed 12 gives the same candidate next to another seed, and alone (CPU kernels may differ in the last
    # float bits between batch sizes, hence the tolerance there).
    assert np.array_equal(pair[0], first[1])
    np.testing.assert_allclose(alone[0], first[1], atol=1e-4)
    # A different seed gives a different candidate.
    hole = ~keep[1]
    assert np.abs(pair[1] - pair[0])[hole].mean() > 1e-3


@pytest.mark.slow
def test_mat_rgb_model_gets_gray_replicated() -> None:
    engine = MatEngine(_mat_small(channels=3), device="cpu", batch_size=2)
    assert engine.img_channels == 3
    images, keep = _inputs(1, 256, seed=4)
    out = engine.generate(images, keep, [5])
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.array_equal(out[keep], images[keep])
    assert np.abs(out - images)[~keep].mean() > 1e-3


def test_mat_engine_loads_a_checkpoint_file_and_records_its_hash(tmp_path: Path) -> None:
    generator, checkpoint = _mat_small()
    from linop_core.hashing import sha256_file
    from linop_core.model.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "demo.pt", config=checkpoint.config, preset="mat-small", G_ema=generator)
    engine = MatEngine(path, device="cpu")
    assert engine.checkpoint_sha256 == sha256_file(path) and len(engine.checkpoint_sha256) == 64
    assert engine.model_name == "mat-small" and engine.resolution == 256 and engine.img_channels == 1
    prov = engine.provenance()
    assert prov["checkpoint_path"] == str(path) and prov["noise_mode"] == "const" and prov["seed_used"] is True
    with pytest.raises(ModelError):
        MatEngine(tmp_path / "missing.pt", device="cpu")


def test_mat_engine_halves_the_batch_on_out_of_memory() -> None:
    fake = _FakeGenerator(max_batch=2)
    engine = MatEngine((fake, _FakeCheckpoint()), device="cpu", batch_size=8)
    images, keep = _inputs(5, 32)
    progress: list[int] = []
    out = engine.generate(images, keep, [1, 2, 3, 4, 5], progress=lambda d, t: progress.append(d))
    assert fake.batch_sizes[:3] == [5, 2, 2]  # 5 fails -> halved to 2 and kept
    assert engine.batch_size == 2
    assert progress == [2, 4, 5]
    # The retried result equals candidate-by-candidate generation.
    single = MatEngine((_FakeGenerator(max_batch=1), _FakeCheckpoint()), device="cpu", batch_size=1)
    assert np.array_equal(out, single.generate(images, keep, [1, 2, 3, 4, 5]))


def test_mat_engine_out_of_memory_at_batch_one_says_what_to_do() -> None:
    engine = MatEngine((_FakeGenerator(max_batch=0), _FakeCheckpoint()), device="cpu", batch_size=4)
    images, keep = _inputs(2, 32)
    with pytest.raises(ModelError, match=r"out of memory on cpu even with batch size 1 .* \(device 'cpu'\)"):
        engine.generate(images, keep, [1, 2])


def test_mat_engine_passes_other_errors_through() -> None:
    class Broken(_FakeGenerator):
        def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
            raise RuntimeError("shape mismatch")

    engine = MatEngine((Broken(8), _FakeCheckpoint()), device="cpu")
    images, keep = _inputs(1, 32)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.generate(images, keep, [0])


def test_mat_engine_validates_options() -> None:
    with pytest.raises(LinopError, match="noise mode"):
        MatEngine((_FakeGenerator(1), _FakeCheckpoint()), device="cpu", noise_mode="loud")
    with pytest.raises(LinopError, match="float16 needs a GPU"):
        MatEngine((_FakeGenerator(1), _FakeCheckpoint()), device="cpu", dtype="float16")
