"""Anatomy masks (breast, lungs, chest region) and the box placement checks."""

from __future__ import annotations

import numpy as np
import pytest

from linop_core.anatomy import (
    anatomy_mask,
    box_inside_fraction,
    breast_mask,
    chest_mask,
    lung_mask,
    require_box_in_anatomy,
    require_box_in_image,
)
from linop_core.errors import LinopError

phantom = pytest.importorskip("linop_core.phantom", reason="linop_core.phantom (helper C) renders the test images")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize(("seed", "view", "density"), [(0, "CC", "A"), (1, "MLO", "C"), (2, "CC", "D")])
def test_breast_mask_matches_the_phantom_outline(seed: int, view: str, density: str) -> None:
    ph = phantom.render_mammogram(np.random.default_rng(seed), laterality="LR"[seed % 2], view=view,
                                  density=density, height=1024, width=800)
    mask = breast_mask(ph.image)
    assert mask.shape == ph.image.shape and mask.dtype == np.bool_
    assert _iou(mask, ph.breast_mask) > 0.95


@pytest.mark.slow
def test_lung_and_chest_masks_on_phantoms() -> None:
    for seed, finding in enumerate(phantom.CXR_FINDINGS):
        ph = phantom.render_cxr(np.random.default_rng(seed), height=768, width=768, finding=finding)
        lungs = lung_mask(ph.image)
        if finding == "normal":
            assert _iou(lungs, ph.lung_mask) > 0.85
        chest = chest_mask(ph.image)
        assert not (lungs & ~chest).any()
        assert chest.mean() < 0.8  # not the whole image
        for _, box in ph.boxes:
            assert box_inside_fraction(chest, box) > 0.8, (finding, box)
        # The air around the patient is not chest.
        assert box_inside_fraction(chest, (0.0, 0.0, 40.0, 40.0)) == 0.0


def test_chest_mask_on_a_real_radiograph(rg1_path: str) -> None:
    from linop_core.dicom import read_dicom

    image = read_dicom(rg1_path)  # real PA chest CR, MONOCHROME1 turned MONOCHROME2 by the reader
    chest = anatomy_mask(image.pixels, "chest", padding_mask=image.padding_mask)
    lungs = lung_mask(image.pixels, padding_mask=image.padding_mask)
    assert 0.05 < lungs.mean() < 0.5
    assert box_inside_fraction(chest, (350.0, 500.0, 650.0, 900.0)) > 0.95  # right lung
    assert box_inside_fraction(chest, (1150.0, 500.0, 1450.0, 900.0)) > 0.95  # left lung
    assert box_inside_fraction(chest, (0.0, 1800.0, 100.0, 1950.0)) == 0.0  # corner


def test_anatomy_mask_dispatch() -> None:
    image = np.zeros((64, 64), np.uint16)
    with pytest.raises(ValueError, match="breast"):
        anatomy_mask(image, "liver")  # type: ignore[arg-type]
    assert not anatomy_mask(image, "breast").any()  # a flat image has no breast


def test_box_outside_image_is_refused_with_numbers() -> None:
    assert require_box_in_image((1, 2, 30, 40), (50, 60), image_name="a.dcm") == (1.0, 2.0, 30.0, 40.0)
    with pytest.raises(LinopError, match=r"a\.dcm: box \(40, 10, 80, 20\) is 50% outside the image \(width 60"):
        require_box_in_image((40, 10, 80, 20), (50, 60), image_name="a.dcm")
    with pytest.raises(LinopError, match="empty"):
        require_box_in_image((10, 10, 10, 20), (50, 60), image_name="a.dcm")
    with pytest.raises(LinopError, match="non-finite"):
        require_box_in_image((float("nan"), 0, 5, 5), (50, 60), image_name="a.dcm")


def test_box_outside_anatomy_is_refused_with_a_clear_message() -> None:
    mask = np.zeros((100, 100), bool)
    mask[:, :50] = True
    assert require_box_in_anatomy(mask, (10, 10, 40, 40), region="breast", image_name="x", min_inside=0.9) == 1.0
    with pytest.raises(LinopError) as info:
        require_box_in_anatomy(mask, (30, 10, 70, 50), region="breast", image_name="img7.dcm", min_inside=0.9)
    message = str(info.value)
    assert message.startswith("img7.dcm: 50% of box (30, 10, 70, 50) lies outside the breast")
    assert "move the box" in message and "\n" not in message
    with pytest.raises(LinopError, match="could not find the lungs"):
        require_box_in_anatomy(np.zeros((10, 10), bool), (1, 1, 5, 5), region="chest", image_name="c",
                               min_inside=0.5)


def test_a_padded_mammogram_keeps_its_fatty_tissue_in_the_breast(mammo_root) -> None:
    """Vendors pad the air around the breast; the breast is then every non-padding pixel of these phantoms,
    dense or fatty (thresholding the non-padding pixels alone kept only the dense half, and boxes drawn in
    fatty tissue were refused as outside the breast)."""
    from linop_core.dicom import read_dicom
    from linop_core.vindr import open_dataset

    padded = 0
    for record in open_dataset(mammo_root).records:
        image = read_dicom(record.path)
        if not image.padding_mask.any():
            continue
        padded += 1
        breast = breast_mask(image.pixels, padding_mask=image.padding_mask)
        tissue = ~image.padding_mask
        assert (breast & tissue).sum() / tissue.sum() > 0.95, record.image_id
        assert not (breast & image.padding_mask).any()
    assert padded >= 2
