"""Four-view mammography hanging: RCC | LCC over RMLO | LMLO, breasts back to back.

Right-breast views hang on the left with their chest wall towards the centre, left-breast views on the
right, as on a mammography workstation (OHIF's mammography protocol, PR #4445). Files do not all store the
breast the same way round, so the side to flip is found from the pixels: the chest wall is the image edge
where tissue touches the border (the brighter edge in the MONOCHROME2 convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from linop_core.catalog import HANGING_SLOTS, CatalogEntry
from linop_core.dicom import DicomImage
from linop_gui.loader import ImageLoader
from linop_gui.viewer import ImageViewer

_EDGE_FRACTION = 0.05


def chest_wall_side(image: DicomImage) -> str:
    """'left' or 'right': the image edge where the breast meets the border (brighter edge band)."""
    pixels = image.pixels
    k = max(1, int(pixels.shape[1] * _EDGE_FRACTION))
    valid = ~image.padding_mask if image.padding_mask.size else np.ones(pixels.shape, dtype=bool)
    left = pixels[:, :k][valid[:, :k]]
    right = pixels[:, -k:][valid[:, -k:]]
    left_mean = float(left.mean()) if left.size else -np.inf
    right_mean = float(right.mean()) if right.size else -np.inf
    return "left" if left_mean > right_mean else "right"


def needs_mirror(image: DicomImage, laterality: str) -> bool:
    """True when the view must be flipped so the chest wall faces the centre of the hanging."""
    wanted = "right" if laterality == "R" else "left"
    return chest_wall_side(image) != wanted


class HangingView(QWidget):
    """Four compact viewers; double-click one to open it alone (``view_activated``)."""

    view_activated = Signal(object)  # CatalogEntry

    def __init__(self, loader: ImageLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.slots: dict[tuple[str, str], CatalogEntry | None] = dict.fromkeys(HANGING_SLOTS)
        self.viewers: dict[tuple[str, str], ImageViewer] = {}
        self.frames: dict[tuple[str, str], QFrame] = {}
        self.current: CatalogEntry | None = None
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        for i, slot in enumerate(HANGING_SLOTS):
            frame = QFrame(self)
            frame.setObjectName("hangingFrame")
            inner = QVBoxLayout(frame)
            inner.setContentsMargins(2, 2, 2, 2)
            viewer = ImageViewer(frame, compact=True)
            viewer.set_placeholder(f"{slot[0]} {slot[1]}")
            viewer.double_clicked.connect(lambda s=slot: self._activate(s))
            inner.addWidget(viewer)
            grid.addWidget(frame, i // 2, i % 2)
            self.viewers[slot] = viewer
            self.frames[slot] = frame
        loader.image_loaded.connect(self._on_loaded)
        loader.image_failed.connect(self._on_failed)

    def set_study(self, slots: dict[tuple[str, str], CatalogEntry | None], current: CatalogEntry | None) -> None:
        self.slots = dict(slots)
        self.current = current
        for slot, viewer in self.viewers.items():
            entry = self.slots.get(slot)
            if entry is None:
                viewer.clear(f"{slot[0]} {slot[1]}\nnot in this study")
                continue
            image = self.loader.load(entry.path)
            if image is None:
                viewer.clear(f"{slot[0]} {slot[1]}\nloading…")
            else:
                self._show(slot, entry, image)
        self._highlight()

    def set_current(self, current: CatalogEntry | None) -> None:
        self.current = current
        self._highlight()

    def _highlight(self) -> None:
        for slot, frame in self.frames.items():
            entry = self.slots.get(slot)
            chosen = entry is not None and self.current is not None and entry.image_id == self.current.image_id
            colour = "#4b74b0" if chosen else "transparent"
            frame.setStyleSheet(f"QFrame#hangingFrame {{ border: 2px solid {colour}; background: #262626; }}")

    def _show(self, slot: tuple[str, str], entry: CatalogEntry, image: DicomImage) -> None:
        viewer = self.viewers[slot]
        viewer.set_mirror(needs_mirror(image, slot[0]))
        viewer.set_image(image, entry)

    def _on_loaded(self, path: object, image: DicomImage) -> None:
        for slot, entry in self.slots.items():
            if entry is not None and Path(entry.path) == Path(path):  # type: ignore[arg-type]
                self._show(slot, entry, image)

    def _on_failed(self, path: object, message: str) -> None:
        for slot, entry in self.slots.items():
            if entry is not None and Path(entry.path) == Path(path):  # type: ignore[arg-type]
                self.viewers[slot].clear(f"{slot[0]} {slot[1]}\n{message}")

    def _activate(self, slot: tuple[str, str]) -> None:
        entry = self.slots.get(slot)
        if entry is not None:
            self.view_activated.emit(entry)

    def loaded_count(self) -> int:
        return sum(v.image is not None for v in self.viewers.values())
