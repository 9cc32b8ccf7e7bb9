"""What is written over the image: the four corner texts (view, ids, device, window, zoom, pixel value), the
centred placeholder, and the message bar (what was skipped or refused, and why). The texts are composed by
:func:`corner_texts` (no widgets); :class:`CornerOverlays` and :class:`MessageBar` put them on a view.

Text over an image must be legible on any tissue, inverted or not: corner texts sit on a dark translucent
plate (light text on a plate reads on white and on black alike)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from linop_core.catalog import CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_gui.theme import OVERLAY_TEXT
from linop_gui.workspace import MessageLevel

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
            f"QLabel {{ color: {OVERLAY_TEXT.name()}; background-color: rgba(0, 0, 0, 170); border: none;"
            " border-radius: 3px; padding: 2px 5px; }"
        )
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() - 0.5, 8.0))
        self.setFont(font)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setVisible(bool(text) and self.property("wanted") is not False)


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
            label.setProperty("wanted", visible)
            label.setVisible(visible and bool(label.text()))

    def texts(self) -> dict[str, str]:
        return {key: label.text() for key, label in self.labels.items()}

    def set_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text))
        self.place()


_LEVEL_STYLE = {
    MessageLevel.INFO: ("#1f3a5f", "#9cc3f5", "ℹ"),
    MessageLevel.WARNING: ("#4a3b12", "#f0c040", "⚠"),
    MessageLevel.ERROR: ("#4d1f1f", "#ff8a80", "✖"),
}
_SHOWN_MS = {MessageLevel.INFO: 8_000, MessageLevel.WARNING: 30_000, MessageLevel.ERROR: 0}  # 0: until closed


class MessageBar(QFrame):
    """A bar across the top of the image with one message and a close button; information fades after a few
    seconds, a warning after half a minute, an error stays until closed."""

    def __init__(self, view: QWidget) -> None:
        super().__init__(view)
        self.view = view
        self.setObjectName("messageBar")
        self.level = MessageLevel.INFO
        self.icon = QLabel(self)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Close this message")
        self.close_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 4, 6)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.label, 1)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, text: str, level: MessageLevel = MessageLevel.INFO) -> None:
        self.level = MessageLevel(level)
        background, accent, mark = _LEVEL_STYLE[self.level]
        self.setStyleSheet(
            f"QFrame#messageBar {{ background-color: {background}; border: 1px solid {accent};"
            f" border-radius: 4px; }} QLabel {{ color: #f2f2f2; background: transparent; }}"
            f" QToolButton {{ color: #f2f2f2; background: transparent; border: none; }}")
        self.icon.setText(f"<span style='color:{accent}; font-size:13pt'>{mark}</span>")
        self.label.setText(text)
        self.place()
        self.show()
        self.raise_()
        shown = _SHOWN_MS[self.level]
        if shown:
            self._timer.start(shown)
        else:
            self._timer.stop()

    def retract(self) -> None:
        """The hint or warning shown no longer applies (the user did what it asked): hide it. An error stays
        until closed, so a failure is never wiped away by the next action."""
        if self.level is not MessageLevel.ERROR:
            self._timer.stop()
            self.hide()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def place(self) -> None:
        """Centred at the top, leaving the corner texts readable where the view is wide enough."""
        view_width = self.view.width()
        width = max(min(view_width - 2 * 210, 900), min(view_width - 20, 420))
        self.setFixedWidth(max(width, 100))
        self.adjustSize()
        self.move((view_width - self.width()) // 2, 8)
