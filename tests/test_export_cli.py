"""`linop-export` end to end on phantom VinDr roots: determinism across shards and kills, leakage refusal,
no patient attribute in any output, box CSVs, appends, CXR out-painting, and the box sampler."""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest

from linop_core.anatomy import box_inside_fraction, breast_mask
from linop_core.cli.export import main
from linop_core.dicom import read_dicom
from linop_core.phantom import make_cxr_dataset, make_mammo_dataset
from linop_core.synthset import SynthSet, export_coco, spool_path, verify_manifest
from linop_core.synthset.plan import (
    VINDR_GRID_HW,
    VINDR_MASS_HEIGHT_MEDIAN_IQR,
    VINDR_MASS_WIDTH_MEDIAN_IQR,
    MassBoxModel,
    sample_mass_box,
    unit_rng,
)
from linop_core.vindr import LOCAL_LABELS, MammoDataset

PHI = {
    "PatientName": "Phantomova^Thi^Lan",
    "PatientID": "PID-7730519",
    "PatientBirthDate": "19480317",
    "PatientAddress": "12 Hang Bac Street",
}
FAST = ["--engine", "biharmonic", "--resolution", "64", "--no-progress"]


@pytest.fixture(scope="module")
def mammo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom VinDr-Mammo root whose DICOMs all carry patient-identifying attributes."""
    root = tmp_path_factory.mktemp("mammo")
    make_mammo_dataset(root, 4, 0, "small")
    for path in root.rglob("*.dicom"):
        ds = pydicom.dcmread(path)
        for keyword, value in PHI.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return root


@pytest.fixture(scope="module")
def reference(mammo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted, unsharded export of 6 units x 2 candidates."""
    out = tmp_path_factory.mktemp("reference") / "ref.h5"
    assert main(["generate", str(mammo_root), str(out), "--n", "6", "--candidates", "2", "--seed", "5", *FAST]) == 0
    return out


def assert_same_samples(a_path: Path, b_path: Path, units: range | None = None) -> None:
    with SynthSet(a_path) as a, SynthSet(b_path) as b:
        rows_a = np.arange(len(a)) if units is None else np.flatnonzero(np.isin(a.meta["unit"], list(units)))
        assert len(rows_a) == len(b)
        for name in a.meta:
            left, right = a.meta[name][rows_a], b.meta[name]
            assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), name
        for row_a, row_b in zip(rows_a.tolist(), range(len(b)), strict=True):
            assert np.array_equal(a.image(row_a), b.image(row_b))
            assert np.array_equal(a.generated(row_a), b.generated(row_b))
            assert np.array_equal(a.source(row_a), b.source(row_b))
            assert np.array_equal(a.boxes(row_a), b.boxes(row_b))


