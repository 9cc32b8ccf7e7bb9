"""Safe import of official MAT weights (linop_core.model.official).

The fixtures imitate the official snapshots without the official code: a fake ``torch_utils.persistence``
module is put in ``sys.modules`` only while a fixture pickle is *written*; its reconstructor ``exec``s the
embedded source exactly like the real one, so a plain ``pickle.load`` of the fixture runs that source.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from linop_core.errors import ModelError
from linop_core.model.official import (
    UnsafePickleError,
    detect_generator_layout,
    official_to_linop,
    read_official,
    rgb_to_gray_discriminator,
    rgb_to_gray_generator,
)


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:
    """What the official reconstructor does: exec the embedded source, then rebuild the object."""
    module = types.ModuleType("_imported_module_")
    exec(meta["module_src"], module.__dict__)
    obj = getattr(module, meta["class_name"]).__new__(getattr(module, meta["class_name"]))
    obj.__setstate__(meta["state"])
    return obj


@pytest.fixture
def fake_persistence(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    package = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    package.persistence = persistence  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    return persistence


def _module_src(sentinel: Path) -> str:
    return (
        "import torch\n"
        f"open({str(sentinel)!r}, 'w').write('the embedded source ran')\n"
        "class Net(torch.nn.Module):\n"
        "    pass\n"
    )


class PersistentNet(nn.Module):
    """Pickles like an official persistent class: a call to the reconstructor with source and state."""

    def __init__(self, module_src: str, **children: nn.Module) -> None:
        super().__init__()
        self._module_src = module_src
        for name, child in children.items():
            self.add_module(name, child)

    def __reduce__(self) -> tuple[Any, ...]:
        meta = dict(type="class", version=6, module_src=self._module_src, class_name="Net", state=dict(self.__dict__))
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def _tiny_official_net(module_src: str) -> nn.Module:
    torch.manual_seed(0)
    leaf = PersistentNet(module_src)
    leaf.weight = nn.Parameter(torch.randn(4, 3))
    leaf.register_buffer("resample_filter", torch.ones(4, 4) / 16)
    leaf.register_buffer("scratch", torch.zeros(2), persistent=False)
    blocks = nn.ModuleList([PersistentNet(module_src), nn.Softmax(dim=-1)])
    blocks[0].bias = nn.Parameter(torch.randn(5))
    blocks[0].register_buffer("attn_mask", torch.zeros(2, 3, 3))
    root = PersistentNet(module_src, leaf=leaf, blocks=blocks, pool=nn.Sequential(nn.AdaptiveAvgPool2d(1)))
    root.noise_strength = nn.Parameter(torch.zeros([]))
    return root.eval().requires_grad_(False)


def _write_snapshot(path: Path, networks: dict[str, Any]) -> None:
    snapshot = {"training_set_kwargs": {"resolution": 512}, "augment_pipe": None, **networks}
    with open(path, "wb") as f:
        pickle.dump(snapshot, f)


def test_reads_persistent_snapshot_without_running_embedded_source(
    tmp_path: Path, fake_persistence: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = tmp_path / "sentinel.txt"
    net = _tiny_official_net(_module_src(sentinel))
    path = tmp_path / "snapshot.pkl"
    _write_snapshot(path, {"G_ema": net, "G": net, "D": net})
    expected = net.state_dict()
    # Reading must not need (or touch) the official modules.
    monkeypatch.delitem(sys.modules, "torch_utils")
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")

    weights = read_official(path)

    assert not sentinel.exists()
    assert weights.layout == "pickle"
    assert set(weights.networks) == {"G_ema", "G", "D"}
    state = weights.networks["G_ema"]
    assert set(state) == set(expected)  # the non-persistent buffer is not part of it
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert "blocks.0.attn_mask" not in official_to_linop(state)
    assert weights.sha256 and len(weights.sha256) == 64


def test_plain_pickle_load_of_the_fixture_would_run_its_source(
    tmp_path: Path, fake_persistence: types.ModuleType
) -> None:
    # Guards the fixture itself: with the reconstructor importable, pickle.load does execute the source.
    sentinel = tmp_path / "sentinel.txt"
    path = tmp_path / "snapshot.pkl"
    _write_snapshot(path, {"G_ema": PersistentNet(_module_src(sentinel))})
    with open(path, "rb") as f:
        pickle.load(f)
    assert sentinel.exists()


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def test_refuses_reduce_to_os_system_before_it_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    _write_snapshot(path, {"G_ema": {"weight": torch.zeros(2), "x": _Evil(f"touch {sentinel}")}})
    with pytest.raises(UnsafePickleError, match=r"system.*could run code") as info:
        read_official(path)
    assert str(path) in str(info.value)
    assert not sentinel.exists()


class _EvilStorage:
    """Storage bytes that torch's own _load_from_bytes would unpickle with weights_only=False."""

    def __init__(self, command: str) -> None:
        self.payload = pickle.dumps(_Evil(command), protocol=2)

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch.storage._load_from_bytes, (self.payload,))


