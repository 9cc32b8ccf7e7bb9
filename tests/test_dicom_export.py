"""DICOM export of synthetic sets: HDF5 -> DICOM SC + SEG -> read back with pydicom and highdicom.

Pixels inside and outside the generated region, geometry, UIDs, provenance, de-identification (identifying
tags planted in the sources appear nowhere in the output), resumption, old sets, and exact encodings.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import h5py
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ComputedRadiographyImageStorage, SecondaryCaptureImageStorage, SegmentationStorage

from linop_core.cli.export import main as export_main
from linop_core.dicom import read_dicom
from linop_core.dicom_export import IMAGE_DIR, SEG_DIR, STATE_FILE, export_dicom
from linop_core.dicom_export.pixels import PixelEncodingError, encode_pixels
from linop_core.engines import BiharmonicEngine
from linop_core.errors import DataError
from linop_core.phantom import make_mammo_dataset
from linop_core.synthesis import InpaintRequest, inpaint_lesion
from linop_core.synthset import (
    Review,
    SourceDicom,
    SourceInfo,
    SynthSample,
    SynthSet,
    SynthSetWriter,
    synthetic_image_id,
)
from linop_core.synthset.records import ADDED_COLUMNS

PHI = {
    "PatientName": "Phantomova^Thi^Lan",
    "PatientID": "PID-7730519",
    "PatientBirthDate": "19480317",
    "PatientAddress": "12 Hang Bac Street",
    "OtherPatientIDs": "OPID-55102",
    "InstitutionName": "Bach Mai Phantom Hospital",
    "ReferringPhysicianName": "Referrer^Minh",
    "AccessionNumber": "ACC-99173",
    "OperatorsName": "Operator^Hoa",
}
PRIVATE_VALUE = "ACME-PRIVATE-4242"
FAST = ["--engine", "biharmonic", "--resolution", "64", "--no-progress"]


@pytest.fixture(scope="module")
def mammo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom VinDr-Mammo root whose DICOMs all carry identifying attributes and a private tag."""
    root = tmp_path_factory.mktemp("mammo")
    make_mammo_dataset(root, 2, 0, "small")
    for path in root.rglob("*.dicom"):
        ds = pydicom.dcmread(path)
        for keyword, value in PHI.items():
            setattr(ds, keyword, value)
        ds.private_block(0x0011, "ACME PACS", create=True).add_new(0x01, "LO", PRIVATE_VALUE)
        ds.save_as(path)
    return root


