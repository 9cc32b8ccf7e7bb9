"""LINOP checkpoint format (linop_core.model.checkpoint)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from linop_core.errors import ModelError
from linop_core.hashing import sha256_file
from linop_core.model.checkpoint import (
    FORMAT_VERSION,
    atomic_torch_save,
    load_checkpoint,
    load_generator,
    save_checkpoint,
)


def _small_module(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    module[1].running_mean.normal_()
    return module


def test_round_trip_of_generic_modules(tmp_path: Path) -> None:
    g_ema, g, d = _small_module(0), _small_module(1), _small_module(2)
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, config={"resolution": 256, "depths": (1, 2)}, preset="mat-small", G_ema=g_ema, G=g,
                    D=d, extra={"training_kimg": 12.5, "notes": "unit test", "source": "scratch"})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind

    ckpt = load_checkpoint(path)
    assert ckpt.format_version == FORMAT_VERSION and ckpt.preset == "mat-small"
    assert ckpt.config_dict == {"resolution": 256, "depths": [1, 2]}
    for module, state in ((g_ema, ckpt.G_ema), (g, ckpt.G), (d, ckpt.D)):
        assert state is not None
        expected = module.state_dict()
        assert set(state) == set(expected)
        assert all(torch.equal(state[k], expected[k]) for k in expected)
    meta = ckpt.metadata
    assert meta["training_kimg"] == 12.5 and meta["notes"] == "unit test" and meta["source"] == "scratch"
    assert meta["storage_dtype"] == "float32" and meta["created"] and meta["app_version"]
    assert len(sha256_file(path)) == 64


def test_generator_only_and_half_storage(tmp_path: Path) -> None:
    torch.manual_seed(3)
    module = nn.Linear(256, 256)
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(full, config={}, preset="p", G_ema=module)
    save_checkpoint(half, config={}, preset="p", G_ema=module, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    ckpt = load_checkpoint(half)
    assert ckpt.G is None and ckpt.D is None and ckpt.metadata["storage_dtype"] == "float16"
    assert ckpt.G_ema["weight"].dtype == torch.float32
    torch.testing.assert_close(ckpt.G_ema["weight"], module.weight.detach(), rtol=1e-3, atol=1e-4)


def test_atomic_write_replaces_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    atomic_torch_save({"a": 1}, path)
    atomic_torch_save({"a": 2}, path)
    assert torch.load(path, weights_only=True) == {"a": 2}

    class Unsaveable:
        def __reduce__(self) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"a": Unsaveable()}, path)
    assert torch.load(path, weights_only=True) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def test_a_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "linop-mat", "format_version": 1, "G_ema": {}, "x": _Evil(f"touch {sentinel}")}, path)
    with pytest.raises(ModelError, match="refused by the safe loader"):
        load_checkpoint(path)
    assert not sentinel.exists()


def test_foreign_and_damaged_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    official = tmp_path / "Places_512_FullData.pkl"
    official.write_bytes(pickle.dumps({"G_ema": None}))
    with pytest.raises(ModelError, match=r"Places_512_FullData\.pkl.*linop-model import"):
        load_checkpoint(official)
    plain = tmp_path / "plain.pth"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(ModelError, match="not a LINOP checkpoint"):
        load_checkpoint(plain)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "linop-mat", "format_version": FORMAT_VERSION + 1, "G_ema": {}}, newer)
    with pytest.raises(ModelError, match="update LINOP"):
        load_checkpoint(newer)


# ---------------------------------------------------------------------------------------------------------
# With the real MAT networks (mat-small)


def _mat_small_inputs(cfg: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    img = torch.rand(1, cfg.img_channels, cfg.resolution, cfg.resolution, generator=gen) * 2 - 1
    mask = torch.ones(1, 1, cfg.resolution, cfg.resolution)
    mask[..., 64:160, 80:200] = 0
    z = torch.randn(1, cfg.z_dim, generator=gen)
    return img, mask, z


@pytest.mark.slow
def test_mat_small_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    presets = pytest.importorskip("linop_core.model.presets")
    cfg = presets.get_config("mat-small")
    generator = presets.build_generator(cfg, seed=0).eval()
    discriminator = presets.build_discriminator(cfg, seed=1).eval()
    path = tmp_path / "small.pt"
    save_checkpoint(path, config=cfg, preset="mat-small", G_ema=generator, D=discriminator)

    loaded, ckpt = load_generator(path, expected_preset="mat-small")
    assert ckpt.config == cfg
    img, mask, z = _mat_small_inputs(cfg, 2)
    with torch.no_grad():
        expected = generator(img, mask, z, generator=torch.Generator().manual_seed(5), noise_mode="const")
        actual = loaded(img, mask, z, generator=torch.Generator().manual_seed(5), noise_mode="const")
    assert torch.equal(actual, expected)

    from linop_core.model.checkpoint import load_discriminator

    d_loaded = load_discriminator(ckpt)
    expected_d = discriminator.state_dict()
    assert all(torch.equal(v, expected_d[k]) for k, v in d_loaded.state_dict().items())
    g_only = save_checkpoint(tmp_path / "g_only.pt", config=cfg, preset="mat-small", G_ema=generator)
    with pytest.raises(ModelError, match="no discriminator"):
        load_discriminator(load_checkpoint(g_only))


def test_preset_mismatch_names_file_and_both_presets(tmp_path: Path) -> None:
    presets = pytest.importorskip("linop_core.model.presets")
    cfg = presets.get_config("mat-small")
    path = tmp_path / "small.pt"
    save_checkpoint(path, config=cfg, preset="mat-small", G_ema=presets.build_generator(cfg, seed=0))
    with pytest.raises(ModelError) as info:
        load_checkpoint(path, expected_preset="mat-512-gray")
    message = str(info.value)
    assert str(path) in message and "mat-small" in message and "mat-512-gray" in message
    with pytest.raises(ModelError, match="unknown preset"):
        load_checkpoint(path, expected_preset="mat-1024")


def test_cli_info_on_preset_and_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    presets = pytest.importorskip("linop_core.model.presets")
    from linop_core.cli.model import main

    assert main(["info", "mat-512"]) == 0
    out = capsys.readouterr().out
    # the official model's sizes (MAT spec, section 2.3)
    for number in ("61,562,518", "2,101,248", "12,063,865", "36,231,618", "7,248,705"):
        assert number in out

    cfg = presets.get_config("mat-small")
    path = tmp_path / "small.pt"
    save_checkpoint(path, config=cfg, preset="mat-small", G_ema=presets.build_generator(cfg, seed=0),
                    extra={"training_kimg": 40.0, "notes": "demo"})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    total = sum(p.numel() for p in presets.build_generator(cfg).parameters())
    assert f"G_ema: {total:,} parameters" in out
    assert "D: not stored" in out and "training_kimg: 40.0" in out and "notes: demo" in out
    assert main(["info", str(tmp_path / "missing.pt")]) == 1
    assert "missing.pt" in capsys.readouterr().err
