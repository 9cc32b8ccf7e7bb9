"""Generators of hostile inputs for the hostile-input tests: malformed DICOMs, CSVs and pickles, made small at
test time (nothing large is committed), plus a memory-limited subprocess runner and a size-limited disk.

Each generator family is a list of named cases, so the tests can say how many of each class were tried.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20

# ----------------------------------------------------------------------------------------------- DICOM


def plain_dataset(rows: int = 64, cols: int = 48, **elements: Any) -> FileDataset:
    """A small native MONOCHROME2 DX image (16-bit ramp) with a window; ``elements`` override keywords."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.set_pixel_data(np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 7, "MONOCHROME2", 16)
    ds.WindowCenter = "9000"
    ds.WindowWidth = "18000"
    for keyword, value in elements.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid DS values ("nan", "inf") are the point here
        ds.save_as(path, enforce_file_format=True)
    return path


def deflate_bomb(path: Path, inflated_mib: int) -> Path:
    """A Deflated Explicit VR Little Endian file whose dataset inflates to ``inflated_mib`` MiB (mostly a
    zero-filled Pixel Data element) from a file of about ``inflated_mib`` kB: independent full-flushed deflate
    blocks of 1 MiB of zeros, repeated, so building it costs nothing."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 512, 512, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    header = body.getvalue() + b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<I", inflated_mib * MIB)
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = first.compress(header) + first.flush(zlib.Z_FULL_FLUSH)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = block.compress(bytes(MIB)) + block.flush(zlib.Z_FULL_FLUSH)
    stream += zeros * inflated_mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_file_meta_info(head, meta, enforce_standard=True)
    path.write_bytes(b"\0" * 128 + b"DICM" + head.getvalue() + stream)
    return path


def _with_lying_length(tag: bytes, vr: bytes) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        data = bytearray(save(plain_dataset(), path).read_bytes())
        i = data.find(tag + vr)
        if vr in (b"OB", b"OW", b"UN", b"UT", b"SQ"):
            data[i + 8 : i + 12] = struct.pack("<I", 0xFFFFFFF0)
        else:
            data[i + 6 : i + 8] = struct.pack("<H", 0xFFFF)
        path.write_bytes(bytes(data))
        return path

    return make


def _huge_compressed(path: Path) -> Path:
    """A JPEG 2000 file whose header declares a 60000 x 60000 image (7.2 GB decoded)."""
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.Rows = ds.Columns = 60000
    ds.PixelData = encapsulate([frame])
    return save(ds, path)


def _cut(name: str, fraction: float) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        from pydicom.data import get_testdata_file

        data = Path(get_testdata_file(name)).read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return make


def _flipped(seed: int) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        data = bytearray(save(plain_dataset(), path).read_bytes())
        rng = np.random.default_rng(seed)
        for position in rng.integers(128, 700, size=6):  # the header: where a flipped byte changes meaning
            data[int(position)] = int(rng.integers(256))
        path.write_bytes(bytes(data))
        return path

    return make


def _setting(**elements: Any) -> Callable[[Path], Path]:
    return lambda path: save(plain_dataset(**elements), path)


def _raw(data: bytes) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return make


@dataclass(frozen=True)
class DicomCase:
    name: str
    make: Callable[[Path], Path]
    words: tuple[str, ...] = ()  # what the one-line error must say; empty: reading may also succeed


MALFORMED_DICOM: tuple[DicomCase, ...] = (
    DicomCase("slope-inf", _setting(RescaleSlope="inf", RescaleIntercept="0"), ("Rescale Slope", "inf")),
    DicomCase("slope-minus-inf", _setting(RescaleSlope="-inf", RescaleIntercept="0"), ("Rescale Slope",)),
    DicomCase("slope-nan", _setting(RescaleSlope="nan", RescaleIntercept="0"), ("Rescale Slope", "nan")),
    DicomCase("slope-1e39", _setting(RescaleSlope="1e39", RescaleIntercept="0"), ("Rescale Slope",)),
    DicomCase("slope-zero", _setting(RescaleSlope="0", RescaleIntercept="0"), ("Rescale Slope is 0",)),
    DicomCase("intercept-inf", _setting(RescaleSlope="1", RescaleIntercept="inf"), ("Rescale Intercept",)),
    DicomCase("intercept-nan", _setting(RescaleSlope="1", RescaleIntercept="nan"), ("Rescale Intercept",)),
    DicomCase("range-overflow", _setting(RescaleSlope="1e35", RescaleIntercept="0"), ("float image",)),
    DicomCase("window-center-nan", _setting(WindowCenter="nan"), ("Window Center", "nan")),
    DicomCase("window-center-inf", _setting(WindowCenter="inf"), ("Window Center",)),
    DicomCase("window-width-inf", _setting(WindowWidth="inf"), ("Window Width",)),
    DicomCase("window-width-nan", _setting(WindowWidth="nan"), ("Window Width",)),
    DicomCase("window-center-1e40", _setting(WindowCenter="1e40"), ("Window Center",)),
    DicomCase("second-window-nan", _setting(WindowCenter=["9000", "nan"], WindowWidth=["18000", "100"]),
              ("Window Center 2",)),
    DicomCase("deflate-bomb", lambda p: deflate_bomb(p, 96), ("deflate", "ceiling")),
    DicomCase("deflate-damaged", lambda p: _damage_deflate(p), ("deflated dataset is damaged",)),
    DicomCase("huge-declared-image", _huge_compressed, ("declares", "ceiling")),
    DicomCase("lying-length-pixel-data", _with_lying_length(b"\xe0\x7f\x10\x00", b"OW")),
    DicomCase("lying-length-modality", _with_lying_length(b"\x08\x00\x60\x00", b"CS")),
    DicomCase("zero-rows", _setting(Rows=0), ("zero-size",)),
    DicomCase("no-bits-allocated", _setting(BitsAllocated=None), ("Bits",)),
    DicomCase("no-photometric", _setting(PhotometricInterpretation=None), ("Photometric",)),
    DicomCase("empty-file", _raw(b""), ("not a DICOM file",)),
    DicomCase("text-file", _raw(b"patient,notes\nsomeone,hello\n" * 10), ("not a DICOM file",)),
    DicomCase("png-file", _raw(b"\x89PNG\r\n\x1a\n" + bytes(200)), ("not a DICOM file",)),
    DicomCase("marker-only", _raw(bytes(128) + b"DICM"), ("no image",)),
    DicomCase("zeros", _raw(bytes(4096)), ("not a DICOM file",)),
    DicomCase("group-8-garbage", _raw(b"\x08\x00\x05\x00" + bytes(range(256)) * 4), ()),
    *(DicomCase(f"cut-{name.split('.')[0]}-{int(f * 100)}", _cut(name, f), ())
      for name in ("MR_small.dcm", "JPEG2000.dcm") for f in (0.05, 0.2, 0.5, 0.8, 0.95, 0.99)),
    *(DicomCase(f"flipped-{seed}", _flipped(seed), ()) for seed in range(9)),
)


def _damage_deflate(path: Path) -> Path:
    deflate_bomb(path, 2)
    data = bytearray(path.read_bytes())
    data[-40:] = b"\xff" * 40
    path.write_bytes(bytes(data))
    return path


# ----------------------------------------------------------------------------------------------- VinDr CSVs

MAMMO_BREAST_HEADER = (
    "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,split"
)
MAMMO_FINDING_HEADER = (
    "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,"
    "finding_categories,finding_birads,xmin,ymin,xmax,ymax,split"
)


def mammo_rows(n_studies: int = 6) -> tuple[list[str], list[str]]:
    """Breast-level and finding rows of ``n_studies`` studies (4 images each; one Mass per study)."""
    breast, finding = [], []
    for s in range(n_studies):
        study = f"{s:032x}"
        for v, (lat, view) in enumerate((("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))):
            image = f"{s * 4 + v + 1:032x}"
            common = f"{study},se{s},{image},{lat},{view},3518,2800"
            birads = "BI-RADS 4" if v == 1 else "BI-RADS 1"
            breast.append(f"{common},{birads},DENSITY C,training")
            if v == 1:
                box = f"{1000 + s},{1200 + s},{1300 + s},{1500 + s}"
                finding.append(f"{common},{birads},DENSITY C,['Mass'],BI-RADS 4,{box},training")
            else:
                finding.append(f"{common},{birads},DENSITY C,['No Finding'],,,,,,training")
    return breast, finding


def write_mammo_root(root: Path, breast: list[str], finding: list[str], *, encoding: str = "utf-8") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "breast-level_annotations.csv").write_bytes(
        ("\n".join([MAMMO_BREAST_HEADER, *breast]) + "\n").encode(encoding))
    (root / "finding_annotations.csv").write_bytes(
        ("\n".join([MAMMO_FINDING_HEADER, *finding]) + "\n").encode(encoding))
    return root


CXR_ANNOTATION_HEADER = "image_id,rad_id,class_name,x_min,y_min,x_max,y_max"


def cxr_annotation_rows(n_images: int = 5) -> list[str]:
    """Three readers per image; images with an even index have overlapping Nodule/Mass boxes."""
    rows = []
    for i in range(n_images):
        image = f"{i + 100:032x}"
        for r, shift in ((1, 0), (2, 6), (3, 12)):
            if i % 2 == 0:
                rows.append(f"{image},R{r},Nodule/Mass,{500 + shift},{600 + shift},{700 + shift},{800 + shift}")
            else:
                rows.append(f"{image},R{r},No finding,,,,")
    return rows


def write_cxr_root(root: Path, rows: list[str]) -> Path:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "annotations_train.csv").write_text("\n".join([CXR_ANNOTATION_HEADER, *rows]) + "\n")
    return root


# ----------------------------------------------------------------------------------------------- pickles

BIG = 3_500_000_000
FLOOD_CAP = 200_000


def _legacy_stream(numel: int) -> bytes:
    """A legacy torch.save stream of one FloatStorage whose persistent id declares ``numel`` elements."""
    import torch

    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
                out, protocol=2)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj == "STORAGE" else None

    Pickler(out, protocol=2).dump("STORAGE")
    pickle.dump(["0"], out, protocol=2)
    out.write(struct.pack("<q", numel) + bytes(8))
    return out.getvalue()


class _StorageBytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        import torch

        return (torch.storage._load_from_bytes, (self.data,))


def _zip_with(data_pkl: bytes, path: Path, extra: dict[str, bytes] | None = None, *, deflate: bool = False) -> Path:
    import torch

    template = io.BytesIO()
    torch.save({"format": "linop-mat"}, template)
    with zipfile.ZipFile(template) as source:
        names = [n for n in source.namelist()]
        contents = {n: source.read(n) for n in names}
    prefix = names[0].split("/")[0]
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, content in contents.items():
            archive.writestr(name, data_pkl if name.endswith("data.pkl") else content)
        for name, content in (extra or {}).items():
            archive.writestr(f"{prefix}/{name}", content)
    return path


def _cut_file(make: Callable[[Path], Path], fraction: float) -> Callable[[Path], Path]:
    def cut(path: Path) -> Path:
        data = make(path).read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return cut


def _checkpoint(path: Path) -> Path:
    import torch

    torch.save({"format": "linop-mat", "format_version": 1, "G_ema": {"w": torch.zeros(4096)}}, path)
    return path


def _legacy_pth(path: Path) -> Path:
    import torch

    torch.save({"w": torch.zeros(4096)}, path, _use_new_zipfile_serialization=False)
    return path


_BYTEARRAY = b"\x80\x02cbuiltins\nbytearray\nq\x00\x8a\x05" + BIG.to_bytes(5, "little") + b"\x85R."


@dataclass(frozen=True)
class PickleCase:
    name: str
    make: Callable[[Path], Path]
    words: tuple[str, ...]
    loaders: tuple[str, ...] = ("official", "checkpoint", "training_state")


MALICIOUS_MODELS: tuple[PickleCase, ...] = (
    PickleCase("bytearray-size", _raw(_BYTEARRAY), ("bytearray",), ("official",)),
    PickleCase("bytearray-str-encoding", _raw(b"\x80\x02cbuiltins\nbytearray\nX\x03\x00\x00\x00abcX\x05\x00\x00"
                                              b"\x00rot13\x86R."), ("bytearray",), ("official",)),
    PickleCase("binbytes8-declared", _raw(b"\x80\x04\x8e" + BIG.to_bytes(8, "little") + b"xx."), ("declares",),
               ("official",)),
    PickleCase("binunicode8-declared", _raw(b"\x80\x04\x8d" + BIG.to_bytes(8, "little") + b"xx."), ("declares",),
               ("official",)),
    PickleCase("long4-declared", _raw(b"\x80\x02\x8b" + (2**31 - 1).to_bytes(4, "little") + b"x."), ("declares",),
               ("official",)),
    PickleCase("frame-declared", _raw(b"\x80\x04\x95" + BIG.to_bytes(8, "little") + b"N."), ("declares",),
               ("official",)),
    PickleCase("numpy-reconstruct-shape", _raw(b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                                               b"\x8a\x05" + BIG.to_bytes(5, "little") + b"\x85C\x01b\x87R."),
               ("numpy array",), ("official",)),
    PickleCase("codecs-encode-other", _raw(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib"
                                           b"\x86R."), ("_codecs.encode",), ("official",)),
    # run with MAX_PICKLE_OPS lowered to FLOOD_CAP (walking two million operations takes seconds)
    PickleCase("op-flood", _raw(b"\x80\x02(" + b"}" * 250_000 + b"l."), ("operations",), ("official",)),
    PickleCase("storage-in-snapshot", lambda p: _dump({"G_ema": {"w": _StorageBytes(_legacy_stream(BIG // 4))}}, p),
               ("storage",), ("official",)),
    PickleCase("legacy-pth-storage", lambda p: _raw(_legacy_stream(BIG // 4))(p), ("storage",),
               ("official", "training_state")),
    PickleCase("zip-bytearray", lambda p: _zip_with(_BYTEARRAY, p), ("bytearray",)),
    PickleCase("zip-deflate-bomb", lambda p: _zip_declaring(p, "data/0", BIG), ("inflate",)),
    PickleCase("zip-storage-beyond-record", lambda p: _zip_storage_beyond_record(p), ("storage",)),
    PickleCase("zip-cut", _cut_file(_checkpoint, 0.6), ("truncated",)),
    PickleCase("legacy-cut", _cut_file(_legacy_pth, 0.5), ("truncated",), ("official", "training_state")),
    PickleCase("pickle-cut", lambda p: _cut_file(lambda q: _dump({"G_ema": {"w": list(range(2000))}}, q), 0.5)(p),
               ("truncated",), ("official",)),
    PickleCase("code-os-system", _raw(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."), ("could run code",),
               ("official",)),
    PickleCase("zip-code-eval", lambda p: _zip_with(b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.", p),
               ("eval",), ("checkpoint", "training_state")),
)


def _dump(obj: Any, path: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


def _zip_declaring(path: Path, name: str, size: int) -> Path:
    """A deflated zip whose record ``name`` declares ``size`` inflated bytes (its central directory and local
    header say so; the data is a few zeros): what a zip bomb shows the reader before it inflates."""
    _zip_with(pickle.dumps({}), path, {name: bytes(64)}, deflate=True)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(name))
    data[info.header_offset + 22 : info.header_offset + 26] = struct.pack("<I", size)
    position = 0
    while (position := data.find(b"PK\x01\x02", position)) >= 0:
        length = struct.unpack("<H", data[position + 28 : position + 30])[0]
        if data[position + 46 : position + 46 + length].decode().endswith(name):
            data[position + 24 : position + 28] = struct.pack("<I", size)
        position += 4
    path.write_bytes(bytes(data))
    return path


def _zip_storage_beyond_record(path: Path) -> Path:
    import torch

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("storage", torch.FloatStorage, "0", "cpu", BIG // 4) if obj == "STORAGE" else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"w": "STORAGE"})
    return _zip_with(buffer.getvalue(), path, {"data/0": bytes(16)})


# ----------------------------------------------------------------------------------------------- memory-bounded runs


def run_bounded(code: str, *, headroom_mib: int = 1536, timeout: float = 120) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter whose address space may grow only ``headroom_mib`` beyond what it uses
    once ``code``'s imports are done (its first line must call ``limit()``). ``code`` prints one JSON object
    last; it is returned with ``maxrss_mib``."""
    prelude = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(REPO)!r})
        def limit():
            size = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
            cap = size + {headroom_mib} * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        def done(result):
            # VmHWM: this interpreter's peak resident memory (ru_maxrss would include the parent's, from before exec)
            peak = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
            result["maxrss_mib"] = peak / 1024
            print(json.dumps(result))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- a small disk


