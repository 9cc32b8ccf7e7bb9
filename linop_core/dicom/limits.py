"""Memory bounds for reading DICOM files that may be damaged or hostile.

Three ways a small file can make a reader allocate gigabytes, and the bound this module puts on each:

- an element whose declared length is far beyond the end of the file: Python's ``read(n)`` allocates ``n``
  bytes before it finds the file is short. :class:`SizeBoundedReader` never asks for more than is left;
- a Deflated Explicit VR Little Endian dataset (a "deflate bomb": 3.5 MB inflating to gigabytes), which
  pydicom inflates in one piece. :func:`check_inflated_size` stream-inflates it first, in bounded chunks,
  and stops at the ceiling;
- compressed pixel data whose header declares a huge image: the decoder allocates Rows x Columns before
  decoding. :func:`check_declared_pixel_size` compares the declared size with the ceiling first.

The ceilings are a :class:`DicomLimits` passed to :func:`linop_core.dicom.read_dicom`.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from linop_core.errors import DicomError

MIB = 1 << 20
_INFLATE_CHUNK = 1 << 20  # output bytes per inflate step: what the check holds in memory at a time
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class DicomLimits:
    """Ceilings on what one file may make the reader allocate.

    ``max_pixel_bytes``: Rows x Columns x Samples x Frames x Bits Allocated / 8, as declared (512 MiB holds a
    16-bit 16k x 16k image; the largest full-field mammograms are about 30 MiB).
    ``max_inflated_bytes``: a deflated dataset after inflation (pixels plus header).
    """

    max_pixel_bytes: int = 512 * MIB
    max_inflated_bytes: int = 640 * MIB

    def __post_init__(self) -> None:
        if self.max_pixel_bytes < 1 or self.max_inflated_bytes < 1:
            raise ValueError("DICOM size ceilings must be positive")


DEFAULT_LIMITS = DicomLimits()


class SizeBoundedReader(io.RawIOBase):
    """A read-only file whose ``read(n)`` is cut to the bytes left, so a lying length cannot allocate ``n``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._size = os.fstat(self._file.fileno()).st_size
        self.name = path

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        left = max(self._size - self._file.tell(), 0)
        return self._file.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


def looks_like_dataset_start(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file without the 'DICM' marker) starts with a DICOM element
    of the groups an ACR-NEMA or preamble-less file begins with: the Command group's length (0000,0000),
    or an element of the File Meta (0002) or Identifying (0008) group."""
    if len(head) < 8:
        return False
    for order in ("little", "big"):
        group = int.from_bytes(head[0:2], order)  # type: ignore[arg-type]
        element = int.from_bytes(head[2:4], order)  # type: ignore[arg-type]
        if group == 0x0000 and element == 0x0000 and order == "little":
            return head[4:8] == b"\x04\x00\x00\x00" or head[4:6] == b"UL"  # UL length 4, implicit or explicit
        if group in (0x0002, 0x0008) and element < 0x2000:
            return True
    return False


def check_inflated_size(path: str, source: BinaryIO, limit: int) -> int:
    """Stream-inflate the raw deflate stream from ``source``'s position, holding at most one chunk; returns
    the inflated size. Raises DicomError above ``limit`` bytes or on a damaged stream."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while True:
            chunk = source.read(_READ_CHUNK)
            data = chunk
            while data:
                total += len(inflater.decompress(data, _INFLATE_CHUNK))
                _refuse_above(path, total, limit)
                data = inflater.unconsumed_tail
            if not chunk:
                break
        while tail := inflater.decompress(b"", _INFLATE_CHUNK):  # what the last input still holds
            total += len(tail)
            _refuse_above(path, total, limit)
    except zlib.error as exc:
        raise DicomError(path, f"the deflated dataset is damaged ({exc})") from exc
    if not inflater.eof:
        raise DicomError(path, "the deflated dataset is damaged (its deflate stream never ends: truncated?)")
    return total


def _refuse_above(path: str, total: int, limit: int) -> None:
    if total > limit:
        raise DicomError(
            path,
            f"the deflated dataset inflates to more than {limit / MIB:.0f} MiB (the ceiling; a deflate bomb?); "
            "refused before allocating it. Raise DicomLimits.max_inflated_bytes if the file is genuine",
        )


def declared_pixel_bytes(rows: int, columns: int, samples: int, frames: int, bits_allocated: int) -> int:
    return rows * columns * max(samples, 1) * max(frames, 1) * ((max(bits_allocated, 1) + 7) // 8)


def check_declared_pixel_size(path: str, declared: int, limit: int) -> None:
    if declared > limit:
        raise DicomError(
            path,
            f"the header declares {declared / MIB:.0f} MiB of pixels, above the {limit / MIB:.0f} MiB ceiling; "
            "refused before decoding. Raise DicomLimits.max_pixel_bytes if the image is genuine",
        )
