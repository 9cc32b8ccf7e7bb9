"""Hostile and real-world DICOM input: every malformed file gives one line naming it (never a traceback, never
unbounded memory), and real third-party files (pydicom-data: NEMA WG04 CR chests and extremities, 12-bit JPEG
Extended, RLE, deflate, files without the Part-10 preamble) decode and are labelled from their own header."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hostile_inputs import MALFORMED_DICOM, DicomCase, assert_one_line, deflate_bomb, run_bounded
from pydicom.pixels import pixel_array
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit, RLELossless

from linop_core.catalog import Catalog, ImageLabel, find_dicom_files, image_label
from linop_core.cli.data import main as data_main
from linop_core.dicom import read_dicom, read_dicom_meta, to_unit
from linop_core.dicom.decoding import decode_stored, decoder_order
from linop_core.dicom.limits import MIB, DicomLimits
from linop_core.errors import DicomError
from linop_core.inspect_folder import inspect_folder

# Small ceilings for the in-process cases: far above any file here that is genuine.
TEST_LIMITS = DicomLimits(max_pixel_bytes=64 * MIB, max_inflated_bytes=32 * MIB)


@pytest.mark.parametrize("case", MALFORMED_DICOM, ids=lambda c: c.name)
def test_malformed_dicom_is_one_line_or_a_finite_image(case: DicomCase, tmp_path: Path) -> None:
    path = case.make(tmp_path / f"{case.name}.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values it was given
        try:
            read_dicom_meta(path, limits=TEST_LIMITS)
        except DicomError as exc:
            assert_one_line(str(exc), str(path))
        try:
            image = read_dicom(path, limits=TEST_LIMITS)
        except DicomError as exc:
            assert_one_line(str(exc), str(path), *case.words)
            return
    assert not case.words, f"{case.name}: read although it should be refused ({case.words})"
    assert np.isfinite(image.pixels).all()
    assert np.isfinite(to_unit(image)).all()


def test_malformed_dicom_on_the_command_line_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for case in MALFORMED_DICOM[:3] + MALFORMED_DICOM[22:24]:
        path = case.make(tmp_path / f"{case.name}.dcm")
        assert data_main(["inspect", str(path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.startswith("linop-data: error:")]
        assert len(errors) == 1 and str(path) in errors[0], err


def test_memory_stays_bounded_on_bombs_and_lying_lengths(tmp_path: Path) -> None:
    bomb = deflate_bomb(tmp_path / "bomb.dcm", 1100)  # 1.1 MB that inflates to 1.1 GiB, beyond the address space
    assert bomb.stat().st_size < 2 * MIB
    others = [case.make(tmp_path / f"{case.name}.dcm") for case in MALFORMED_DICOM
              if case.name in ("huge-declared-image", "lying-length-pixel-data", "lying-length-modality")]
    result = run_bounded(f"""
        import warnings; warnings.simplefilter("ignore")
        from linop_core.dicom import read_dicom
        from linop_core.dicom.limits import MIB, DicomLimits
        from linop_core.errors import DicomError
        limit()
        outcomes = {{}}
        for path in {[str(p) for p in (bomb, *others)]!r}:
            try:
                read_dicom(path, limits=DicomLimits(max_inflated_bytes=256 * MIB))  # the scan stops at 256 MiB
                outcomes[path] = "read"
            except DicomError as exc:
                outcomes[path] = str(exc)
        done({{"outcomes": outcomes}})
    """, headroom_mib=768)
    assert "ceiling" in result["outcomes"][str(bomb)]
    assert not any("MemoryError" in text for text in result["outcomes"].values()), result
    assert result["maxrss_mib"] < 500, result


# ----------------------------------------------------------------------------------------------- real files


def test_jpeg_extended_that_libjpeg_rejects_decodes_with_gdcm(testdata_file) -> None:
    rejected = testdata_file("JPEG-lossy.dcm")  # 12-bit JPEG Extended; libjpeg: "A misplaced marker segment"
    intact = testdata_file("JPGExtended.dcm")  # the same image, a stream libjpeg accepts
    with pytest.raises(Exception, match="misplaced marker"):
        pixel_array(rejected, decoding_plugin="pylibjpeg")
    ds = pydicom.dcmread(rejected)
    stored, decoder = decode_stored(ds, JPEGExtended12Bit)
    assert decoder == "gdcm"
    image = read_dicom(rejected)
    libjpeg = pixel_array(intact, decoding_plugin="pylibjpeg").astype(np.int32)
    assert image.pixels.shape == libjpeg.shape == (1024, 256)
    # lossy JPEG decoders may round the IDCT differently: one grey level at most, on a few percent of pixels
    difference = np.abs(image.pixels - libjpeg)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.05
    assert np.array_equal(image.pixels, stored)


def test_decoders_are_tried_pylibjpeg_then_pillow_then_gdcm() -> None:
    order = decoder_order(JPEGBaseline8Bit)
    assert order[0] == "pylibjpeg" and order.index("pillow") < order.index("gdcm") == len(order) - 1
    assert decoder_order(RLELossless)[0] == "pylibjpeg"  # pylibjpeg-rle, before pydicom's pure-Python RLE


def test_rle_is_decoded_by_pylibjpeg_rle(testdata_file) -> None:
    ds = pydicom.dcmread(testdata_file("MR_small_RLE.dcm"))
    stored, decoder = decode_stored(ds, RLELossless)
    assert decoder == "pylibjpeg"
    assert np.array_equal(stored, pydicom.dcmread(testdata_file("MR_small.dcm")).pixel_array)


def test_file_without_preamble_is_read_and_says_so(testdata_file, tmp_path: Path) -> None:
    # The classic ACR-NEMA layout (CR-MONO1 style): no preamble, no 'DICM', no meta, implicit VR.
    source = testdata_file("RG1_UNCR.dcm")  # NEMA WG04 CR chest, MONOCHROME1, 15 bits
    ds = pydicom.dcmread(source)
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "CR-MONO1"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[:2] == b"\x08\x00"
    image = read_dicom(path)
    assert not image.meta.has_preamble and read_dicom(source).meta.has_preamble
    assert image.meta.transfer_syntax_uid == "1.2.840.10008.1.2"
    assert np.array_equal(image.pixels, read_dicom(source).pixels) and image.inverted
    assert find_dicom_files(tmp_path) == [path]  # found without a suffix


def test_real_deflated_file_reads(testdata_file) -> None:
    image = read_dicom(testdata_file("image_dfl.dcm"))
    assert image.meta.transfer_syntax_uid == "1.2.840.10008.1.2.1.99" and image.pixels.shape == (512, 512)


@pytest.mark.parametrize(
    "modality,body_part,sop_class,label",
    [
        ("CR", "CHEST", None, ImageLabel.CHEST_XRAY),
        ("DX", "Chest", None, ImageLabel.CHEST_XRAY),
        ("CR", "EXTREMITY", None, ImageLabel.OTHER_RADIOGRAPH),
        ("CR", None, None, ImageLabel.OTHER_RADIOGRAPH),
        ("CR", "BREAST", None, ImageLabel.MAMMOGRAM),
        ("MG", None, None, ImageLabel.MAMMOGRAM),
        ("DX", None, "1.2.840.10008.5.1.4.1.1.1.2", ImageLabel.MAMMOGRAM),
        ("CT", "CHEST", None, ImageLabel.OTHER),
        ("MR", "ABDOMEN", None, ImageLabel.OTHER),
    ],
)
def test_image_label_comes_from_modality_and_body_part(
    modality: str, body_part: str | None, sop_class: str | None, label: ImageLabel
) -> None:
    assert image_label(modality, body_part, sop_class) is label


def test_plain_folder_labels_and_inspection(testdata_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "vendor"
    folder.mkdir()
    for name in ("RG1_J2KI.dcm", "RG3_J2KI.dcm", "MR_small.dcm", "JPEG-lossy.dcm"):
        shutil.copy(testdata_file(name), folder / name)
    (folder / "broken.dcm").write_bytes(b"not a dicom file at all")
    catalog = Catalog.open(folder)
    labels = {e.image_id: e.label for e in catalog.entries if e.ok}
    assert labels["RG1_J2KI.dcm"] is ImageLabel.CHEST_XRAY  # CR CHEST
    assert labels["RG3_J2KI.dcm"] is ImageLabel.OTHER_RADIOGRAPH  # a CR, but of an extremity
    assert labels["MR_small.dcm"] is ImageLabel.OTHER

    report = inspect_folder(folder, decode=True)
    assert report["files"] == 5 and report["readable"] == 4 and report["unreadable_count"] == 1
    assert report["counts"]["modality"] == {"CR": 2, "MR": 1, "NM": 1}
    assert report["counts"]["transfer_syntax"]["JPEG 2000 Image Compression"] == 2
    assert report["unreadable"][0]["file"] == "broken.dcm" and "not a DICOM file" in report["unreadable"][0]["reason"]

    assert data_main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "RG3_J2KI.dcm" in out and "other radiograph" in out and "broken.dcm: not a DICOM file" in out
