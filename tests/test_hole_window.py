"""Hole windows: the high-resolution decoder blocks run on the holes' bounding box in inference, and the result
equals the whole-map computation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from linop_core.model.hole_window import HALO, Window, composite, decoder_windows, hole_window, plan_windows
from linop_core.model.presets import build_generator, mat_small

ROUNDING = 5e-6  # relative to the output's range (a random mat-small paints with values up to ~20)


@pytest.fixture(scope="module")
def g() -> torch.nn.Module:
    """mat-small with random biases and noise strengths, so that every input of the decoder matters."""
    model = build_generator(mat_small(), seed=0).eval().requires_grad_(False)
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.endswith("weight"):
                param.add_(torch.randn(param.shape, generator=rng) * 0.2)
    return model


@pytest.fixture(autouse=True)
def direct_convs() -> Iterator[None]:
    """Compare like with like: the same (direct) conv algorithm with and without windows."""
    with torch.backends.nnpack.flags(enabled=False):
        yield


def test_window_geometry() -> None:
    w = Window(3, 9, 5, 12)
    assert w.area == 6 * 7
    assert w.halved() == Window(1, 5, 2, 6)
    assert w.halved().doubled() == Window(2, 10, 4, 12)
    assert w.grown(4, 12, 14) == Window(0, 12, 1, 14)
    x = torch.arange(20 * 20).reshape(1, 1, 20, 20)
    inner = Window(4, 8, 6, 10)
    assert torch.equal(inner.crop(x), x[..., 4:8, 6:10])
    assert torch.equal(inner.crop(w.grown(2, 20, 20).crop(x), origin=w.grown(2, 20, 20)), x[..., 4:8, 6:10])


def test_hole_window_covers_every_sample_and_soft_values() -> None:
    mask = torch.ones(2, 1, 32, 48)
    assert hole_window(mask) is None
    mask[0, :, 4:10, 20:30] = 0
    mask[1, :, 12, 3] = 0.5  # a soft edge still takes the network's output into account
    assert hole_window(mask) == Window(4, 13, 3, 30)


def test_plan_nests_windows_with_halo_and_stops_when_large() -> None:
    sizes = [(32, 32), (64, 64), (128, 128), (256, 256)]
    windows = plan_windows(Window(100, 120, 60, 90), sizes)
    assert all(w is not None for w in windows[1:])
    for i in range(1, len(sizes)):
        window, below = windows[i], windows[i - 1]
        assert window is not None
        height, width = sizes[i]
        assert window == window.halved().doubled()  # even-aligned: the output of an input window
        assert window.top >= 0 and window.bottom <= height and window.left >= 0 and window.right <= width
        if below is not None:  # the block below is exact wherever this block reads
            need = window.halved().grown(HALO, *sizes[i - 1])
            assert below.top <= need.top and need.bottom <= below.bottom
            assert below.left <= need.left and need.right <= below.right
    assert plan_windows(Window(0, 250, 0, 250), sizes) == [None] * 4
    assert plan_windows(None, sizes) == [None] * 4


def test_decoder_windows_only_without_autograd() -> None:
    mask = torch.ones(1, 1, 256, 256)
    mask[..., 100:120, 60:90] = 0
    sizes = [(64, 64), (128, 128), (256, 256)]
    with torch.no_grad():
        assert any(w is not None for w in decoder_windows(mask, sizes))
    assert decoder_windows(mask, sizes) == [None] * 3


def test_composite_with_window_equals_whole_map() -> None:
    gen = torch.Generator().manual_seed(0)
    img, out = torch.rand(2, 1, 16, 16, generator=gen), torch.rand(2, 1, 16, 16, generator=gen)
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, 5:9, 2:7] = 0
    mask[1, :, 4, 4] = 0.25
    window = Window(4, 10, 2, 8)
    assert torch.equal(composite(window.crop(out), img, mask, window), composite(out, img, mask, None))


def _masks(height: int, width: int) -> dict[str, torch.Tensor]:
    centre = torch.ones(1, 1, height, width)
    centre[..., 100:140, 90:150] = 0
    corner = torch.ones(1, 1, height, width)  # touches two image borders
    corner[..., : height // 5, width - width // 4 :] = 0
    two = torch.ones(2, 1, height, width)  # different holes per sample: their union box
    two[0, :, 30:60, 40:80] = 0
    two[1, :, 120:150, 100:130] = 0
    return {"centre": centre, "corner": corner, "two": two}


def _check_windowed_equals_whole_map(g: torch.nn.Module, mask: torch.Tensor, noise_mode: str, what: str) -> None:
    batch, _, height, width = mask.shape
    img = torch.rand(batch, 1, height, width, generator=torch.Generator().manual_seed(2)) * 2 - 1
    sizes = [(height >> s, width >> s) for s in (2, 1, 0)]
    with torch.no_grad():
        assert any(w is not None for w in decoder_windows(mask, sizes)), what  # windows are really used
        out, stage1 = g(img, mask, generator=torch.Generator().manual_seed(3), noise_mode=noise_mode,
                        return_stage1=True)
    with torch.enable_grad():  # autograd on: whole maps
        ref, ref1 = g(img, mask, generator=torch.Generator().manual_seed(3), noise_mode=noise_mode,
                      return_stage1=True)
    # Float rounding differs between map sizes; a halo error would be of the size of the signal.
    torch.testing.assert_close(out, ref, rtol=0, atol=ROUNDING * ref.abs().max().item(), msg=f"{what}: final")
    torch.testing.assert_close(stage1, ref1, rtol=0, atol=ROUNDING * ref1.abs().max().item(), msg=f"{what}: stage 1")


def test_windowed_generator_equals_whole_map(g: torch.nn.Module) -> None:
    _check_windowed_equals_whole_map(g, _masks(256, 256)["centre"], "random", "centre hole, random noise")


@pytest.mark.slow
@pytest.mark.parametrize("noise_mode", ["const", "none"])
def test_windowed_generator_noise_modes(g: torch.nn.Module, noise_mode: str) -> None:
    _check_windowed_equals_whole_map(g, _masks(256, 256)["centre"], noise_mode, f"centre hole, {noise_mode} noise")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["corner", "two"])
def test_windowed_generator_hole_placements(g: torch.nn.Module, where: str) -> None:
    _check_windowed_equals_whole_map(g, _masks(256, 256)[where], "random", where)


@pytest.mark.slow
def test_windowed_generator_non_square_and_without_holes(g: torch.nn.Module) -> None:
    mask = torch.ones(1, 1, 256, 512)
    mask[..., 180:230, 400:470] = 0
    _check_windowed_equals_whole_map(g, mask, "const", "non-square")  # const noise falls back to random here
    img = torch.rand(1, 1, 256, 512, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        untouched = g(img, torch.ones_like(mask), generator=torch.Generator().manual_seed(5))
    assert torch.equal(untouched, img)
