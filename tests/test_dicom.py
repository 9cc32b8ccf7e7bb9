"""linop_core.dicom: reading, the VOI pipeline, compressed syntaxes and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from linop_core.dicom import (
    DicomImage,
    VoiWindow,
    apply_window,
    choose_window,
    invert_window,
    read_dicom,
    read_dicom_meta,
    to_unit,
)
from linop_core.errors import DicomError

# --------------------------------------------------------------------------------------------- helpers


def _ramp(rows: int = 48, cols: int = 40, hi: int = 4000) -> np.ndarray:
    """A deterministic uint16 image with every row different (so flips and windows are visible)."""
    y, x = np.mgrid[0:rows, 0:cols]
    return ((y * cols + x) * hi // (rows * cols)).astype(np.uint16)


def _assert_dicom_error(excinfo: pytest.ExceptionInfo[DicomError], path: str | Path, *words: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert excinfo.value.path == str(path)
    for word in words:
        assert word.lower() in message.lower(), message


def _linear_reference(x: float, c: float, w: float) -> float:
    """PS3.3 C.11.2.1.2.1 written as the standard's if/else, with y in [0, 1]."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if x > c - 0.5 + (w - 1) / 2:
        return 1.0
    return (x - (c - 0.5)) / (w - 1) + 0.5


def _linear_exact_reference(x: float, c: float, w: float) -> float:
    if x <= c - w / 2:
        return 0.0
    if x > c + w / 2:
        return 1.0
    return (x - c) / w + 0.5


# ------------------------------------------------------------------------------------- real chest X-ray


@pytest.fixture(scope="module")
def rg1(rg1_path: str) -> DicomImage:
    return read_dicom(rg1_path)


def _chest_regions(shape: tuple[int, int]) -> dict[str, tuple[slice, slice]]:
    """Upper/mid lung fields on both sides and the mediastinum + spine strip between them (PA view)."""
    h, w = shape
    rows_lung = slice(int(0.20 * h), int(0.45 * h))
    return {
        "lung_image_left": (rows_lung, slice(int(0.20 * w), int(0.36 * w))),
        "lung_image_right": (rows_lung, slice(int(0.64 * w), int(0.80 * w))),
        "mediastinum_spine": (slice(int(0.20 * h), int(0.60 * h)), slice(int(0.46 * w), int(0.54 * w))),
    }


def test_rg1_chest_is_monochrome2_after_reading(rg1: DicomImage, rg1_path: str) -> None:
    raw = pydicom.dcmread(rg1_path).pixel_array
    meta = rg1.meta
    assert meta.photometric_interpretation == "MONOCHROME1"
    assert rg1.inverted
    assert rg1.value_range == (0.0, 32767.0)  # 15 bits stored, unsigned
    assert rg1.pixels.shape == (1955, 1841) and rg1.pixels.dtype == np.int32
    np.testing.assert_array_equal(rg1.pixels, 32767 - raw.astype(np.int32))
    # The header window 15000/30000 moves with the flip; its width does not.
    assert meta.windows == (VoiWindow(32767 - 15000.0, 30000.0, None),)
    assert meta.modality == "CR" and meta.view_position == "PA" and meta.bits_stored == 15
    assert meta.pixel_spacing_mm is None  # the file's PixelSpacing is [0, 0]
    assert meta.manufacturer == "Philips Medical Systems"
    assert not rg1.padding_mask.any()

    regions = _chest_regions(rg1.pixels.shape)
    unit = to_unit(rg1)
    for values in (rg1.pixels, unit):
        means = {name: float(values[r, c].mean()) for name, (r, c) in regions.items()}
        assert means["lung_image_left"] < means["mediastinum_spine"], means
        assert means["lung_image_right"] < means["mediastinum_spine"], means
    lungs = np.concatenate([unit[regions[k]].ravel() for k in ("lung_image_left", "lung_image_right")])
    # Dense tissue is bright by a clear margin, not by noise.
    assert float(unit[regions["mediastinum_spine"]].mean()) - float(lungs.mean()) > 0.1