def test_reference_export_is_complete_and_bit_exact(reference: Path, mammo_root: Path) -> None:
    verify_manifest(reference)
    assert not spool_path(reference).exists()
    dataset = MammoDataset.open(mammo_root)
    with SynthSet(reference) as synth:
        assert synth.meta["index"].tolist() == list(range(12))
        assert synth.meta["unit"].tolist() == [i // 2 for i in range(12)]
        assert set(synth.meta["source_split"]) == {"training"} and set(synth.meta["task"]) == {"inpaint"}
        for row in range(len(synth)):
            record = dataset.by_id(str(synth.meta["source_image_id"][row]))
            assert record.breast_birads == "BI-RADS 1" and not record.findings
            source = read_dicom(record.path).pixels
            assert np.array_equal(synth.source(row), source)
            kept = ~synth.mask(row)
            assert np.array_equal(synth.image(row)[kept], source[kept])
            breast = breast_mask(source, padding_mask=read_dicom(record.path).padding_mask)
            assert box_inside_fraction(breast, tuple(synth.boxes(row)[0])) >= 0.9


def test_shards_merged_equal_the_unsharded_export(reference: Path, mammo_root: Path, tmp_path: Path) -> None:
    shards = []
    for i in range(2):
        shard = tmp_path / f"shard{i}.h5"
        args = ["generate", str(mammo_root), str(shard), "--n", "6", "--candidates", "2", "--seed", "5"]
        assert main([*args, "--shard", f"{i}/2", *FAST]) == 0
        shards.append(shard)
    with SynthSet(shards[1]) as odd:
        assert sorted(set(odd.meta["unit"].tolist())) == [1, 3, 5]
    merged = tmp_path / "merged.h5"
    assert main(["merge", str(merged), str(shards[1]), str(shards[0]), "--no-progress"]) == 0
    assert_same_samples(reference, merged)


@pytest.mark.slow
def test_export_killed_mid_way_resumes_to_the_same_set(reference: Path, mammo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    args = ["generate", str(mammo_root), str(out), "--n", "6", "--candidates", "2", "--seed", "5", *FAST]
    proc = subprocess.Popen([sys.executable, "-m", "linop_core.cli.export", *args])
    deadline = time.monotonic() + 90
    while len(list(spool_path(out).glob("unit_*.h5"))) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "the export committed no 2 units within 90 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not out.exists(), "the export finished before it could be killed"
    committed = len(list(spool_path(out).glob("unit_*.h5")))
    assert 2 <= committed < 6
    assert main(args) == 0
    assert_same_samples(reference, out)
    verify_manifest(out)


def test_append_continues_the_unit_sequence(reference: Path, mammo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "grown.h5"
    base = ["generate", str(mammo_root), str(out), "--candidates", "2", "--seed", "5", *FAST]
    assert main([*base, "--n", "2"]) == 0
    assert main([*base, "--n", "2"]) == 1  # exists: refused without --append
    assert main([*base, "--n", "2", "--append"]) == 0
    assert_same_samples(reference, out, units=range(4))


def _all_strings(path: Path) -> str:
    parts: list[str] = []
    with h5py.File(path, "r") as file:

        def visit(name: str, obj: h5py.HLObject) -> None:
            parts.extend(f"{k}={v}" for k, v in obj.attrs.items())
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "OS":
                parts.extend(str(v) for v in obj.asstr()[()].ravel())

        parts.extend(f"{k}={v}" for k, v in file.attrs.items())
        file.visititems(visit)
    return "\n".join(parts)


def test_no_patient_attribute_leaves_in_any_output(reference: Path, mammo_root: Path, tmp_path: Path) -> None:
    some_dicom = next(mammo_root.rglob("*.dicom"))
    assert pydicom.dcmread(some_dicom).PatientID == PHI["PatientID"]  # the sources really carry them
    coco = export_coco(reference, tmp_path / "coco")
    outputs = [reference, reference.with_name(reference.name + ".manifest.json"), *tmp_path.rglob("*")]
    assert coco.coco_json in outputs and len(coco.csv_files) == 1
    needles = [v.encode() for v in PHI.values()] + [b"Phantomova", b"7730519", b"1948"]
    for path in outputs:
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"{needle!r} found in {path}"
    text = _all_strings(reference)
    for value in PHI.values():
        assert value not in text


def test_test_split_sources_are_refused(mammo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["generate", str(mammo_root), str(tmp_path / "t.h5"), "--n", "1", "--split", "test", *FAST]
    assert main(args) == 1
    assert "test" in capsys.readouterr().err and not (tmp_path / "t.h5").exists()
    assert main([*args, "--allow-test-sources"]) == 0
    with SynthSet(tmp_path / "t.h5") as synth:
        assert synth.meta["source_split"].tolist() == ["test"] and synth.attrs["test_split_sources_allowed"]
    test_image = MammoDataset.open(mammo_root).normal_pool("test")[0]
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"image_id,xmin,ymin,xmax,ymax\n{test_image.image_id},100,200,140,250\n")
    assert main(["generate", str(mammo_root), str(tmp_path / "b.h5"), "--n", "1", "--boxes", str(boxes), *FAST]) == 1
    assert "test split" in capsys.readouterr().err


def test_boxes_from_a_csv(mammo_root: Path, tmp_path: Path) -> None:
    pool = MammoDataset.open(mammo_root).normal_pool("training")
    rows = []
    for record in pool[:2]:
        image = read_dicom(record.path)
        ys, xs = np.nonzero(breast_mask(image.pixels, padding_mask=image.padding_mask))
        cy, cx = float(np.median(ys)), float(np.median(xs))
        rows.append((record.image_id, cx - 20.0, cy - 15.0, cx + 20.0, cy + 15.0))
    path = tmp_path / "boxes.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "xmin", "ymin", "xmax", "ymax", "label"])
        writer.writerows([(*row, "Mass") for row in rows])
    out = tmp_path / "csv.h5"
    assert main(["generate", str(mammo_root), str(out), "--n", "2", "--boxes", str(path), *FAST]) == 0
    with SynthSet(out) as synth:
        assert synth.meta["source_image_id"].tolist() == [r[0] for r in rows]
        for row, expected in enumerate(rows):
            assert synth.boxes(row)[0].tolist() == list(expected[1:])


@pytest.mark.slow
def test_cxr_outpainting_export(tmp_path: Path) -> None:
    root = tmp_path / "cxr"
    make_cxr_dataset(root, 4, 0, "small")
    out = tmp_path / "cxr.h5"
    assert main(["generate", str(root), str(out), "--n", "2", "--margin", "8", *FAST]) == 0
    with SynthSet(out) as synth:
        assert set(synth.meta["task"]) == {"outpaint"} and set(synth.meta["dataset"]) == {"cxr"}
        assert set(synth.box_label_names) <= set(LOCAL_LABELS)
        for row in range(len(synth)):
            record = synth.record(row)
            assert record.box_labels and record.global_labels
            kept = ~synth.mask(row)
            for x0, y0, x1, y1 in record.boxes:  # the real finding is kept bit-exact
                assert kept[math.ceil(y0) : int(y1), math.ceil(x0) : int(x1)].all()


def test_box_sampler_follows_real_boxes_and_the_fallback() -> None:
    breast = np.zeros((400, 300), dtype=bool)
    breast[50:350, 0:200] = True
    model = MassBoxModel(np.array([[0.2, 0.1, 0.25, 0.5]]))
    box = sample_mass_box(unit_rng(3, 7), model, breast, size_jitter=0.0)
    assert box == sample_mass_box(unit_rng(3, 7), model, breast, size_jitter=0.0)  # deterministic in (seed, unit)
    x0, y0, x1, y1 = box
    assert (x1 - x0, y1 - y0) == pytest.approx((60.0, 40.0)) and ((x0 + x1) / 2, (y0 + y1) / 2) == (75.0, 200.0)
    mirrored = MassBoxModel(np.array([[0.2, 0.1, 0.8, 0.5]]))  # a right-breast position on a left breast
    for unit in range(20):
        placed = sample_mass_box(unit_rng(0, unit), mirrored, breast)
        assert box_inside_fraction(breast, placed) >= 0.95
    fallback = MassBoxModel.from_boxes([])
    assert fallback.is_fallback
    rng = np.random.default_rng(0)
    draws = np.array([fallback.draw(rng, 0.0)[:2] for _ in range(4000)])
    widths, heights = draws[:, 0] * VINDR_GRID_HW[1], draws[:, 1] * VINDR_GRID_HW[0]
    for values, (median, q1, q3) in ((widths, VINDR_MASS_WIDTH_MEDIAN_IQR), (heights, VINDR_MASS_HEIGHT_MEDIAN_IQR)):
        assert np.median(values) == pytest.approx(median, rel=0.05)
        assert np.percentile(values, [25, 75]) == pytest.approx([q1, q3], rel=0.08)
