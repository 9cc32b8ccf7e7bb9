"""What a reader is shown of a case: :class:`CaseView`, pixels and a display window, nothing that gives it away.

A view holds the display region of the image at native resolution (MONOCHROME2 native units, as
:func:`linop_core.dicom.read_dicom` gives them, the same dtype rules for real and synthetic images), the VOI
window the source DICOM asks for (its first window, else the percentile window LINOP uses everywhere;
synthetic cases use the window recorded in the set, which was chosen by the same rule from their source)
and where the region lies in the image (to turn a mark into image pixels). It has no case id, truth, file
name, source tag, box or hole outline, and the window's explanation text is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linop_core.dicom import VoiWindow, choose_window, read_dicom
from linop_core.errors import DataError
from linop_core.study.inputs import real_case_path
from linop_core.study.model import CropBox, SourceKind, Study, StudyCase
from linop_core.synthset import SynthSet


@dataclass(frozen=True)
class CaseView:
    """The blinded view of one case."""

    pixels: np.ndarray  # (h, w) native units of the display region, read-only
    window: VoiWindow  # centre / width in the units of ``pixels``; explanation always None
    window_function: str  # "LINEAR" | "LINEAR_EXACT" | "SIGMOID"
    crop_box: CropBox  # (x0, y0, x1, y1) of ``pixels`` in native image pixels

    def __repr__(self) -> str:
        return f"CaseView(pixels={self.pixels.shape} {self.pixels.dtype}, window={self.window}, crop={self.crop_box})"

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """A point in ``pixels`` (column, row) -> native image pixels (what answers' marks use)."""
        return (float(x) + self.crop_box[0], float(y) + self.crop_box[1])


class CaseLoader:
    """Loads case views of one study; keeps the sets it opened until :meth:`close`."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self._sets: dict[int, SynthSet] = {}

    def _set(self, index: int) -> SynthSet:
        if index not in self._sets:
            self._sets[index] = SynthSet(self.study.sets[index].path)
        return self._sets[index]

    def view(self, case: StudyCase) -> CaseView:
        if case.source.kind is SourceKind.SET:
            assert case.source.set is not None and case.source.sample_index is not None
            synth = self._set(case.source.set)
            try:
                row = synth.row_of(case.source.sample_index)
            except KeyError:
                raise DataError(
                    synth.path, f"sample {case.source.sample_index} is gone; the set changed after the study was made"
                ) from None
            image = synth.image(row)
            window = VoiWindow(float(synth.meta["voi_center"][row]), float(synth.meta["voi_width"][row]))
            function = str(synth.meta["window_function"][row]) or "LINEAR"
            name = synth.path
        else:
            assert case.source.path is not None
            name = real_case_path(self.study, case.source.path)
            dicom = read_dicom(name)
            image = dicom.pixels
            chosen = choose_window(dicom)
            # as linop_core.synthesis does for a synthetic case's source: the file's function with its own window
            function = dicom.meta.voi_lut_function if chosen in dicom.meta.windows else "LINEAR"
            window = VoiWindow(chosen.center, chosen.width)
        if tuple(image.shape) != case.image_size:
            raise DataError(
                name, f"image is {image.shape[0]}x{image.shape[1]}, the study recorded {case.image_size[0]}x"
                f"{case.image_size[1]}; the data changed after the study was made",
            )
        x0, y0, x1, y1 = case.crop
        pixels = np.ascontiguousarray(image[y0:y1, x0:x1])
        pixels.setflags(write=False)
        return CaseView(pixels, window, function, case.crop)

    def close(self) -> None:
        for synth in self._sets.values():
            synth.close()
        self._sets.clear()