def test_rg1_jpeg2000_twin_decodes_to_the_same_pixels(rg1: DicomImage, rg1_j2k_path: str) -> None:
    twin = read_dicom(rg1_j2k_path)
    assert twin.meta.transfer_syntax_uid == "1.2.840.10008.1.2.4.90"
    assert twin.inverted
    np.testing.assert_array_equal(twin.pixels, rg1.pixels)


def test_metadata_only_read_matches_full_read(rg1: DicomImage, rg1_path: str) -> None:
    header_only = read_dicom(rg1_path, read_pixels=False)
    assert header_only.pixels.size == 0 and header_only.padding_mask.size == 0
    assert header_only.meta == rg1.meta == read_dicom_meta(rg1_path)
    assert header_only.value_range == rg1.value_range and header_only.inverted
    with pytest.raises(ValueError, match="read_pixels=False"):
        to_unit(header_only)


# --------------------------------------------------------------------------------------------- metadata


def test_metadata_fields(write_dicom) -> None:
    path = write_dicom(
        _ramp(),
        ImageLaterality=None,
        Laterality="R",
        ViewPosition="MLO",
        PixelSpacing=None,
        ImagerPixelSpacing=[0.085, 0.07],
        WindowCenter=[2000, 1500],
        WindowWidth=[4000, 1000],
        WindowCenterWidthExplanation=["NORMAL", "HARDER"],
        VOILUTFunction="SIGMOID",
        PixelPaddingValue=0,
        PresentationIntentType="FOR PROCESSING",
        Manufacturer="Planmed",
        ManufacturerModelName="Nuance",
    )
    meta = read_dicom_meta(path)
    ds = pydicom.dcmread(path)
    assert meta.path == str(path)
    assert meta.sop_instance_uid == ds.SOPInstanceUID and meta.study_instance_uid == ds.StudyInstanceUID
    assert meta.laterality == "R" and meta.view_position == "MLO"
    assert (meta.manufacturer, meta.manufacturer_model, meta.modality) == ("Planmed", "Nuance", "MG")
    assert meta.pixel_spacing_mm == (0.085, 0.07)
    assert meta.windows == (VoiWindow(2000.0, 4000.0, "NORMAL"), VoiWindow(1500.0, 1000.0, "HARDER"))
    assert meta.voi_lut_function == "SIGMOID" and not meta.has_voi_lut_sequence
    assert meta.padding_value == 0.0
    assert meta.presentation_intent_type == "FOR PROCESSING"
    assert (meta.rows, meta.columns, meta.bits_stored) == (48, 40, 16)
    assert meta.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert meta.presentation_lut_shape is None


def test_image_laterality_wins_and_spacing_prefers_pixel_spacing(write_dicom) -> None:
    path = write_dicom(
        _ramp(), ImageLaterality="L", Laterality="R", PixelSpacing=[0.1, 0.2], ImagerPixelSpacing=[0.3, 0.3]
    )
    meta = read_dicom_meta(path)
    assert meta.laterality == "L" and meta.pixel_spacing_mm == (0.1, 0.2)
    assert meta.windows == () and meta.voi_lut_function == "LINEAR"


# --------------------------------------------------------------------------------------------- modality LUT


def test_integer_rescale_stays_int32(write_dicom) -> None:
    stored = _ramp()
    path = write_dicom(
        stored, bits_stored=12, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=1000, WindowWidth=500
    )
    image = read_dicom(path)
    assert image.pixels.dtype == np.int32
    np.testing.assert_array_equal(image.pixels, stored.astype(np.int32) * 2 - 100)
    assert image.value_range == (-100.0, 4095 * 2 - 100.0)
    assert image.meta.windows == (VoiWindow(1000.0, 500.0, None),)  # windows are already in output units