@pytest.fixture(scope="module")
def synth_set(mammo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("set") / "set.h5"
    assert export_main(["generate", str(mammo_root), str(out), "--n", "3", "--candidates", "2", "--seed", "3",
                        *FAST]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def exported(synth_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dicom")
    export_dicom(synth_set, out)
    return out


def _image_path(out: Path, synth: SynthSet, row: int) -> Path:
    return out / IMAGE_DIR / f"{synthetic_image_id(synth.attrs['export_id'], int(synth.meta['index'][row]))}.dcm"


def _source_files(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in root.rglob("*.dicom")}


def test_round_trip_pixels_geometry_and_provenance(synth_set: Path, exported: Path, mammo_root: Path) -> None:
    sources = _source_files(mammo_root)
    with SynthSet(synth_set) as synth:
        assert len(synth) == 6
        for row in range(len(synth)):
            ds = pydicom.dcmread(_image_path(exported, synth, row))
            image, mask, source = synth.image(row), synth.mask(row), synth.source(row)
            pixels = apply_modality_lut(ds.pixel_array, ds)
            assert mask.any() and (~mask).any()
            assert np.array_equal(pixels[mask], image[mask])  # generated pixels exactly as in the set
            assert np.array_equal(pixels[~mask], source[~mask])  # everything else is the source, bit for bit
            assert np.array_equal(read_dicom(ds.filename).pixels, image)  # LINOP's own reader agrees
            src = pydicom.dcmread(sources[synth.meta["source_image_id"][row]], stop_before_pixels=True)
            assert ds.SOPClassUID == SecondaryCaptureImageStorage and ds.Modality == src.Modality == "MG"
            assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.ConversionType == "SYN"
            assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == src.BitsStored
            assert [float(v) for v in ds.PixelSpacing] == [float(v) for v in src.PixelSpacing]
            assert ds.ImageLaterality == src.ImageLaterality and ds.ViewPosition == src.ViewPosition
            assert list(ds.PatientOrientation) == list(src.PatientOrientation)
            assert float(ds.WindowCenter) == pytest.approx(synth.meta["voi_center"][row])
            assert float(ds.WindowWidth) == pytest.approx(synth.meta["voi_width"][row])
            reference = ds.SourceImageSequence[0]
            assert reference.ReferencedSOPInstanceUID == src.SOPInstanceUID
            assert reference.ReferencedSOPClassUID == src.SOPClassUID
            assert "SYNTHETIC" in ds.SeriesDescription and ds.ImageComments.startswith("SYNTHETIC IMAGE")
            assert f"seed={synth.meta['seed'][row]}" in ds.ImageComments and "engine=biharmonic" in ds.ImageComments
            assert "bit for bit" in ds.DerivationDescription
            equipment = ds.ContributingEquipmentSequence[0]
            assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109100"  # Synthesizing Equipment
            assert ds.ApprovalStatus == "UNAPPROVED" and ds.PatientIdentityRemoved == "YES"


def test_seg_matches_image_geometry_and_reads_back_with_highdicom(synth_set: Path, exported: Path) -> None:
    with SynthSet(synth_set) as synth:
        for row in range(len(synth)):
            image_path = _image_path(exported, synth, row)
            image = pydicom.dcmread(image_path, stop_before_pixels=True)
            seg = hd.seg.segread(exported / SEG_DIR / image_path.name)
            assert seg.SOPClassUID == SegmentationStorage and seg.SegmentationType == "BINARY"
            assert (seg.Rows, seg.Columns) == (image.Rows, image.Columns)
            assert seg.FrameOfReferenceUID == image.FrameOfReferenceUID
            assert seg.StudyInstanceUID == image.StudyInstanceUID and seg.SeriesInstanceUID != image.SeriesInstanceUID
            spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
            assert [float(v) for v in spacing] == [float(v) for v in image.PixelSpacing]
            referenced = seg.ReferencedSeriesSequence[0]
            assert referenced.SeriesInstanceUID == image.SeriesInstanceUID
            assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
            mask = seg.get_pixels_by_source_instance([image.SOPInstanceUID], segment_numbers=[1])
            assert np.array_equal(mask[0, :, :, 0].astype(bool), synth.mask(row))
            assert "SYNTHETIC" in seg.SeriesDescription
            again = hd.seg.Segmentation.from_dataset(pydicom.dcmread(seg.filename), copy=False)
            assert again.SOPInstanceUID == seg.SOPInstanceUID


def _uids(out: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"sop": set(), "series": set(), "study": set(), "frame": set()}
    for path in sorted(out.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found["sop"].add(ds.SOPInstanceUID)
        found["series"].add(ds.SeriesInstanceUID)
        found["study"].add(ds.StudyInstanceUID)
        found["frame"].add(ds.FrameOfReferenceUID)
    return found


def test_uids_are_unique_within_and_across_exports(synth_set: Path, exported: Path, tmp_path: Path) -> None:
    first = _uids(exported)
    assert len(first["sop"]) == 12  # 6 images + 6 SEGs, no UID twice
    assert len(first["frame"]) == 6
    with SynthSet(synth_set) as synth:
        n_studies = len(set(synth.meta["source_study_id"]))
    assert len(first["study"]) == n_studies and len(first["series"]) == 2 * n_studies
    second = _uids(export_dicom(synth_set, tmp_path / "again").out_dir)
    for kind in first:
        assert not first[kind] & second[kind], kind
    assert all(pydicom.uid.UID(uid).is_valid for uids in first.values() for uid in uids)


def test_no_identifying_attribute_of_the_source_reaches_the_output(exported: Path, mammo_root: Path) -> None:
    secrets = [*PHI.values(), PRIVATE_VALUE]
    for path in mammo_root.rglob("*.dicom"):  # the sources' own study and series UIDs are not copied either
        src = pydicom.dcmread(path, stop_before_pixels=True)
        secrets += [src.StudyInstanceUID, src.SeriesInstanceUID]
    files = [p for p in exported.rglob("*") if p.is_file()]
    assert len(files) >= 14
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} leaked into {path.name}"
    for path in exported.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.PatientName) == "SYNTHETIC^LINOP" and ds.PatientID.startswith("LINOP-SYNTH-")
        assert not any(element.tag.is_private for element in ds)
        assert "InstitutionName" not in ds and not ds.get("AccessionNumber")


def test_csv_rows_name_the_dicom_files(synth_set: Path, exported: Path) -> None:
    import csv

    with (exported / "finding_annotations.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and all(r["synthetic"] == "1" for r in rows)
    for r in rows:
        ds = pydicom.dcmread(exported / r["dicom_file"], stop_before_pixels=True)
        assert ds.SOPInstanceUID == r["sop_instance_uid"] and ds.StudyInstanceUID == r["study_instance_uid"]
        seg = pydicom.dcmread(exported / r["seg_file"], stop_before_pixels=True)
        assert seg.SOPInstanceUID == r["seg_sop_instance_uid"]
        assert float(r["xmax"]) > float(r["xmin"])


class _Stop(Exception):
    pass


def test_interrupted_export_resumes_and_keeps_finished_files(synth_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "dicom"

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise _Stop

    with pytest.raises(_Stop):
        export_dicom(synth_set, out, progress=stop_after_two)
    finished = sorted((out / IMAGE_DIR).glob("*.dcm"))
    assert len(finished) == 2 and len(list((out / SEG_DIR).glob("*.dcm"))) == 2
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    uids = {p.name: pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in finished}
    calls: list[tuple[int, int]] = []
    result = export_dicom(synth_set, out, progress=lambda d, t: calls.append((d, t)))
    assert (result.n_kept, result.n_written, result.n_replaced) == (2, 4, 0)
    assert calls[-1] == (6, 6)
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert all(pydicom.dcmread(out / IMAGE_DIR / n, stop_before_pixels=True).SOPInstanceUID == u
               for n, u in uids.items())  # fmt: skip
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    (out / SEG_DIR / finished[0].name).write_bytes(b"not a DICOM file")  # damaged: written again
    again = export_dicom(synth_set, out)
    assert (again.n_kept, again.n_written, again.n_replaced) == (5, 1, 1)
    state = json.loads((out / STATE_FILE).read_text())
    assert state["last_run"]["n_replaced"] == 1 and state["run_id"] == result.run_id


def test_a_folder_with_another_sets_export_is_refused(synth_set: Path, exported: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    shutil.copyfile(synth_set, other)
    with h5py.File(other, "r+") as file:
        file.attrs["export_id"] = "00000000-1111-2222-3333-444444444444"
    with pytest.raises(DataError, match="another set"):
        export_dicom(other, exported)


def test_a_set_without_source_uids_exports_without_a_source_reference(synth_set: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.h5"
    shutil.copyfile(synth_set, old)
    with h5py.File(old, "r+") as file:  # what a set written before schema 1.1 lacks
        for name in ADDED_COLUMNS:
            del file["meta"][name]
    result = export_dicom(old, tmp_path / "dicom")
    assert result.n_unreferenced == result.n_samples == 6
    with SynthSet(old) as synth:
        for row in range(len(synth)):
            ds = pydicom.dcmread(_image_path(tmp_path / "dicom", synth, row))
            assert "SourceImageSequence" not in ds and "unknown" in ds.DerivationDescription
            assert ds.Modality == "MG"  # VinDr-Mammo's
            assert np.array_equal(apply_modality_lut(ds.pixel_array, ds), synth.image(row))
            assert ds.BitsStored == int(synth.image(row).max()).bit_length()


def _cr_set(tmp_path: Path, dicom_dataset: object) -> Path:
    """A set made from a CR-like source: MONOCHROME1, 12 bits, Rescale Intercept -1024; one approved sample."""
    rng = np.random.default_rng(7)
    stored = rng.integers(200, 3900, size=(96, 128)).astype(np.uint16)
    ds = dicom_dataset(stored, photometric="MONOCHROME1", bits_stored=12, RescaleIntercept="-1024",
                       RescaleSlope="1", RescaleType="US", Modality="CR", SOPClassUID=ComputedRadiographyImageStorage,
                       PatientOrientation=["A", "F"])  # fmt: skip
    ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    path = tmp_path / "cr.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = read_dicom(path)
    request = InpaintRequest(box=(40.0, 30.0, 80.0, 66.0), seeds=(11,), context=1.5)
    (cand,) = inpaint_lesion(image, request, BiharmonicEngine(resolution=64), anatomy_check=False)
    source = SourceInfo(dataset="cxr", image_id="cr-1", study_id="study-1", split="training", laterality=None,
                        view="PA", pixel_spacing_mm=image.meta.pixel_spacing_mm,
                        dicom=SourceDicom.from_image(image))  # fmt: skip
    review = Review(decision="approved", reviewer="reader-7", reviewed_utc="2025-03-04T05:06:07+00:00")
    writer = SynthSetWriter(tmp_path / "cr.h5", config={"test": "cr"})
    writer.commit(0, [SynthSample(0, cand, image.pixels, source, review)])
    writer.finish()
    return tmp_path / "cr.h5"


def test_monochrome1_source_with_negative_intercept_round_trips_exactly(tmp_path: Path, dicom_dataset) -> None:
    set_path = _cr_set(tmp_path, dicom_dataset)
    result = export_dicom(set_path, tmp_path / "dicom", decisions=("approved",))
    assert result.n_samples == 1
    ds = pydicom.dcmread(result.image_files[0])
    with SynthSet(set_path) as synth:
        assert synth.meta["value_range"][0].tolist() == [-1024.0, 3071.0]
        assert np.array_equal(apply_modality_lut(ds.pixel_array, ds), synth.image(0))
        assert synth.image(0).min() < 0 and ds.pixel_array.min() >= 0
    assert ds.Modality == "CR" and ds.BitsStored == 12 and float(ds.RescaleIntercept) == -1024
    assert ds.PhotometricInterpretation == "MONOCHROME2" and "MONOCHROME1" in ds.DerivationDescription
    assert ds.ApprovalStatus == "APPROVED" and str(ds.ReviewerName) == "reader-7" and ds.ReviewDate == "20250304"
    assert "reviewer=reader-7" in ds.ImageComments
    seg = hd.seg.segread(result.seg_files[0])
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Mass"
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "LINOP biharmonic"


def test_pixel_encoding_refuses_what_it_cannot_store_exactly() -> None:
    eight = encode_pixels(np.array([[0, 255]], dtype=np.int32), 8, (0.0, 255.0))
    assert eight.bits_allocated == 8 and eight.stored.dtype == np.uint8 and eight.rescale_intercept == 0
    grown = encode_pixels(np.array([[0, 5000]], dtype=np.int32), 12, (math.nan, math.nan))
    assert grown.bits_stored == 13  # a value above the source depth widens it rather than clipping
    with pytest.raises(PixelEncodingError, match="rounding"):
        encode_pixels(np.array([[0.5]], dtype=np.float32), 12, (0.0, 4095.0))
    with pytest.raises(PixelEncodingError, match="17 bits"):
        encode_pixels(np.array([[-70000, 10]], dtype=np.int32), 16, (math.nan, math.nan))


def test_cli_writes_the_export_and_reports_files_per_second(synth_set: Path, tmp_path: Path, capsys) -> None:
    assert export_main(["dicom", str(synth_set), str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 sample(s) as 6 image(s) + 6 SEG(s)" in out and "files/s" in out
    assert export_main(["dicom", str(synth_set), str(tmp_path / "none"), "--approved-only", "--no-progress"]) == 0
    assert "0 sample(s)" in capsys.readouterr().out
