"""`linop-data inspect` summaries: DICOM files, dataset roots from CSV files only, and phantom round trips."""

from __future__ import annotations

import ast
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from test_vindr import cxr_root, mammo_root  # noqa: F401 - fixtures shared with the reader tests

from linop_core.errors import DataError
from linop_core.inspect import format_inspection, inspect_path
from linop_core.vindr import CxrDataset, MammoDataset


def test_inspect_mammo_root_counts(mammo_root: Path) -> None:  # noqa: F811
    with pytest.warns(UserWarning):
        report = inspect_path(mammo_root)
    json.dumps(report)
    assert report["dataset"] == "mammo"
    assert (report["images"], report["images_on_disk"], report["missing_on_disk"]) == (7, 1, 6)
    assert report["normal_images"] == 3 and report["boxes"] == 4
    assert (report["mass_boxes"], report["images_with_mass"]) == (3, 2)
    assert report["categories"] == {
        "Mass": {"boxes": 3, "images": 2},
        "Suspicious Calcification": {"boxes": 2, "images": 2},
        "Focal Asymmetry": {"boxes": 1, "images": 1},
    }
    training, test = report["splits"]["training"], report["splits"]["test"]
    assert (training["images"], training["normal_images"], training["boxes"]) == (4, 2, 2)
    assert training["missing_on_disk"] == 3
    assert (test["images"], test["normal_images"], test["boxes"], test["mass_boxes"]) == (3, 1, 2, 1)
    assert training["breast_birads"] == {"BI-RADS 1": 2, "BI-RADS 4": 2}
    assert (report["rows_read"], report["rows_skipped"], report["problem_count"]) == (20, 4, 4)
    text = format_inspection(report)
    assert "VinDr-Mammo dataset at" in text
    assert "images 7 (on disk 1, missing 6)" in text
    assert "finding_annotations.csv:11: unknown finding category 'Tumour'" in text


def test_inspect_cxr_root_counts(cxr_root: Path) -> None:  # noqa: F811
    with pytest.warns(UserWarning):
        report = inspect_path(cxr_root)
    json.dumps(report)
    assert report["dataset"] == "cxr" and report["layout"] == "physionet"
    assert (report["images"], report["missing_on_disk"], report["normal_images"]) == (7, 7, 3)
    assert (report["boxes"], report["reader_boxes"]) == (9, 13)
    assert report["categories"]["Pleural effusion"] == {"boxes": 4, "reader_boxes": 7, "images": 3}
    assert report["categories"]["Pneumonia"] == {"boxes": 0, "reader_boxes": 0, "images": 2}
    assert report["four_class"] == {"normal": 3, "pleural effusion": 2, "pneumothorax": 0, "pneumonia": 1}
    assert report["four_class_multi_label_dropped"] == 1
    assert report["splits"]["test"]["four_class"] == {
        "normal": 1, "pleural effusion": 1, "pneumothorax": 0, "pneumonia": 0,
    }  # fmt: skip
    assert report["rows_skipped"] == 5 and report["fusion"]["label_votes"] == 2
    text = format_inspection(report)
    assert "VinDr-CXR dataset at" in text and "fused boxes 9 (reader boxes 13)" in text


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str, window: tuple[float, float] | None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PresentationIntentType = "MG", "FOR PRESENTATION"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_inspect_dicom_reports_meta_range_and_window(tmp_path: Path) -> None:
    pixels = np.arange(48 * 32, dtype=np.uint16).reshape(48, 32) + 100
    windowed, bare = tmp_path / "windowed.dcm", tmp_path / "bare.dcm"
    write_dicom(windowed, pixels, photometric="MONOCHROME2", window=(900.0, 1200.0))
    write_dicom(bare, pixels, photometric="MONOCHROME2", window=None)
    report = inspect_path(windowed)
    json.dumps(report)
    assert report["kind"] == "dicom" and report["meta"]["rows"] == 48 and report["meta"]["columns"] == 32
    assert report["pixels"] == {
        "shape": [48, 32],
        "dtype": report["pixels"]["dtype"],
        "min": 100,
        "max": 1635,
    }
    assert report["window"]["center"] == 900.0 and report["window"]["width"] == 1200.0
    assert report["window"]["source"].startswith("file")
    assert not report["inverted_from_monochrome1"]
    text = format_inspection(report)
    assert "48x32 MONOCHROME2" in text and "pixel values 100 .. 1635" in text
    assert "window center 900, width 1200 from file" in text
    assert inspect_path(bare)["window"]["source"].startswith("percentile")


def test_inspect_real_monochrome1_chest_xray() -> None:
    """pydicom-data's RG1_UNCR: a real PA chest CR, MONOCHROME1, stored values 874..26479 of 15 bits."""
    pytest.importorskip("data_store", reason="pydicom-data (dev dependency) is not installed")
    from pydicom.data import get_testdata_file

    report = inspect_path(get_testdata_file("RG1_UNCR.dcm"))
    assert (report["meta"]["rows"], report["meta"]["columns"]) == (1955, 1841)
    assert report["inverted_from_monochrome1"] and report["value_range"] == [0.0, 32767.0]
    assert (report["pixels"]["min"], report["pixels"]["max"]) == (32767 - 26479, 32767 - 874)
    assert report["window"]["width"] == 30000.0 and report["window"]["source"].startswith("file")
    assert "inverted to MONOCHROME2" in format_inspection(report)