def test_fractional_rescale_is_float32_and_matches_pydicom(write_dicom) -> None:
    stored = _ramp()
    path = write_dicom(stored, RescaleSlope=0.5, RescaleIntercept=10.25)
    image = read_dicom(path)
    assert image.pixels.dtype == np.float32
    ds = pydicom.dcmread(path)
    np.testing.assert_allclose(image.pixels, apply_modality_lut(ds.pixel_array, ds), rtol=0, atol=1e-3)


def test_modality_lut_sequence_goes_through_pydicom(testdata_file) -> None:
    path = testdata_file("mlut_18.dcm")
    image = read_dicom(path)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(image.pixels, apply_modality_lut(ds.pixel_array, ds).astype(np.int32))
    assert image.value_range == (0.0, 65535.0)
    assert image.pixels.dtype == np.int32


# --------------------------------------------------------------------------------------------- inversion


def test_presentation_lut_inverse_flips_monochrome2(write_dicom) -> None:
    stored = _ramp(hi=4095)
    path = write_dicom(stored, bits_stored=12, PresentationLUTShape="INVERSE", WindowCenter=1000, WindowWidth=200)
    image = read_dicom(path)
    assert image.inverted
    np.testing.assert_array_equal(image.pixels, 4095 - stored.astype(np.int32))
    assert image.meta.windows[0].center == 4095 - 1000


def test_monochrome1_with_inverse_shape_is_one_flip_not_two(write_dicom) -> None:
    stored = _ramp(hi=4095)
    mono1 = read_dicom(write_dicom(stored, "m1.dcm", photometric="MONOCHROME1", bits_stored=12))
    both = read_dicom(
        write_dicom(stored, "m1inv.dcm", photometric="MONOCHROME1", bits_stored=12, PresentationLUTShape="INVERSE")
    )
    plain = read_dicom(write_dicom(stored, "m2.dcm", bits_stored=12, PresentationLUTShape="IDENTITY"))
    assert mono1.inverted and both.inverted and not plain.inverted
    np.testing.assert_array_equal(both.pixels, mono1.pixels)
    np.testing.assert_array_equal(plain.pixels + mono1.pixels, np.full(stored.shape, 4095))


def test_signed_rescaled_inversion_uses_the_representable_range(write_dicom) -> None:
    stored = (_ramp(hi=2000).astype(np.int16) - 1000).astype(np.int16)
    path = write_dicom(stored, photometric="MONOCHROME1", bits_stored=12, RescaleSlope=1, RescaleIntercept=500)
    image = read_dicom(path)
    lo, hi = -2048 + 500, 2047 + 500
    assert image.value_range == (lo, hi)
    np.testing.assert_array_equal(image.pixels, lo + hi - (stored.astype(np.int32) + 500))


# --------------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize("center,width", [(100.0, 1.0), (100.0, 2.0), (100.0, 51.0), (2047.5, 4096.0)])
def test_linear_window_matches_the_standard(center: float, width: float) -> None:
    x = np.arange(-200, 4300, 0.25, dtype=np.float32)
    got = apply_window(x, VoiWindow(center, width), "LINEAR")
    want = np.array([_linear_reference(float(v), center, width) for v in x], dtype=np.float32)
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert got.dtype == np.float32


def test_linear_exact_and_sigmoid_match_the_standard() -> None:
    x = np.arange(0, 400, 0.5, dtype=np.float32)
    window = VoiWindow(200.0, 75.0)
    exact = apply_window(x, window, "LINEAR_EXACT")
    want = np.array([_linear_exact_reference(float(v), 200.0, 75.0) for v in x])
    np.testing.assert_allclose(exact, want, atol=2e-6)
    sigmoid = apply_window(x, window, "sigmoid")  # case-insensitive, as files are not always upper case
    want = np.array([1.0 / (1.0 + math.exp(-4.0 * (float(v) - 200.0) / 75.0)) for v in x])
    np.testing.assert_allclose(sigmoid, want, atol=2e-6)
    assert abs(float(apply_window(np.array([200.0]), window, "SIGMOID")[0]) - 0.5) < 1e-7


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_invert_window_round_trips(function: str) -> None:
    window = VoiWindow(1800.0, 900.0)
    native = np.linspace(1450, 2150, 301, dtype=np.float32)  # inside the window, where the map is invertible
    unit = apply_window(native, window, function)
    np.testing.assert_allclose(invert_window(unit, window, function), native, atol=0.05)
    ends = invert_window(np.array([0.0, 1.0], dtype=np.float32), window, function)
    assert np.all(np.isfinite(ends)) and ends[0] < ends[1]


