"""Batch resilience: an unreadable source in the pool is skipped deterministically, recorded in the set and in
the summary (a resume meets the same draws), ``--check-sources`` refuses a bad pool before any work, and
sampled boxes keep off the pectoral muscle (mammograms) and the mediastinum (chest X-rays)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import assert_one_line

from linop_core.anatomy import box_inside_fraction, breast_mask, placement_mask
from linop_core.cli.export import main as export_main
from linop_core.engines import EngineSpec, make_engine
from linop_core.phantom import render_mammogram
from linop_core.phantom.cxr import render_cxr
from linop_core.synthset import SynthSet
from linop_core.synthset.batch import BatchOptions, vindr_job, write_set
from linop_core.synthset.plan import MassBoxModel, sample_mass_box, unit_rng
from linop_core.vindr import MammoDataset

FAST = ["--engine", "biharmonic", "--resolution", "64", "--no-progress"]


@pytest.fixture
def damaged_root(mammo_root: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the phantom root whose first normal-pool image is cut in half: (root, its image id)."""
    root = tmp_path / "root"
    shutil.copytree(mammo_root, root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = sorted(MammoDataset.open(root).normal_pool(), key=lambda r: r.image_id)
    assert len(pool) >= 2
    data = pool[0].path.read_bytes()
    pool[0].path.write_bytes(data[: len(data) // 2])
    return root, pool[0].image_id


def _events(path: Path) -> list[dict]:
    with SynthSet(path) as synth:
        return [json.loads(e) for e in synth.audit_events()]


def _sources(path: Path) -> list[tuple[int, str]]:
    with SynthSet(path) as synth:
        return list(zip(synth.meta["index"].tolist(), synth.meta["source_image_id"].tolist(), strict=True))


def test_unreadable_source_is_skipped_recorded_and_reported(damaged_root: tuple[Path, str], tmp_path: Path,
                                                            capsys) -> None:
    root, bad = damaged_root
    out = tmp_path / "set.h5"
    assert export_main(["generate", str(root), str(out), "--n", "8", *FAST]) == 0
    printed = capsys.readouterr().out
    skips = [e for e in _events(out) if e["event"] == "source_skipped"]
    assert skips and all(e["image_id"] == bad and "truncated" in e["reason"] for e in skips)
    assert f"skipped {len(skips)} source(s)" in printed and bad in printed
    assert len(_sources(out)) == 8 and all(source != bad for _, source in _sources(out))  # no unit lost


def test_skips_are_deterministic_across_a_resume(damaged_root: tuple[Path, str], tmp_path: Path) -> None:
    root, _bad = damaged_root
    job = vindr_job(root, BatchOptions(seed=3), make_engine(EngineSpec.biharmonic(64)))
    whole = write_set(job, tmp_path / "whole.h5", n=8)
    stops = iter([False, False, False, True])
    first = write_set(job, tmp_path / "resumed.h5", n=8, cancel=lambda: next(stops, False))
    assert first.manifest is None and first.run.cancelled  # three units committed, then cancelled
    resumed = write_set(job, tmp_path / "resumed.h5", n=8)
    assert _sources(tmp_path / "resumed.h5") == _sources(tmp_path / "whole.h5")
    assert resumed.skipped == whole.skipped and len(whole.skipped) > 0  # the resumed run reads the earlier skips


def test_check_sources_refuses_a_bad_pool_before_work(damaged_root: tuple[Path, str], mammo_root: Path,
                                                      tmp_path: Path, capsys) -> None:
    root, bad = damaged_root
    out = tmp_path / "set.h5"
    assert export_main(["generate", str(root), str(out), "--n", "2", "--check-sources", *FAST]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"({bad}): pixel data is truncated" in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "1 of 2 pool source(s) cannot be read" in errors[0]
    assert not out.exists() and not (tmp_path / "set.h5.parts").exists()
    assert export_main(["generate", str(mammo_root), str(out), "--n", "2", "--check-sources", *FAST]) == 0
    assert "all 2 pool source(s) read" in capsys.readouterr().err


def test_a_boxes_unit_on_an_unreadable_source_is_committed_empty(damaged_root: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    root, bad = damaged_root
    boxes = tmp_path / "boxes.csv"
    good = next(r for r in MammoDataset.open(root).normal_pool() if r.image_id != bad)
    boxes.write_text(f"image_id,xmin,ymin,xmax,ymax\n{bad},100,100,160,160\n{good.image_id},100,100,160,160\n")
    out = tmp_path / "set.h5"
    assert export_main(["generate", str(root), str(out), "--boxes", str(boxes), "--no-anatomy-check", *FAST]) == 0
    assert [source for _, source in _sources(out)] == [good.image_id]  # unit 0 is done, empty
    (skip,) = [e for e in _events(out) if e["event"] == "source_skipped"]
    assert skip["unit"] == 0 and skip["image_id"] == bad


def test_csv_size_that_differs_from_the_file_is_recorded(mammo_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(mammo_root, root)
    for name in ("breast-level_annotations.csv", "finding_annotations.csv"):
        csv = root / name
        lines = csv.read_text().splitlines()
        header = lines[0].split(",")
        height = header.index("height")
        fixed = [lines[0]]
        for line in lines[1:]:
            fields = line.split(",")
            fields[height] = str(int(fields[height]) + 10)
            fixed.append(",".join(fields))
        csv.write_text("\n".join(fixed) + "\n")
    out = tmp_path / "set.h5"
    with pytest.warns(UserWarning, match="the CSV records"):
        assert export_main(["generate", str(root), str(out), "--n", "2", *FAST]) == 0
    mismatches = [e for e in _events(out) if e["event"] == "size_mismatch"]
    assert len(mismatches) == 2 and mismatches[0]["csv_height_width"][0] == mismatches[0]["file_height_width"][0] + 10


# ----------------------------------------------------------------------------------------------- placement


def test_mass_boxes_keep_off_the_pectoral_muscle() -> None:
    model = MassBoxModel(np.empty((0, 4)))  # the VinDr size distribution, positions anywhere allowed
    worst_new, worst_old = 0.0, 0.0
    for seed in range(6):
        phantom = render_mammogram(np.random.default_rng(seed), laterality="LR"[seed % 2], view="MLO",
                                   density="ABCD"[seed % 4], height=500, width=400)
        allowed = placement_mask(phantom.image, "breast", view="MLO", laterality=phantom.laterality)
        breast = breast_mask(phantom.image)
        for unit in range(10):
            box = sample_mass_box(unit_rng(seed, unit), model, allowed, size_jitter=0.15)
            worst_new = max(worst_new, box_inside_fraction(phantom.pectoral_mask, box))
            old = sample_mass_box(unit_rng(seed, unit), model, breast, size_jitter=0.15)
            worst_old = max(worst_old, box_inside_fraction(phantom.pectoral_mask, old))
    assert worst_new <= 0.05, worst_new  # at most a sliver of a box on the muscle
    assert worst_old > 0.3, worst_old  # the breast mask alone put boxes on it (this test can fail)


def test_chest_boxes_land_in_the_lungs_not_the_mediastinum() -> None:
    model = MassBoxModel(np.empty((0, 4)))
    for seed in range(3):
        phantom = render_cxr(np.random.default_rng(seed), height=480, width=420, finding="normal")
        allowed = placement_mask(phantom.image, "chest")
        assert (allowed & phantom.lung_mask).sum() / allowed.sum() > 0.99
        for unit in range(10):
            box = sample_mass_box(unit_rng(seed, unit), model, allowed, size_jitter=0.15)
            assert box_inside_fraction(phantom.lung_mask, box) >= 0.9, box


def test_placement_with_no_anatomy_says_so() -> None:
    from linop_core.errors import DataError

    with pytest.raises(DataError) as info:
        sample_mass_box(unit_rng(0, 0), MassBoxModel(np.empty((0, 4))), np.zeros((64, 64), bool), image_name="img")
    assert_one_line(str(info.value), "img", "no breast")
