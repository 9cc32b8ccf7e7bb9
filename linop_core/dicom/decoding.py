"""Stored pixel values from a read dataset, through every installed decoder in a fixed order.

Order: pylibjpeg (libjpeg, OpenJPEG, RLE), Pillow, pyjpegls, pydicom's own (native, RLE), then GDCM. Each
is tried until one decodes the frame; the error names what each said. GDCM comes last because it is the
most tolerant: it reads 12-bit JPEG Extended (1.2.840.10008.1.2.4.51) streams that libjpeg rejects
("A misplaced marker segment", as in the NEMA WG04 MG1/RG2 JPLY samples) and that pydicom's GDCM plugin
declines for 12-bit precision, so for that case GDCM is called directly on the frame
(:func:`_gdcm_decode_frame`). Lossy JPEG decoders may differ by one grey level (IDCT rounding); that is
the codec's tolerance, not a decoding error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1

PLUGIN_ORDER = ("pylibjpeg", "pillow", "pyjpegls", "pydicom", "gdcm")
# What GDCM is called on directly when every plugin has failed.
_GDCM_DIRECT = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1)


class DecodeFailure(Exception):
    """No decoder could decode the pixel data; the message lists why, decoder by decoder."""


def decoder_order(syntax: UID) -> list[str]:
    """The installed pydicom decoding plugins for ``syntax``, in the order they are tried."""
    available = list(get_decoder(syntax).available_plugins)
    ranked = [name for name in PLUGIN_ORDER if name in available]
    return ranked + sorted(set(available) - set(ranked))


def gdcm_available() -> bool:
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return True


def decode_stored(ds: Dataset, syntax: UID) -> tuple[np.ndarray, str]:
    """The stored values of a single-frame image and the name of the decoder that produced them.

    Raises DecodeFailure when every decoder fails.
    """
    failures: list[str] = []
    if not syntax.is_encapsulated:
        try:
            return pixel_array(ds), "pydicom"
        except Exception as exc:
            raise DecodeFailure(_reason(exc)) from exc
    for name in decoder_order(syntax):
        try:
            return pixel_array(ds, decoding_plugin=name), name
        except Exception as exc:
            failures.append(f"{name}: {_reason(exc)}")
    if syntax in _GDCM_DIRECT and gdcm_available():
        try:
            return _gdcm_decode_frame(ds, syntax), "gdcm"
        except Exception as exc:
            failures.append(f"gdcm: {_reason(exc)}")
    raise DecodeFailure("; ".join(failures) or "no decoder is installed for this transfer syntax")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    # pydicom prefixes every plugin's message with the same sentence
    text = text.removeprefix("Unable to decode as exceptions were raised by all available plugins: ")
    return text[:300] or type(exc).__name__


def _gdcm_decode_frame(ds: Dataset, syntax: UID) -> np.ndarray:
    """Decode the one frame of ``ds`` with GDCM itself (no pydicom plugin in between)."""
    import gdcm
    from pydicom.encaps import generate_frames

    rows, columns = int(ds.Rows), int(ds.Columns)
    bits_allocated, bits_stored = int(ds.BitsAllocated), int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))

    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(frame)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((columns, rows, 1))
    image.SetDataElement(element)
    photometric = gdcm.PhotometricInterpretation.GetPIType(str(ds.PhotometricInterpretation).strip())
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(photometric))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(syntax))))
    image.SetPixelFormat(gdcm.PixelFormat(1, bits_allocated, bits_stored, bits_stored - 1, int(signed)))
    with _captured_stderr() as messages:
        buffer = image.GetBuffer()
    dtype = np.dtype(f"{'i' if signed else 'u'}{(bits_allocated + 7) // 8}")
    if not buffer:
        raise ValueError(f"GDCM could not decode the frame ({messages() or 'no reason given'})")
    data = buffer.encode("utf-8", "surrogateescape")  # GDCM hands char* back as str
    expected = rows * columns * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"GDCM returned {len(data)} bytes for a {rows}x{columns} frame ({expected} expected)")
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(rows, columns).astype(dtype)


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """Route the C library's stderr into a temporary file while GDCM runs (IJG prints its retries, e.g.
    "Unsupported JPEG data precision 12", straight to file descriptor 2); yields a getter for the text."""
    captured = ""

    def text() -> str:
        return captured

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured = " ".join(sink.read(4000).decode("utf-8", "replace").split())