def test_bad_window_or_function_is_refused() -> None:
    x = np.zeros((2, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="width"):
        apply_window(x, VoiWindow(0.0, 0.5), "LINEAR")
    with pytest.raises(ValueError, match="width"):
        apply_window(x, VoiWindow(0.0, 0.0), "SIGMOID")
    with pytest.raises(ValueError, match="VOI LUT Function"):
        apply_window(x, VoiWindow(0.0, 10.0), "GAMMA")


def test_to_unit_uses_the_first_window_and_the_file_function(write_dicom) -> None:
    stored = _ramp(hi=4000)
    path = write_dicom(
        stored,
        WindowCenter=[2000, 1000],
        WindowWidth=[4000, 500],
        WindowCenterWidthExplanation=["NORMAL", "HARDER"],
        VOILUTFunction="LINEAR_EXACT",
    )
    image = read_dicom(path)
    pixels = stored.astype(np.float32)
    np.testing.assert_allclose(to_unit(image), apply_window(pixels, VoiWindow(2000, 4000), "LINEAR_EXACT"))
    np.testing.assert_allclose(to_unit(image, 1), apply_window(pixels, VoiWindow(1000, 500), "LINEAR_EXACT"))
    np.testing.assert_allclose(
        to_unit(image, 1, function="SIGMOID"), apply_window(pixels, VoiWindow(1000, 500), "SIGMOID")
    )
    custom = VoiWindow(300.0, 100.0, "mine")
    assert choose_window(image, custom) is custom
    assert choose_window(image, 1).explanation == "HARDER"
    with pytest.raises(DicomError) as excinfo:
        to_unit(image, 2)
    _assert_dicom_error(excinfo, path, "window 2", "2 window")


def test_inverted_window_displays_like_the_original_inverted(write_dicom) -> None:
    stored = _ramp(hi=4095)
    m1 = read_dicom(
        write_dicom(
            stored,
            "m1.dcm",
            photometric="MONOCHROME1",
            bits_stored=12,
            WindowCenter=1500,
            WindowWidth=1000,
            VOILUTFunction="LINEAR_EXACT",
        )
    )
    original = apply_window(stored.astype(np.float32), VoiWindow(1500, 1000), "LINEAR_EXACT")
    np.testing.assert_allclose(to_unit(m1), 1.0 - original, atol=1e-6)


def test_percentile_window_ignores_padding(write_dicom) -> None:
    rng = np.random.default_rng(7)
    stored = rng.integers(1000, 3000, size=(64, 64), dtype=np.uint16)
    stored[:, :20] = 4095  # a big padded border that would drag the percentiles up
    path = write_dicom(stored, bits_stored=12, PixelPaddingValue=4095, photometric="MONOCHROME1")
    image = read_dicom(path)
    assert image.meta.windows == ()
    np.testing.assert_array_equal(image.padding_mask, stored == 4095)
    assert image.meta.padding_value == 0.0  # 4095 in stored units, after the MONOCHROME1 flip

    tissue = image.pixels[~image.padding_mask]
    lo, hi = np.percentile(tissue, [0.5, 99.5], method="inverted_cdf")
    window = choose_window(image)
    assert window.explanation is not None and "percentile" in window.explanation
    unit = to_unit(image)
    assert np.all(unit[image.padding_mask] == 0.0)
    tissue_unit = unit[~image.padding_mask]
    assert tissue_unit[tissue == lo].max() == 0.0 and tissue_unit[tissue == hi].min() == 1.0
    inside = (tissue > lo) & (tissue < hi)
    assert np.all((tissue_unit[inside] > 0) & (tissue_unit[inside] < 1))
    # 0.5 % of the tissue lies at or below lo, 0.5 % at or above hi: both ends saturate only a little.
    assert 0.002 < float(np.mean(tissue_unit == 0.0)) < 0.02
    assert 0.002 < float(np.mean(tissue_unit == 1.0)) < 0.02


def test_padding_range_limit(write_dicom) -> None:
    stored = _ramp(hi=4000)
    path = write_dicom(
        stored, bits_stored=12, PixelPaddingValue=0, PixelPaddingRangeLimit=99, WindowCenter=2000, WindowWidth=4000
    )
    image = read_dicom(path)
    np.testing.assert_array_equal(image.padding_mask, stored <= 99)
    assert image.padding_mask.any()
    assert np.all(to_unit(image)[image.padding_mask] == 0.0)


# ------------------------------------------------------------------------------------- VOI LUT Sequence


def _with_voi_lut(ds: Dataset, first: int, data: np.ndarray, explanation: str) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", [len(data), first, 16])  # LUT Descriptor (US or SS: say which)
    item.add_new(0x00283006, "US", [int(v) for v in data])  # LUT Data (US or OW)
    item.LUTExplanation = explanation
    ds.VOILUTSequence = [item]
    return ds


def test_voi_lut_sequence_file_without_windows(testdata_file) -> None:
    path = testdata_file("vlut_04.dcm")
    image = read_dicom(path)
    ds = pydicom.dcmread(path)
    assert image.meta.has_voi_lut_sequence and image.meta.windows == ()
    want = apply_voi_lut(ds.pixel_array, ds).astype(np.float32) / 65535.0
    np.testing.assert_allclose(to_unit(image), want, atol=1e-6)
    span = choose_window(image)
    assert span.explanation is not None and span.explanation.startswith("VOI LUT 0")


def test_window_preferred_over_lut_unless_asked(dicom_dataset, write_dicom) -> None:
    stored = _ramp(hi=4095)
    lut = (np.sqrt(np.arange(4096) / 4095.0) * 65535).astype(np.uint16)  # non-linear on purpose
    ds = dicom_dataset(stored, photometric="MONOCHROME1", bits_stored=12, WindowCenter=2000, WindowWidth=1000)
    image = read_dicom(write_dicom(dataset=_with_voi_lut(ds, 0, lut, "SQRT")))
    windowed = to_unit(image)
    np.testing.assert_allclose(windowed, apply_window(image.pixels, choose_window(image), "LINEAR"))
    via_lut = to_unit(image, prefer_lut=True)
    # The LUT maps the file's own (MONOCHROME1) values, so the display is its complement.
    np.testing.assert_allclose(via_lut, 1.0 - lut[stored].astype(np.float32) / 65535.0, atol=1e-6)
    assert image.meta.voi_lut_explanations == ("SQRT",)
    assert not np.allclose(windowed, via_lut)


# --------------------------------------------------------------------------------------------- compression


@pytest.mark.parametrize(
    "compressed", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_lossless_syntaxes_decode_exactly(testdata_file, compressed: str) -> None:
    reference = read_dicom(testdata_file("MR_small.dcm"))
    image = read_dicom(testdata_file(compressed))
    assert image.meta.transfer_syntax_uid != reference.meta.transfer_syntax_uid
    np.testing.assert_array_equal(image.pixels, reference.pixels)
    assert image.meta.windows == reference.meta.windows


@pytest.mark.parametrize(
    "name,bits",
    [
        ("JPEG-LL.dcm", 16),
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", 8),
        ("JPGExtended.dcm", 12),
        ("JPEGLSNearLossless_16.dcm", 16),
    ],
)
def test_jpeg_lossless_extended_and_jpegls_decode(testdata_file, name: str, bits: int) -> None:
    path = testdata_file(name)
    image = read_dicom(path)
    ds = pydicom.dcmread(path)
    assert image.meta.bits_stored == bits
    assert image.pixels.shape == (ds.Rows, ds.Columns) and image.pixels.dtype == np.int32
    np.testing.assert_array_equal(image.pixels, apply_modality_lut(ds.pixel_array, ds).astype(np.int32))
    assert image.pixels.std() > 0  # an image, not a constant
    unit = to_unit(image)
    assert unit.min() == 0.0 and unit.max() == 1.0


def test_jpeg_baseline_encoded_with_pillow(dicom_dataset, write_dicom) -> None:
    pil_image = pytest.importorskip("PIL.Image")
    import io

    y, x = np.mgrid[0:64, 0:80]
    smooth = (128 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)).astype(np.uint8)
    buffer = io.BytesIO()
    pil_image.fromarray(smooth).save(buffer, format="JPEG", quality=95)
    ds = dicom_dataset(smooth, bits_stored=8)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    image = read_dicom(write_dicom(dataset=ds))
    assert image.meta.transfer_syntax_uid == JPEGBaseline8Bit
    assert float(np.abs(image.pixels - smooth.astype(np.int32)).mean()) < 2.0


def test_rle_encoded_mammogram_round_trips(dicom_dataset, write_dicom) -> None:
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 2**14, size=(96, 72), dtype=np.uint16)
    ds = dicom_dataset(stored, photometric="MONOCHROME1", bits_stored=14)
    ds.compress(RLELossless)
    image = read_dicom(write_dicom(dataset=ds))
    assert image.meta.transfer_syntax_uid == RLELossless
    np.testing.assert_array_equal(image.pixels, (2**14 - 1) - stored.astype(np.int32))