def test_inspect_missing_path_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        inspect_path(tmp_path / "absent")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_phantom_mammo_round_trips_through_inspect(tmp_path: Path) -> None:
    phantom = pytest.importorskip("linop_core.phantom")
    if not hasattr(phantom, "make_mammo_dataset"):
        pytest.skip("linop_core.phantom.make_mammo_dataset is not written yet (helper C)")
    root = tmp_path / "mammo"
    summary = phantom.make_mammo_dataset(root, n=2, seed=3, size="small")
    report = inspect_path(root)
    # against what the generator says it wrote
    counts = summary.counts
    assert report["images"] == summary.n_images
    assert (report["normal_images"], report["mass_boxes"]) == (counts["normal_images"], counts["mass_boxes"])
    assert report["images_with_mass"] == counts["images_with_mass"]
    for split, split_counts in report["splits"].items():
        assert split_counts["images"] == counts[f"images_{split}"]
        assert split_counts["mass_boxes"] == counts.get(f"mass_boxes_{split}", 0)
    for birads, number in report["breast_birads"].items():
        assert counts[birads.replace("BI-RADS ", "birads_")] == number
    for density, number in report["breast_density"].items():
        assert counts[density.replace("DENSITY ", "density_")] == number
    # and against the files themselves
    breast = _csv_rows(root / "breast-level_annotations.csv")
    findings = _csv_rows(root / "finding_annotations.csv")
    lesion_rows = [r for r in findings if r["xmin"]]
    boxes = Counter(c for r in lesion_rows for c in ast.literal_eval(r["finding_categories"]))
    lesion_images = {r["image_id"] for r in lesion_rows}
    assert report["images"] == len(breast) == len(list((root / "images").glob("*/*.dicom")))
    assert (report["missing_on_disk"], report["rows_skipped"], report["problem_count"]) == (0, 0, 0)
    assert report["normal_images"] == sum(
        r["breast_birads"] == "BI-RADS 1" and r["image_id"] not in lesion_images for r in breast
    )
    assert report["boxes"] == len(lesion_rows)
    assert {k: v["boxes"] for k, v in report["categories"].items()} == dict(boxes)
    assert report["mass_boxes"] == boxes["Mass"]
    for split, counts in report["splits"].items():
        assert counts["images"] == sum(r["split"] == split for r in breast)
    from linop_core.dicom import read_dicom_meta

    for record in MammoDataset.open(root).records:  # CSV sizes and laterality agree with the DICOM headers
        meta = read_dicom_meta(record.path)
        assert (meta.rows, meta.columns, meta.laterality) == (record.height, record.width, record.laterality)


@pytest.mark.slow
def test_phantom_cxr_round_trips_through_inspect(tmp_path: Path) -> None:
    phantom = pytest.importorskip("linop_core.phantom")
    if not hasattr(phantom, "make_cxr_dataset"):
        pytest.skip("linop_core.phantom.make_cxr_dataset is not written yet (helper C)")
    root = tmp_path / "cxr"
    summary = phantom.make_cxr_dataset(root, n=5, seed=3, size="small")
    report = inspect_path(root)
    counts = summary.counts
    # against what the generator says it wrote (its split names are the folder names train/test)
    assert report["images"] == summary.n_images
    assert (report["missing_on_disk"], report["rows_skipped"], report["problem_count"]) == (0, 0, 0)
    for split, folder in (("training", "train"), ("test", "test")):
        split_counts = report["splits"][split]
        assert split_counts["images"] == counts[f"images_{folder}"]
        for name, number in split_counts["four_class"].items():
            assert counts.get(f"{name.replace(' ', '_')}_images_{folder}", 0) == number, (split, name)
        for name, category in split_counts["categories"].items():
            assert counts.get(f"{name.replace(' ', '_')}_boxes_{folder}", 0) == category["reader_boxes"], name
    # and against the files themselves
    rows = {
        name: _csv_rows(root / "annotations" / name)
        for name in ("annotations_train.csv", "annotations_test.csv", "image_labels_train.csv", "image_labels_test.csv")
    }
    images = {r["image_id"] for table in rows.values() for r in table}
    on_disk = list((root / "train").glob("*.dicom")) + list((root / "test").glob("*.dicom"))
    assert report["images"] == len(images) == len(on_disk)
    box_rows = [r for name in ("annotations_train.csv", "annotations_test.csv") for r in rows[name] if r["x_min"]]
    assert report["reader_boxes"] == len(box_rows)
    from linop_core.dicom import read_dicom_meta

    for record in CxrDataset.open(root).records:  # sizes read from the headers, boxes inside them
        meta = read_dicom_meta(record.path)
        if record.reader_findings:
            assert (record.height, record.width) == (meta.rows, meta.columns)
        for finding in record.findings:
            assert finding.box is not None
            assert 0 <= finding.box[0] < finding.box[2] <= meta.columns
            assert 0 <= finding.box[1] < finding.box[3] <= meta.rows
