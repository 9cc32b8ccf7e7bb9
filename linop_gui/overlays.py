"""What is written over the image: the four corner texts (view, ids, device, window, zoom, pixel value) and the
centred placeholder. The texts are composed by :func:`corner_texts` (no widgets); :class:`CornerOverlays` puts
them on a view."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsDropShadowEffect, QLabel, QWidget

from linop_core.catalog import CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_gui.theme import OVERLAY_TEXT

CORNERS = ("tl", "tr", "bl", "br")
_MARGIN = 8


@dataclass(frozen=True)
class OverlayState:
    """Everything the corner texts say about the view besides the image and its entry."""

    window: VoiWindow
    function: str
    inverted: bool
    preset_index: int | None
    pixel_text: str
    zoom: float
    compact: bool


def corner_texts(image: DicomImage, entry: CatalogEntry | None, state: OverlayState) -> dict[str, str]:
    """Rich texts for the corners ``tl`` (view, id, BI-RADS / density / split), ``tr`` (device, modality),
    ``bl`` (window, preset, pixel under the pointer) and ``br`` (zoom, spacing, size)."""
    meta = image.meta
    lat = meta.laterality or (entry.laterality if entry else None)
    view = meta.view_position or (entry.view if entry else None)
    head = " ".join(p for p in (lat, view) if p) or (meta.modality or "")
    tl = [f"<span style='font-size:15pt; font-weight:600'>{head}</span>"]
    if entry is not None and not state.compact:
        tl.append(_short(entry.image_id))
        extras = [v for v in (entry.breast_birads, entry.breast_density, entry.split) if v]
        if extras:
            tl.append(" · ".join(extras))
    tr = [meta.manufacturer or "", meta.manufacturer_model or ""]
    if not state.compact:
        tr.append(f"{meta.modality or ''} {meta.photometric_interpretation} {meta.bits_stored}-bit".strip())
    window = state.window
    wl = f"W {window.width:.0f}  L {window.center:.0f}"
    if state.function != "LINEAR":
        wl += f"  {state.function}"
    if state.inverted:
        wl += "  INV"
    bl = [wl]
    preset = window.explanation or ""
    if preset and not state.compact:
        bl.append(f"[{state.preset_index + 1}] {preset}" if state.preset_index is not None else preset)
    if state.pixel_text and not state.compact:
        bl.append(state.pixel_text)
    h, w = image.pixels.shape
    br = [f"Zoom {state.zoom * 100:.0f} %"]
    if not state.compact:
        if meta.pixel_spacing_mm:
            br.append(f"{meta.pixel_spacing_mm[1]:.3g} mm/px")
        br.append(f"{w} × {h}")
    return {"tl": "<br>".join(tl), "tr": "<br>".join(t for t in tr if t), "bl": "<br>".join(bl),
            "br": "<br>".join(br)}


def _short(image_id: str, n: int = 12) -> str:
    return image_id if len(image_id) <= n + 1 else image_id[:n] + "…"


class _CornerLabel(QLabel):
    def __init__(self, parent: QWidget, alignment: Qt.AlignmentFlag) -> None:
        super().__init__(parent)
        self.setAlignment(alignment)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setStyleSheet(
            f"QLabel {{ color: {OVERLAY_TEXT.name()}; background: transparent; border: none; padding: 0px; }}"
        )
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() - 0.5, 8.0))
        self.setFont(font)
        shadow = QGraphicsDropShadowEffect(self)
        shadow.setBlurRadius(3)
        shadow.setOffset(1, 1)
        shadow.setColor(QColor(0, 0, 0, 230))
        self.setGraphicsEffect(shadow)


class CornerOverlays:
    """Four corner labels and a centred placeholder over ``view`` (kept in place by :meth:`place`)."""

    def __init__(self, view: QWidget) -> None:
        self.view = view
        align = Qt.AlignmentFlag
        self.labels = {
            "tl": _CornerLabel(view, align.AlignLeft | align.AlignTop),
            "tr": _CornerLabel(view, align.AlignRight | align.AlignTop),
            "bl": _CornerLabel(view, align.AlignLeft | align.AlignBottom),
            "br": _CornerLabel(view, align.AlignRight | align.AlignBottom),
        }
        self.placeholder = QLabel("", view)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.placeholder.setStyleSheet("QLabel { color: #b8b8b8; background: transparent; font-size: 13pt; }")

    def place(self) -> None:
        w, h = self.view.width(), self.view.height()
        for key, label in self.labels.items():
            label.adjustSize()
            x = _MARGIN if key[1] == "l" else w - label.width() - _MARGIN
            y = _MARGIN if key[0] == "t" else h - label.height() - _MARGIN
            label.move(x, y)
        self.placeholder.setGeometry(0, 0, w, h)

    def set_texts(self, texts: dict[str, str]) -> None:
        for key in CORNERS:
            self.labels[key].setText(texts.get(key, ""))
        self.place()

    def clear(self) -> None:
        self.set_texts({})

    def set_visible(self, visible: bool) -> None:
        for label in self.labels.values():
            label.setVisible(visible)

    def texts(self) -> dict[str, str]:
        return {key: label.text() for key, label in self.labels.items()}

    def set_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text))
        self.place()
