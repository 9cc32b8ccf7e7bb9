"""Masks: MAT's random hole generator (statistics of the reference), box holes, outpaint masks, feathering."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from linop_core.masks import (
    box_hole,
    feather,
    feather_region,
    lesion_shaped_hole,
    outpaint_keep_mask,
    random_brush,
    random_mat_mask,
)


def _hole_ratios(n: int, shape: tuple[int, int], variant: str = "large", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([1.0 - random_mat_mask(rng, shape, variant=variant).mean() for _ in range(n)])


def test_mat_mask_hole_ratio_matches_reference_statistics(record_property: pytest.RecordProperty) -> None:
    # mat-architecture.md 5.1, measured on the reference generator: 512 large mean 0.40, median 0.40.
    rng = np.random.default_rng(11)
    start = time.perf_counter()
    masks = [random_mat_mask(rng, (512, 512)) for _ in range(200)]
    per_mask_ms = (time.perf_counter() - start) / len(masks) * 1e3
    record_property("ms_per_512_mask", round(per_mask_ms, 2))
    ratios = np.array([1.0 - m.mean() for m in masks])
    assert abs(ratios.mean() - 0.40) < 0.05
    assert abs(np.median(ratios) - 0.40) < 0.06
    assert 0.10 < np.percentile(ratios, 10) < 0.25
    assert 0.55 < np.percentile(ratios, 90) < 0.72
    assert ratios.min() > 0.0 and ratios.max() < 1.0
    m = masks[0]
    assert m.dtype == np.float32 and m.shape == (512, 512)
    assert set(np.unique(m)) <= {0.0, 1.0}


def test_small_variant_has_smaller_holes() -> None:
    # Reference: 512 small mean 0.22, median 0.20.
    ratios = _hole_ratios(150, (512, 512), "small", seed=3)
    assert abs(ratios.mean() - 0.22) < 0.05


@pytest.mark.parametrize("shape", [(256, 256), (384, 256)])
def test_other_sizes_keep_the_statistics(shape: tuple[int, int]) -> None:
    ratios = _hole_ratios(120, shape, seed=5)
    assert abs(ratios.mean() - 0.40) < 0.06


def test_mat_mask_is_reproducible_and_respects_hole_range() -> None:
    a = random_mat_mask(np.random.default_rng(7), (128, 128))
    b = random_mat_mask(np.random.default_rng(7), (128, 128))
    c = random_mat_mask(np.random.default_rng(8), (128, 128))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    rng = np.random.default_rng(1)
    for _ in range(30):
        ratio = 1.0 - random_mat_mask(rng, (128, 128), hole_range=(0.3, 0.5)).mean()
        assert 0.3 < ratio < 0.5
    with pytest.raises(ValueError, match="hole_range"):
        random_mat_mask(rng, (64, 64), hole_range=(0.6, 0.2))


def test_random_brush_draws_strokes() -> None:
    rng = np.random.default_rng(2)
    assert not random_brush(rng, (64, 64), 0).any()
    covers = [random_brush(rng, (256, 256), 9) for _ in range(40)]
    assert all(c.dtype == np.bool_ and c.shape == (256, 256) for c in covers)
    assert any(c.mean() > 0.05 for c in covers)
    # Strokes are thick: a stroke pixel has stroke neighbours (no isolated 1-px lines).
    drawn = next(c for c in covers if c.any())
    eroded = ndimage.binary_erosion(drawn, iterations=2)
    assert eroded.sum() > 0.3 * drawn.sum()


def test_box_hole_shapes() -> None:
    box = (10.0, 20.0, 70.0, 60.0)  # 60 x 40
    rect = box_hole((100, 100), box, "rectangle")
    assert rect.sum() == 60 * 40
    assert rect[20:60, 10:70].all()
    ellipse = box_hole((100, 100), box)
    assert abs(ellipse.sum() - np.pi * 30 * 20) < 0.03 * np.pi * 30 * 20
    assert not (ellipse & ~rect).any()
    assert ellipse[40, 40] and not ellipse[20, 10]
    # Clipped at the image border without error.
    assert box_hole((50, 50), (40.0, 40.0, 80.0, 80.0), "rectangle").sum() == 100
    with pytest.raises(ValueError, match="x1 > x0"):
        box_hole((50, 50), (10.0, 10.0, 5.0, 20.0))
    with pytest.raises(ValueError, match="ellipse"):
        box_hole((50, 50), (1.0, 1.0, 5.0, 5.0), "circle")  # type: ignore[arg-type]


def test_lesion_shaped_hole_covers_the_box_ellipse_irregularly() -> None:
    box = (100.0, 80.0, 180.0, 140.0)
    ellipse = box_hole((256, 256), box)
    holes = [lesion_shaped_hole(np.random.default_rng(s), (256, 256), box) for s in range(5)]
    for hole in holes:
        assert not (ellipse & ~hole).any()  # the mass is always inside the hole
        assert hole.sum() < 3.0 * ellipse.sum()
        assert ndimage.label(hole)[1] == 1
    assert len({h.tobytes() for h in holes}) == 5
    assert np.array_equal(holes[0], lesion_shaped_hole(np.random.default_rng(0), (256, 256), box))


def test_outpaint_keep_mask_is_boxes_plus_margin() -> None:
    keep = outpaint_keep_mask((100, 120), [(10.0, 10.0, 30.0, 20.0), (80.0, 70.0, 120.0, 100.0)], margin=5)
    expected = np.zeros((100, 120), bool)
    expected[5:25, 5:35] = True
    expected[65:100, 75:120] = True
    assert np.array_equal(keep, expected)
    with pytest.raises(ValueError, match="margin"):
        outpaint_keep_mask((10, 10), [(1.0, 1.0, 2.0, 2.0)], margin=-1)


@pytest.mark.parametrize("width", [0.0, 1.5, 12.0])
def test_feather_is_zero_outside_the_allowed_region(width: float) -> None:
    hole = box_hole((200, 240), (60.0, 50.0, 150.0, 120.0))
    hole |= box_hole((200, 240), (200.0, 150.0, 236.0, 196.0), "rectangle")
    weight = feather(hole, width)
    assert weight.dtype == np.float32 and weight.shape == hole.shape
    assert weight.min() >= 0.0 and weight.max() <= 1.0
    assert np.all(weight[hole] == 1.0)
    distance = ndimage.distance_transform_edt(~hole)
    assert np.all(weight[(distance >= width) & ~hole] == 0.0)
    assert np.array_equal(weight > 0, feather_region(hole, width))
    if width > 0:
        band = (distance > 0) & (distance < width)
        assert np.all((weight[band] > 0) & (weight[band] < 1))
        # Monotone: farther from the hole, never a larger weight.
        order = np.argsort(distance[band], kind="stable")
        assert np.all(np.diff(weight[band][order]) <= 1e-6)
    else:
        assert np.array_equal(weight > 0, hole)


def test_feather_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="feather width"):
        feather(np.ones((4, 4), bool), -1.0)
    assert not feather(np.zeros((8, 8), bool), 3.0).any()