@dataclass
class SmallDisk:
    """A size-limited tmpfs mounted at ``path`` (root only); :meth:`resize` grows or shrinks it in place."""

    path: Path

    def resize(self, mib: float) -> None:
        _mount(["-o", f"remount,size={int(mib * 1024)}k", str(self.path)])

    def fill(self, leave_kib: int) -> Path:
        """A filler file that leaves about ``leave_kib`` kB free; delete it to free the space again."""
        free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
        filler = self.path / "filler.bin"
        with open(filler, "wb") as f:
            f.write(bytes(max(free - leave_kib * 1024, 0)))
        return filler


def _mount(args: list[str]) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextmanager
def small_disk(base: Path, mib: float) -> Iterator[SmallDisk]:
    """Mount a ``mib`` MiB tmpfs under ``base``; raises OSError/CalledProcessError where mounting is not allowed."""
    path = base / "small-disk"
    path.mkdir()
    if os.geteuid() != 0:
        raise PermissionError("mounting a tmpfs needs root")
    _mount(["-t", "tmpfs", "-o", f"size={int(mib * 1024)}k", "tmpfs", str(path)])
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def assert_one_line(message: str, *words: str) -> None:
    text = str(message)
    assert "\n" not in text.strip(), f"not one line: {text!r}"
    assert "Traceback" not in text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def rss_limit_ok(result: dict[str, Any], limit_mib: float = 1200) -> None:
    assert result["maxrss_mib"] < limit_mib, result