# --------------------------------------------------------------------------------------------- bad input


def test_not_a_dicom_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("patient,finding\n1,mass\n")
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "not a DICOM file")
    missing = tmp_path / "absent.dcm"
    with pytest.raises(DicomError) as excinfo:
        read_dicom_meta(missing)
    _assert_dicom_error(excinfo, missing, "not found")


def test_truncated_native_pixel_data(testdata_file, tmp_path: Path) -> None:
    path = testdata_file("MR_truncated.dcm")
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "truncated", "8130 of 8192")
    # A file cut in the middle of its pixel data.
    whole = Path(testdata_file("MR_small.dcm")).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole[: len(whole) - 3000])
    with pytest.raises(DicomError) as excinfo:
        read_dicom(cut)
    _assert_dicom_error(excinfo, cut, "truncated")


def test_truncated_or_damaged_header(testdata_file, tmp_path: Path) -> None:
    whole = Path(testdata_file("MR_small.dcm")).read_bytes()
    cut = tmp_path / "header_cut.dcm"
    cut.write_bytes(whole[:700])  # stops inside the header, before Rows/Columns
    for reader in (read_dicom, read_dicom_meta):
        with pytest.raises(DicomError) as excinfo:
            reader(cut)
        _assert_dicom_error(excinfo, cut, "truncated")
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(bytes(128) + b"DICM" + np.random.default_rng(0).bytes(2000))
    with pytest.raises(DicomError) as excinfo:
        read_dicom(garbage)
    _assert_dicom_error(excinfo, garbage, "damaged")