def test_storage_bytes_are_loaded_weights_only(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil_storage.pkl"
    _write_snapshot(path, {"G_ema": {"weight": _EvilStorage(f"touch {sentinel}")}})
    with pytest.raises(ModelError):
        read_official(path)
    assert not sentinel.exists()


@pytest.mark.parametrize("global_name", ["builtins\neval", "builtins\ngetattr", "torch\nload", "numpy\nload"])
def test_refuses_other_globals(tmp_path: Path, global_name: str) -> None:
    path = tmp_path / "global.pkl"
    # protocol-0 GLOBAL opcode followed by STOP: the refusal must come from find_class itself
    path.write_bytes(b"c" + global_name.encode() + b"\n.")
    with pytest.raises(UnsafePickleError, match=global_name.replace("\n", ".")):
        read_official(path)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_converted_state_dict_pth(tmp_path: Path, zip_format: bool) -> None:
    state = {
        "mapping.fc0.weight": torch.randn(512, 512),
        "mapping.fc1.weight": torch.randn(512, 512),
        "synthesis.first_stage.conv_first.conv.weight": torch.randn(180, 4, 3, 3),
        "synthesis.enc.EncConv_Block_512x512.conv0.weight": torch.randn(64, 7, 1, 1),
        "synthesis.enc.EncConv_Block_256x256.conv0.weight": torch.randn(128, 64, 3, 3),
    }
    path = tmp_path / "Places_512_FullData_G.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    weights = read_official(path)
    assert weights.layout == "state_dict" and list(weights.networks) == ["G_ema"]
    layout = detect_generator_layout(weights.networks["G_ema"])
    assert (layout.resolution, layout.img_channels, layout.mapping_layers) == (512, 3, 2)


def test_pth_with_code_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "x": _Evil(f"touch {sentinel}")}, path)
    with pytest.raises(ModelError, match="refused or unreadable"):
        read_official(path)
    assert not sentinel.exists()


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="file not found"):
        read_official(tmp_path / "absent.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(ModelError, match="junk.pkl"):
        read_official(junk)


def test_rgb_to_gray_sums_inputs_and_averages_outputs() -> None:
    gen = torch.Generator().manual_seed(1)
    g = {
        "mapping.fc0.weight": torch.randn(8, 8, generator=gen),
        "synthesis.first_stage.conv_first.conv.weight": torch.randn(6, 4, 3, 3, generator=gen),
        "synthesis.enc.EncConv_Block_512x512.conv0.weight": torch.randn(5, 7, 1, 1, generator=gen),
        "synthesis.dec.Dec_16x16.toRGB.conv.weight": torch.randn(1, 3, 5, 1, 1, generator=gen),
        "synthesis.dec.Dec_16x16.toRGB.bias": torch.randn(3, generator=gen),
        "synthesis.dec.Dec_16x16.toRGB.conv.affine.weight": torch.randn(5, 9, generator=gen),
    }
    gray = rgb_to_gray_generator(g)
    # A gray image replicated to RGB gives the same first-layer response as the summed 1-channel weights.
    x = torch.randn(1, 1, 8, 8, generator=gen)
    mask = torch.ones(1, 1, 8, 8)
    rgb_in = torch.cat([mask, x.repeat(1, 3, 1, 1)], 1)
    gray_in = torch.cat([mask, x], 1)
    w_first = "synthesis.first_stage.conv_first.conv.weight"

    def effective(weight: torch.Tensor) -> torch.Tensor:  # equalized learning rate: 1/sqrt(fan_in)
        return weight / weight[0].numel() ** 0.5

    torch.testing.assert_close(
        torch.conv2d(gray_in, effective(gray[w_first]), padding=1),
        torch.conv2d(rgb_in, effective(g[w_first]), padding=1),
    )
    enc = "synthesis.enc.EncConv_Block_512x512.conv0.weight"
    assert gray[enc].shape == (5, 3, 1, 1)
    torch.testing.assert_close(effective(gray[enc])[:, 2], effective(g[enc])[:, 4:7].sum(1))
    torch.testing.assert_close(
        gray["synthesis.dec.Dec_16x16.toRGB.conv.weight"],
        g["synthesis.dec.Dec_16x16.toRGB.conv.weight"].mean(1, keepdim=True),
    )
    torch.testing.assert_close(
        gray["synthesis.dec.Dec_16x16.toRGB.bias"], g["synthesis.dec.Dec_16x16.toRGB.bias"].mean().reshape(1)
    )
    assert torch.equal(
        gray["synthesis.dec.Dec_16x16.toRGB.conv.affine.weight"], g["synthesis.dec.Dec_16x16.toRGB.conv.affine.weight"]
    )
    with pytest.raises(ModelError, match="3-channel"):
        rgb_to_gray_generator(gray)

    d = {
        "Dis.0.conv.weight": torch.randn(4, 4, 1, 1, generator=gen),
        "Dis_stg1.0.conv.weight": torch.randn(2, 4, 1, 1, generator=gen),
    }
    d_gray = rgb_to_gray_discriminator(d)
    assert d_gray["Dis.0.conv.weight"].shape == (4, 2, 1, 1)
    torch.testing.assert_close(d_gray["Dis_stg1.0.conv.weight"][:, 1] / 2**0.5,
                               d["Dis_stg1.0.conv.weight"][:, 1:].sum(1) / 4**0.5)


# ---------------------------------------------------------------------------------------------------------
# With the real MAT networks (a 3-channel variant of mat-small stands in for the official RGB model)


@pytest.mark.slow
def test_gray_conversion_keeps_stage1_and_discriminator_of_replicated_gray() -> None:
    import dataclasses

    presets = pytest.importorskip("linop_core.model.presets")
    # mat-small shrunk to 128 px (same 32-token grid) keeps this test quick
    gray_cfg = dataclasses.replace(presets.get_config("mat-small"), resolution=128)
    rgb_cfg = dataclasses.replace(gray_cfg, img_channels=3)
    g_rgb = presets.build_generator(rgb_cfg, seed=0).eval()
    d_rgb = presets.build_discriminator(rgb_cfg, seed=1).eval()
    g_gray = presets.build_generator(gray_cfg).eval()
    d_gray = presets.build_discriminator(gray_cfg).eval()
    g_gray.load_state_dict(rgb_to_gray_generator(g_rgb.state_dict(), 3))
    d_gray.load_state_dict(rgb_to_gray_discriminator(d_rgb.state_dict(), 3))

    gen = torch.Generator().manual_seed(2)
    res = gray_cfg.resolution
    gray = torch.rand(1, 1, res, res, generator=gen) * 2 - 1
    mask = torch.ones(1, 1, res, res)
    mask[..., 20:75, 30:110] = 0
    ws = g_rgb.mapping(torch.randn(1, gray_cfg.z_dim, generator=gen))
    keep1, _ = g_rgb.synthesis.keep_map_shapes(1, res, res)
    keep = torch.empty(keep1).bernoulli_(0.5, generator=gen)
    with torch.no_grad():
        stage1_rgb = g_rgb.synthesis.first_stage(gray.repeat(1, 3, 1, 1), mask, ws, keep_map=keep)
        stage1_gray = g_gray.synthesis.first_stage(gray, mask, ws, keep_map=keep)
        # The whole stage 1 is linear in the ToRGB outputs: the gray image is the mean of the RGB one.
        torch.testing.assert_close(stage1_gray, stage1_rgb.mean(dim=1, keepdim=True), atol=1e-5, rtol=1e-5)
        # D's first layer (and so all of D) sees the same features for gray and replicated-gray input.
        for trunk in ("Dis", "Dis_stg1"):
            rgb_in = torch.cat([mask - 0.5, gray.repeat(1, 3, 1, 1)], dim=1)
            gray_in = torch.cat([mask - 0.5, gray], dim=1)
            torch.testing.assert_close(getattr(d_gray, trunk)[0](gray_in), getattr(d_rgb, trunk)[0](rgb_in),
                                       atol=1e-5, rtol=1e-5)


def test_import_of_a_converted_generator_pth(tmp_path: Path) -> None:
    presets = pytest.importorskip("linop_core.model.presets")
    from linop_core.cli.model import main
    from linop_core.model.checkpoint import load_generator

    cfg = presets.get_config("mat-small")
    generator = presets.build_generator(cfg, seed=3)
    state = generator.state_dict()
    # the official layout also stores the shifted-window attention masks; they are dropped on import
    state["synthesis.first_stage.tran.0.blocks.1.attn_mask"] = torch.zeros(16, 64, 64)
    source = tmp_path / "small_G.pth"
    torch.save(state, source)
    out = tmp_path / "small.pt"
    assert main(["import", str(source), "--out", str(out), "--notes", "pth test"]) == 0
    loaded, ckpt = load_generator(out, expected_preset="mat-small")
    assert ckpt.D is None and ckpt.metadata["notes"] == "pth test"
    assert ckpt.metadata["source"].startswith("imported from small_G.pth sha256=")
    expected = generator.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    # a preset that does not fit the weights is refused with the fix
    assert main(["import", str(source), "--out", str(tmp_path / "x.pt"), "--preset", "mat-512"]) == 1
    assert not (tmp_path / "x.pt").exists()
