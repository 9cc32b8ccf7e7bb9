"""Time read_dicom + to_unit on a synthetic full-field 16-bit mammogram (3518 x 2800, VinDr's commonest size).

Writes files to a temp dir: MONOCHROME1 with padding and a multi-valued header window (Giotto-like),
MONOCHROME2 with padding and no window (percentile path), and (with --compressed) the first one as JPEG 2000
lossless and RLE. Prints the median over --runs of read, to_unit and total in milliseconds, and the header-only
read. Usage: ``python benchmarks/bench_dicom.py [--runs 7] [--rows 3518 --cols 2800] [--compressed]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from linop_core.dicom import read_dicom, read_dicom_meta, to_unit

MAMMO_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def synthetic_mammogram(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A half-ellipse 'breast' against the chest wall with smooth density and noise; 0 outside (padding)."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, ry, rx = rows / 2.0, rows * 0.45, cols * 0.8
    inside = ((y - cy) / ry) ** 2 + (x / rx) ** 2 <= 1.0
    tissue = 30000 + 15000 * np.cos(x / 210.0) * np.sin(y / 330.0) + rng.normal(0, 800, (rows, cols))
    image = np.where(inside, np.clip(tissue, 1, 65535), 0)
    return image.astype(np.uint16)


def write_mammogram(
    path: Path, pixels: np.ndarray, photometric: str, with_window: bool, syntax: UID | None = None
) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MAMMO_FOR_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=16)
    ds.PixelPaddingValue = 0
    if with_window:
        ds.WindowCenter = [30000, 28000, 32000]
        ds.WindowWidth = [30000, 20000, 40000]
        ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER", "SOFTER"]
    if syntax is not None:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)


def time_case(path: Path, runs: int) -> tuple[float, float, float]:
    reads, maps, totals = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        image = read_dicom(path)
        t1 = time.perf_counter()
        unit = to_unit(image)
        t2 = time.perf_counter()
        assert unit.shape == image.pixels.shape
        reads.append(t1 - t0)
        maps.append(t2 - t1)
        totals.append(t2 - t0)
    return tuple(1000.0 * statistics.median(v) for v in (reads, maps, totals))  # type: ignore[return-value]


def time_header(path: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        read_dicom_meta(path)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=3518)
    parser.add_argument("--cols", type=int, default=2800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compressed", action="store_true", help="also time JPEG 2000 lossless and RLE files")
    args = parser.parse_args()

    pixels = synthetic_mammogram(args.rows, args.cols, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "MONOCHROME1 + header window": (Path(tmp) / "mono1_window.dcm", "MONOCHROME1", True, None),
            "MONOCHROME2 + percentile window": (Path(tmp) / "mono2_percentile.dcm", "MONOCHROME2", False, None),
        }
        if args.compressed:
            cases["MONOCHROME1, JPEG 2000 lossless"] = (Path(tmp) / "j2k.dcm", "MONOCHROME1", True, JPEG2000Lossless)
            cases["MONOCHROME1, RLE lossless"] = (Path(tmp) / "rle.dcm", "MONOCHROME1", True, RLELossless)
        print(f"{args.rows}x{args.cols} uint16, padding outside the breast, median of {args.runs} runs")
        for name, (path, photometric, with_window, syntax) in cases.items():
            write_mammogram(path, pixels, photometric, with_window, syntax)
            read_dicom(path)  # warm the page cache and imports, as a viewer flipping through a study would
            read_ms, map_ms, total_ms = time_case(path, args.runs)
            header_ms = time_header(path, args.runs)
            print(f"{name:34s} read {read_ms:7.1f} ms   to_unit {map_ms:7.1f} ms   total {total_ms:7.1f} ms"
                  f"   header only {header_ms:5.1f} ms")


if __name__ == "__main__":
    main()