def test_truncated_compressed_pixel_data(testdata_file, tmp_path: Path) -> None:
    # File cut inside the encapsulated Pixel Data: pydicom drops the element and only warns.
    whole = Path(testdata_file("MR_small_jp2klossless.dcm")).read_bytes()
    cut = tmp_path / "cut_j2k.dcm"
    cut.write_bytes(whole[: len(whole) - 1500])
    with pytest.raises(DicomError) as excinfo:
        read_dicom(cut)
    _assert_dicom_error(excinfo, cut, "truncated")
    # Complete file whose code stream was cut: libjpeg decodes JPEG-LS like this without any error.
    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"):
        ds = pydicom.dcmread(testdata_file(name))
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([frame[: len(frame) * 7 // 10]])
        path = tmp_path / f"short_{name}"
        ds.save_as(path)
        with pytest.raises(DicomError) as excinfo:
            read_dicom(path)
        _assert_dicom_error(excinfo, path, "truncated")


@pytest.mark.parametrize("name,words", [("test-SR.dcm", ("no image", "SR")), ("rtplan.dcm", ("no image", "RT Plan"))])
def test_objects_without_pixels(testdata_file, name: str, words: tuple[str, ...]) -> None:
    path = testdata_file(name)
    for reader in (read_dicom, read_dicom_meta):
        with pytest.raises(DicomError) as excinfo:
            reader(path)
        _assert_dicom_error(excinfo, path, *words)


def test_image_header_without_pixel_data(dicom_dataset, write_dicom) -> None:
    ds = dicom_dataset(_ramp())
    del ds.PixelData
    path = write_dicom(dataset=ds)
    assert read_dicom_meta(path).rows == 48  # the header alone is readable
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "no pixel data")


@pytest.mark.parametrize(
    "name,words",
    [
        ("emri_small.dcm", ("multi-frame", "10 frames")),
        ("SC_rgb.dcm", ("colour", "RGB")),
        ("OBXXXX1A.dcm", ("colour", "PALETTE COLOR")),
    ],
)
def test_multiframe_and_colour_are_refused(testdata_file, name: str, words: tuple[str, ...]) -> None:
    path = testdata_file(name)
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, *words)


def test_zero_size_image(dicom_dataset, write_dicom) -> None:
    ds = dicom_dataset(_ramp())
    ds.Rows = 0
    ds.PixelData = b""
    path = write_dicom(dataset=ds)
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "zero-size")


