"""Copy-paste augmentation: only the pasted boxes change, and a copy-paste set is matched unit for unit to the
in-/out-painting set it controls for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from linop_core.dicom import VoiWindow, read_dicom
from linop_core.engines import EngineSpec, make_engine
from linop_core.phantom import make_cxr_dataset, make_mammo_dataset
from linop_core.synthset import SynthSetDataset
from linop_core.synthset.batch import BatchOptions, vindr_job, write_set
from linop_core.vindr import open_dataset
from linop_core.vocab import Task
from trainer.bench.copypaste import ENGINE, blend_into, paste_findings, paste_mass, paste_weight, pixel_box
from trainer.bench.copypaste_set import donors_for, write_copy_paste_set


def test_paste_weight_is_zero_outside_the_boxes_and_ramps_to_one_inside() -> None:
    weight = paste_weight((40, 50), [(10.0, 5.0, 30.0, 25.0)], feather_px=4.0)
    x0, y0, x1, y1 = pixel_box((10.0, 5.0, 30.0, 25.0), (40, 50))
    inside = np.zeros((40, 50), dtype=bool)
    inside[y0:y1, x0:x1] = True
    assert (weight[~inside] == 0).all()
    assert weight[15, 20] == 1.0 and 0.0 < weight[y0, 20] < weight[y0 + 2, 20] < 1.0  # ramp from the edge inwards
    assert weight.max() == 1.0 and weight.min() == 0.0
    # overlapping boxes take the larger weight; a zero feather pastes the box hard
    both = paste_weight((40, 50), [(10.0, 5.0, 30.0, 25.0), (25.0, 5.0, 45.0, 25.0)], feather_px=4.0)
    assert (both >= weight).all() and both[15, 40] == 1.0
    assert (paste_weight((40, 50), [(10.0, 5.0, 30.0, 25.0)], 0.0)[inside] == 1.0).all()


def test_blend_keeps_every_pixel_outside_the_pasted_region_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4096, size=(60, 60), dtype=np.uint16)
    content = rng.random((60, 60), dtype=np.float32)
    weight = paste_weight((60, 60), [(20.0, 20.0, 44.0, 40.0)], feather_px=5.0)
    out = blend_into(target, VoiWindow(2048.0, 4096.0), "LINEAR", content, weight)
    assert out.dtype == target.dtype and out.shape == target.shape
    assert np.array_equal(out[weight == 0], target[weight == 0])
    assert np.count_nonzero(out[weight == 1] != target[weight == 1]) > 0.9 * np.count_nonzero(weight == 1)
    # where the weight is 1 the content is pasted: its window's inverse, rounded to the stored integers
    full = weight == 1
    expected = np.rint((content[full] - 0.5) * 4095.0 + 2047.5)
    assert np.abs(out[full].astype(np.float64) - expected).max() <= 1.0


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("copypaste")
    make_mammo_dataset(base / "mammo", 6, 2)
    make_cxr_dataset(base / "cxr", 16, 2)
    return {"mammo": base / "mammo", "cxr": base / "cxr", "base": base}


@pytest.mark.slow
def test_pasted_mass_and_findings_change_only_their_boxes(roots: dict[str, Path]) -> None:
    mammo = open_dataset(roots["mammo"])
    donor_record, donor_box = mammo.mass_boxes()[0]
    target = read_dicom(mammo.normal_pool(None)[0].path)
    box = (100.0, 120.0, 150.0, 160.0)
    cand = paste_mass(target, box, read_dicom(donor_record.path), donor_box, seed=7)
    assert cand.engine == ENGINE and cand.boxes == (box,) and cand.box_labels == ("Mass",)
    assert cand.image.dtype == target.pixels.dtype
    outside = cand.generated == 0
    assert np.array_equal(cand.image[outside], target.pixels[outside])
    x0, y0, x1, y1 = pixel_box(box, target.pixels.shape)
    assert not outside[y0 + 10, x0 + 10] and outside[y0 - 1, x0] and outside[y1, x1 - 1]

    cxr = open_dataset(roots["cxr"])
    donor = next(r for r in cxr.records if r.boxes)
    normal = read_dicom(cxr.normal(None)[0].path)
    found = paste_findings(normal, read_dicom(donor.path), donor.boxes, [f.categories[0] for f in donor.findings
                           if f.box is not None], donor.labels, seed=1, margin=8.0)  # fmt: skip
    assert found.global_labels == donor.labels and len(found.boxes) == len(donor.boxes)
    kept = found.generated == 0
    assert kept.any() and np.array_equal(found.image[kept], normal.pixels[kept])
    for bx0, by0, bx1, by1 in found.boxes:  # the boxes, mapped to the target's size, are pasted whole
        assert found.generated[int(by0) + 1 : int(by1) - 1, int(bx0) + 1 : int(bx1) - 1].min() == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mammo", "cxr"])
def test_copy_paste_set_matches_the_painting_set_unit_for_unit(roots: dict[str, Path], kind: str) -> None:
    root, base = roots[kind], roots["base"]
    options = BatchOptions(seed=3)
    job = vindr_job(root, options, make_engine(EngineSpec.biharmonic(64)))
    painted = base / f"{kind}-biharmonic.h5"
    write_set(job, painted, n=8)
    records = open_dataset(root).records
    held_out = frozenset(sorted({r.study_id for r in records})[:2])  # two studies play validation / test
    task = Task.INPAINT if kind == "mammo" else Task.OUTPAINT
    normals = frozenset(r.image_id for r in records if r.labels == ("No finding",))
    donors = donors_for(records, held_out, task, split="training", normal_ids=normals)
    result = write_copy_paste_set(job, base / f"{kind}-copy-paste.h5", n=8, seed=3, donors=donors)
    pasted = SynthSetDataset(result.path)
    twin = SynthSetDataset(painted)
    kept_units = [u for u, study in zip(twin.meta["unit"], twin.meta["source_study_id"], strict=True)
                  if str(study) not in held_out]  # fmt: skip
    assert list(pasted.meta["unit"]) == kept_units and result.written == len(kept_units)
    assert result.skipped_held_out == 8 - len(kept_units)
    assert set(pasted.meta["engine"]) == {ENGINE}
    for row, unit in enumerate(pasted.meta["unit"]):
        twin_row = list(twin.meta["unit"]).index(unit)
        assert pasted.meta["global_labels"][row] == twin.meta["global_labels"][twin_row]
        if kind == "mammo":  # same normal image, same sampled box
            assert pasted.meta["source_image_id"][row] == twin.meta["source_image_id"][twin_row]
            assert np.allclose(pasted.boxes(row), twin.boxes(twin_row))
        else:  # the out-painting source donates its findings to a normal training image
            assert str(pasted.meta["source_image_id"][row]) in normals
            assert str(pasted.meta["source_study_id"][row]) not in held_out