def test_undecodable_jpeg_stream(testdata_file, tmp_path: Path) -> None:
    # A JPEG Extended code stream no decoder can read: the one line names each decoder's reason.
    ds = pydicom.dcmread(testdata_file("JPGExtended.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:2] + bytes(200) + b"\xff\xd9"])  # start and end markers, no frame header
    path = tmp_path / "scrambled.dcm"
    ds.save_as(path)
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "cannot be decoded", "JPEG Extended", "pylibjpeg")


def test_syntax_no_pydicom_decoder_supports(dicom_dataset, write_dicom) -> None:
    ds = dicom_dataset(_ramp())
    # JPEG 2000 Part 2 multi-component: a valid image transfer syntax that no pydicom plugin decodes.
    syntax = "1.2.840.10008.1.2.4.92"
    with pytest.raises(NotImplementedError):
        get_decoder(syntax)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60) + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    path = write_dicom(dataset=ds)
    assert read_dicom_meta(path).transfer_syntax_uid == syntax
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "no pydicom decoder", syntax)


def test_compression_without_an_installed_plugin(testdata_file, monkeypatch: pytest.MonkeyPatch) -> None:
    # Make pydicom's own JPEG-LS decoder believe its only plugin is missing, as in an install without
    # pylibjpeg-libjpeg: pydicom itself would then refuse to decode.
    decoder = get_decoder(JPEGLSLossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg", "pylibjpeg-libjpeg")})
    path = testdata_file("MR_small_jpeg_ls_lossless.dcm")
    with pytest.raises(RuntimeError):
        pydicom.dcmread(path).pixel_array  # noqa: B018 - the patched state is what pydicom sees
    with pytest.raises(DicomError) as excinfo:
        read_dicom(path)
    _assert_dicom_error(excinfo, path, "no decoder plugin is installed", "JPEG-LS", "pylibjpeg-libjpeg")
    assert read_dicom_meta(path).rows == 64  # the header still reads without a decoder


def test_all_padding_image_has_no_percentile_window(write_dicom) -> None:
    path = write_dicom(np.full((8, 8), 7, dtype=np.uint16), PixelPaddingValue=7)
    image = read_dicom(path)
    assert image.padding_mask.all()
    with pytest.raises(DicomError) as excinfo:
        to_unit(image)
    _assert_dicom_error(excinfo, path, "padding")
