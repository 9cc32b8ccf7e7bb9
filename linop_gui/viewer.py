"""The image view: native-bit-depth display with window/level, zoom, overlays, findings, boxes and brush.

Display: the native (H, W) array goes to a pyqtgraph ``ImageItem`` as uint16 (or float32 when the values do
not fit), never pre-scaled to 8 bits. A LINEAR / LINEAR_EXACT window is the ImageItem's levels; a SIGMOID
window (or inversion) is a lookup table over the data range built with ``linop_core.dicom.apply_window``, so
the screen shows exactly what the model input and the DICOM standard say.

Interaction (see ``shortcuts.MOUSE_BINDINGS``): right-drag window/level and middle-drag pan in every tool,
wheel zoom; left-drag depends on the tool (pan, window/level, draw a box, paint, erase). The viewer keeps
no annotation state of its own: it shows an ``ImageAnnotation`` and emits ``annotation_edited`` with the
edited copy; the owner commits it to the session and hands it back with :meth:`set_annotation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsDropShadowEffect,
    QGraphicsEllipseItem,
    QGraphicsRectItem,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from linop_core.catalog import CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow, apply_window, percentile_window
from linop_core.review.session import ImageAnnotation, LesionBox
from linop_gui.theme import (
    BOX_COLOR,
    BRUSH_RGBA,
    FINDING_COLOR,
    IMAGE_BACKGROUND,
    KEEP_COLOR,
    OVERLAY_TEXT,
    SELECTED_COLOR,
)
from linop_gui.tools import (
    Box,
    Tool,
    box_area,
    box_contains,
    box_from_points,
    expand_box,
    mask_bbox,
    paint_segment,
    shape_mask,
    snap_box,
    toggle_finding,
    with_box,
)

ZOOM_STEP = 1.25
_MAX_PYRAMID_FACTOR = 16
_SIGMOID_SAMPLES = 4096
_WL_SENSITIVITY = 1.0 / 400.0  # fraction of the data range per screen pixel of drag


# ----------------------------------------------------------------------------------------------- windowing


def file_windows(image: DicomImage) -> list[VoiWindow]:
    """The file's own windows (at most four), labelled for the overlay."""
    return [VoiWindow(w.center, w.width, w.explanation or f"file window {i + 1}")
            for i, w in enumerate(image.meta.windows[:4])]


def window_presets(image: DicomImage) -> list[VoiWindow]:
    """Keys 1-4: the file's own windows first, then (if fewer than four) an automatic percentile window and
    the full data range, each labelled so the overlay says which one is in use."""
    presets = file_windows(image)
    if len(presets) < 4:
        auto = percentile_window(image)
        presets.append(VoiWindow(auto.center, auto.width, "auto 0.5–99.5 %"))
    if len(presets) < 4:
        lo, hi = data_range(image)
        width = max(hi - lo + 1.0, 1.0)
        presets.append(VoiWindow(lo + (width - 1.0) / 2.0 + 0.5, width, "full range"))
    return presets


def data_range(image: DicomImage) -> tuple[float, float]:
    """Min and max of the non-padding pixels."""
    pixels = image.pixels
    if image.padding_mask.size and image.padding_mask.any():
        values = pixels[~image.padding_mask]
        if values.size:
            return float(values.min()), float(values.max())
    return float(pixels.min()), float(pixels.max())


def linear_levels(window: VoiWindow, function: str) -> tuple[float, float]:
    """ImageItem levels (value shown black, value shown white) of a LINEAR or LINEAR_EXACT window."""
    c, w = float(window.center), float(window.width)
    if function == "LINEAR_EXACT":
        return c - w / 2.0, c + w / 2.0
    lo = c - 0.5 - (w - 1.0) / 2.0
    hi = c - 0.5 + (w - 1.0) / 2.0
    return lo, max(hi, lo + 1e-3)


def display_array(image: DicomImage) -> np.ndarray:
    """The array handed to the ImageItem: uint16 when the native values fit (pyqtgraph's fast path), else
    float32; padding pixels set to the bottom of the representable range (black unless inverted)."""
    pixels = image.pixels
    lo, hi = float(pixels.min()), float(pixels.max())
    integral = np.issubdtype(pixels.dtype, np.integer)
    out = pixels.astype(np.uint16) if integral and lo >= 0 and hi <= 65535 else pixels.astype(np.float32)
    if image.padding_mask.size and image.padding_mask.any():
        out[image.padding_mask] = max(image.value_range[0], 0) if out.dtype == np.uint16 else image.value_range[0]
    return out


def downsample_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Block means over ``factor`` x ``factor`` pixels (the ragged edge is dropped), in the input dtype.

    Sums of strided views: several times faster than a reshape + mean over two axes on large images."""
    h, w = data.shape[0] // factor * factor, data.shape[1] // factor * factor
    if h == 0 or w == 0:
        return data
    integral = np.issubdtype(data.dtype, np.integer)
    total = np.zeros((h // factor, w // factor), dtype=np.int64 if integral else np.float64)
    for dy in range(factor):
        for dx in range(factor):
            total += data[dy:h:factor, dx:w:factor]
    if integral:
        return ((total + (factor * factor) // 2) // (factor * factor)).astype(data.dtype)
    return (total / (factor * factor)).astype(data.dtype)


class DisplayTransform:
    """How native values become grey levels: levels plus an optional uint8 lookup table."""

    def __init__(self, levels: tuple[float, float], lut: np.ndarray | None) -> None:
        self.levels = levels
        self.lut = lut


def display_transform(
    window: VoiWindow, function: str, invert: bool, value_span: tuple[float, float], integral: bool
) -> DisplayTransform:
    """Levels/LUT for the ImageItem. SIGMOID becomes an exact per-value table for integer data."""
    if function in ("LINEAR", "LINEAR_EXACT"):
        lut = np.arange(255, -1, -1, dtype=np.uint8) if invert else None
        return DisplayTransform(linear_levels(window, function), lut)
    lo, hi = value_span
    if integral and hi - lo + 1 <= 65536:
        samples = np.arange(lo, hi + 1, dtype=np.float64)
        levels = (lo, lo + samples.size)
    else:
        samples = np.linspace(lo, hi, _SIGMOID_SAMPLES)
        levels = (lo, hi)
    unit = apply_window(samples, window, function)
    if invert:
        unit = 1.0 - unit
    lut = np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return DisplayTransform(levels, lut)


# ----------------------------------------------------------------------------------------------- items


class BoxROI(pg.ROI):
    """A drawn box: rectangle or inscribed ellipse outline, eight resize handles, pixel snapping."""

    def __init__(self, index: int, lesion: LesionBox, bounds: QRectF, color: QColor) -> None:
        x0, y0, x1, y1 = lesion.box
        super().__init__(
            (x0, y0), (x1 - x0, y1 - y0), maxBounds=bounds, snapSize=1.0, scaleSnap=True, translateSnap=True,
            rotatable=False, removable=False, pen=pg.mkPen(color, width=2), hoverPen=pg.mkPen(SELECTED_COLOR, width=2),
            handlePen=pg.mkPen(color, width=1.5), handleHoverPen=pg.mkPen(SELECTED_COLOR, width=2),
        )
        self.index = index
        self.lesion = lesion
        self.color = color
        self.selected = False
        for pos, center in (((1, 1), (0, 0)), ((0, 0), (1, 1)), ((1, 0), (0, 1)), ((0, 1), (1, 0)),
                            ((0.5, 0), (0.5, 1)), ((0.5, 1), (0.5, 0)), ((0, 0.5), (1, 0.5)), ((1, 0.5), (0, 0.5))):
            self.addScaleHandle(pos, center)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)

    def set_lesion(self, lesion: LesionBox) -> None:
        self.lesion = lesion
        x0, y0, x1, y1 = lesion.box
        self.setPos((x0, y0), update=False, finish=False)
        self.setSize((x1 - x0, y1 - y0), update=True, finish=False)
        self.update()

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        self.setPen(pg.mkPen(SELECTED_COLOR if selected else self.color, width=2.5 if selected else 2))
        self.update()

    def set_editable(self, editable: bool) -> None:
        """Brush boxes, selected findings and non-box tools: the outline stays, moving and resizing stop.

        A selected finding takes no clicks at all, so a click on it reaches the view and deselects it."""
        if self.lesion.source == "finding":
            editable = False
        self.translatable = editable and self.lesion.hole != "brush"
        for h in self.getHandles():
            h.setVisible(self.translatable and self.selected)
            h.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if self.translatable else Qt.MouseButton.NoButton)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if editable else Qt.MouseButton.NoButton)

    def box(self) -> Box:
        pos, size = self.pos(), self.size()
        return (float(pos.x()), float(pos.y()), float(pos.x() + size.x()), float(pos.y() + size.y()))

    def paint(self, p: QPainter, *args: object) -> None:
        rect = QRectF(0, 0, 1, 1)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.scale(self.state["size"][0], self.state["size"][1])
        pen = QPen(self.currentPen)
        pen.setCosmetic(True)
        if self.lesion.hole == "ellipse":
            faint = QPen(pen)
            faint.setStyle(Qt.PenStyle.DashLine)
            faint.setWidthF(1.0)
            p.setPen(faint)
            p.drawRect(rect)
            p.setPen(pen)
            p.drawEllipse(rect)
        else:
            if self.lesion.hole == "brush":
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawRect(rect)


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


class _ViewBox(pg.ViewBox):
    """Routes mouse drags and clicks to the viewer's tools before pyqtgraph's own pan/zoom."""

    def __init__(self, viewer: ImageViewer) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.viewer = viewer

    def mouseDragEvent(self, ev: object, axis: int | None = None) -> None:
        if not self.viewer._handle_drag(ev):
            super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: object) -> None:
        if not self.viewer._handle_click(ev):
            super().mouseClickEvent(ev)

    def mouseDoubleClickEvent(self, ev: object) -> None:
        self.viewer.double_clicked.emit()


# ----------------------------------------------------------------------------------------------- viewer


class ImageViewer(QWidget):
    """One image with window/level, zoom, overlays, findings and the annotation tools.

    ``compact=True`` (four-view hanging): no annotation tools, small overlays.
    """

    window_changed = Signal(object)  # VoiWindow
    view_changed = Signal()
    pixel_hovered = Signal(int, int, float)  # x, y, stored value (after modality LUT)
    annotation_edited = Signal(object)  # ImageAnnotation (a user edit to commit)
    selection_changed = Signal(int)  # box index, -1 for none
    tool_changed = Signal(str)
    double_clicked = Signal()
    message = Signal(str)  # short status-bar text

    def __init__(self, parent: QWidget | None = None, *, compact: bool = False) -> None:
        super().__init__(parent)
        self.compact = compact
        self.image: DicomImage | None = None
        self.entry: CatalogEntry | None = None
        self._presets: list[VoiWindow] | None = []
        self.preset_index: int | None = None
        self.window: VoiWindow | None = None
        self.function = "LINEAR"
        self.inverted = False
        self.tool = Tool.PAN
        self.brush_radius = 12
        self.default_hole = "ellipse"
        self.show_findings = True
        self.show_overlays = True
        self.annotation = ImageAnnotation()
        self.selected: int | None = None
        self.mirror = False
        self._display: np.ndarray | None = None
        self._value_span = (0.0, 1.0)
        self._rois: list[BoxROI] = []
        self._finding_items: list[object] = []
        self._keep_items: list[QGraphicsRectItem] = []
        self._brush_mask: np.ndarray | None = None  # union of the brush holes shown
        self._stroke: dict[str, object] | None = None
        self._wl_start: tuple[VoiWindow, QPointF] | None = None
        self._draw_start: QPointF | None = None
        self._brush_store: Callable[[np.ndarray], str] | None = None
        self._brush_load: Callable[[str], np.ndarray] | None = None
        self._override: np.ndarray | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.graphics = pg.GraphicsView(self, background=IMAGE_BACKGROUND)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout.addWidget(self.graphics)
        self.viewbox = _ViewBox(self)
        self.viewbox.setDefaultPadding(0.01)
        self.graphics.setCentralItem(self.viewbox)

        self.image_item = pg.ImageItem(axisOrder="row-major")
        self._pyramid: dict[int, np.ndarray] = {}
        self._shown_factor = 0
        self.viewbox.addItem(self.image_item)
        self.brush_item = pg.ImageItem(axisOrder="row-major")
        self.brush_item.setZValue(5)
        self.brush_item.setLookupTable(np.array([[0, 0, 0, 0], list(BRUSH_RGBA)], dtype=np.uint8))
        self.viewbox.addItem(self.brush_item)

        self._rubber = QGraphicsRectItem()
        pen = QPen(BOX_COLOR, 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(20)
        self._rubber.hide()
        self.viewbox.addItem(self._rubber, ignoreBounds=True)
        self._cursor = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255, 200), 1.0)
        pen.setCosmetic(True)
        self._cursor.setPen(pen)
        self._cursor.setZValue(30)
        self._cursor.hide()
        self.viewbox.addItem(self._cursor, ignoreBounds=True)

        align = Qt.AlignmentFlag
        self._corners = {
            "tl": _CornerLabel(self.graphics, align.AlignLeft | align.AlignTop),
            "tr": _CornerLabel(self.graphics, align.AlignRight | align.AlignTop),
            "bl": _CornerLabel(self.graphics, align.AlignLeft | align.AlignBottom),
            "br": _CornerLabel(self.graphics, align.AlignRight | align.AlignBottom),
        }
        self._placeholder = QLabel("", self.graphics)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self._placeholder.setStyleSheet("QLabel { color: #b8b8b8; background: transparent; font-size: 13pt; }")
        self.graphics.installEventFilter(self)
        self.viewbox.sigRangeChanged.connect(self._on_range_changed)
        self.viewbox.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._pixel_text = ""
        self._overlay_timer = QTimer(self)
        self._overlay_timer.setSingleShot(True)
        self._overlay_timer.setInterval(30)
        self._overlay_timer.timeout.connect(self._update_overlays)
        self.set_placeholder("Open a dataset (Ctrl+O) or drop a folder here" if not compact else "")

    # -- events ----------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.graphics and event.type() == QEvent.Type.Resize:
            self._place_corners()
        if watched is self.graphics and event.type() == QEvent.Type.Leave:
            self._cursor.hide()
        return super().eventFilter(watched, event)

    def _place_corners(self) -> None:
        w, h = self.graphics.width(), self.graphics.height()
        m = 8
        for key, label in self._corners.items():
            label.adjustSize()
            lw, lh = label.width(), label.height()
            x = m if key[1] == "l" else w - lw - m
            y = m if key[0] == "t" else h - lh - m
            label.move(x, y)
        self._placeholder.setGeometry(0, 0, w, h)

    # -- image -----------------------------------------------------------------------------------------------
    def set_placeholder(self, text: str) -> None:
        self._placeholder.setText(text)
        self._placeholder.setVisible(bool(text))
        self._place_corners()

    def clear(self, text: str = "") -> None:
        self.image = None
        self.entry = None
        self._display = None
        self._pyramid = {}
        self._shown_factor = 0
        self.image_item.clear()
        self.brush_item.clear()
        self._clear_rois()
        self._clear_findings()
        self.annotation = ImageAnnotation()
        self.selected = None
        for label in self._corners.values():
            label.setText("")
        self.set_placeholder(text)

    def set_image(self, image: DicomImage, entry: CatalogEntry | None = None, *, keep_view: bool = False) -> None:
        """Show a new image in its default window (the file's first window, else the automatic one)."""
        same_shape = self.image is not None and self.image.pixels.shape == image.pixels.shape
        self.image = image
        self.entry = entry
        self._override = None
        self._display = display_array(image)
        self._value_span = data_range(image) if self._display.dtype != np.uint16 else (
            float(self._display.min()), float(self._display.max()))
        # The percentile preset costs a histogram of every pixel: only made here when the file has no window.
        own = file_windows(image)
        self._presets = None if own else window_presets(image)
        self.function = image.meta.voi_lut_function if image.meta.voi_lut_function in (
            "LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR"
        self.preset_index = 0
        self.window = own[0] if own else self.presets[0]
        self._set_source(self._display)
        h, w = image.pixels.shape
        self.viewbox.setLimits(xMin=-w * 0.5, xMax=w * 1.5, yMin=-h * 0.5, yMax=h * 1.5)
        self.set_placeholder("")
        self._draw_findings()
        self.annotation = ImageAnnotation()
        self.selected = None
        self._clear_rois()
        self._brush_mask = None
        self.brush_item.clear()
        if not (keep_view and same_shape):
            self.fit()
        self._show_level()
        self._update_overlays()
        self.window_changed.emit(self.window)

    def set_display_override(self, pixels: np.ndarray | None) -> None:
        """Show another native array of the same shape in the current window (e.g. a candidate pasted into
        the image, for a hold-key compare); None restores the image."""
        if self.image is None or self._display is None:
            return
        if pixels is not None and pixels.shape != self.image.pixels.shape:
            raise ValueError(f"override shape {pixels.shape} differs from the image {self.image.pixels.shape}")
        self._override = pixels
        self._set_source(self._display if pixels is None else pixels.astype(self._display.dtype, copy=False))

    def set_mirror(self, mirror: bool) -> None:
        """Flip the view left-right (four-view hanging puts chest walls back to back)."""
        self.mirror = mirror
        self.viewbox.invertX(mirror)

    # -- window / level --------------------------------------------------------------------------------------
    def set_window(self, window: VoiWindow, *, preset: int | None = None) -> None:
        if self.image is None:
            return
        width = max(float(window.width), 1.0)
        self.window = VoiWindow(float(window.center), width, window.explanation)
        self.preset_index = preset
        self._apply_display()
        self._schedule_overlays()
        self.window_changed.emit(self.window)

    @property
    def presets(self) -> list[VoiWindow]:
        """Window presets of keys 1-4 (see :func:`window_presets`)."""
        if self._presets is None:
            self._presets = window_presets(self.image) if self.image is not None else []
        return self._presets

    def apply_preset(self, index: int) -> bool:
        """Window preset ``index`` (0-based); False when the image has no such preset."""
        if self.image is None or not 0 <= index < len(self.presets):
            return False
        self.set_window(self.presets[index], preset=index)
        self.message.emit(f"Window preset {index + 1}: {self.presets[index].explanation}")
        return True

    def set_inverted(self, inverted: bool) -> None:
        self.inverted = bool(inverted)
        self._apply_display()
        self._schedule_overlays()

    def adjust_window(self, dx: float, dy: float, start: VoiWindow | None = None) -> None:
        """Drag of (dx, dy) screen pixels: right widens, down raises the level (darker image)."""
        if self.image is None or self.window is None:
            return
        base = start or self.window
        span = max(self._value_span[1] - self._value_span[0], 1.0)
        step = span * _WL_SENSITIVITY
        width = max(1.0, base.width + dx * step)
        center = base.center + dy * step
        self.set_window(VoiWindow(center, width, "manual"))

    def display_levels(self) -> tuple[float, float]:
        levels = self.image_item.getLevels()
        return (float(levels[0]), float(levels[1])) if levels is not None else (0.0, 0.0)

    def _apply_display(self) -> None:
        if self.image is None or self.window is None or self._display is None:
            return
        integral = self._display.dtype == np.uint16
        transform = display_transform(self.window, self.function, self.inverted, self._value_span, integral)
        self.image_item.setLookupTable(transform.lut, update=False)
        self.image_item.setLevels(transform.levels)

    # -- zoom ------------------------------------------------------------------------------------------------
    def fit(self) -> None:
        if self.image is None:
            return
        h, w = self.image.pixels.shape
        self.viewbox.setRange(QRectF(0, 0, w, h), padding=0.02)

    def zoom_by(self, factor: float) -> None:
        self.viewbox.scaleBy((1.0 / factor, 1.0 / factor))

    def one_to_one(self) -> None:
        """One image pixel per (logical) screen pixel, centred where the view is now."""
        if self.image is None:
            return
        rect = self.viewbox.viewRect()
        cx, cy = rect.center().x(), rect.center().y()
        w, h = self.viewbox.width(), self.viewbox.height()
        self.viewbox.setRange(QRectF(cx - w / 2.0, cy - h / 2.0, w, h), padding=0.0)

    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        px = self.viewbox.viewPixelSize()[0]
        return 1.0 / px if px > 0 else 1.0

    def reset(self) -> None:
        if self.image is None:
            return
        self.inverted = False
        self.apply_preset(0)
        self.fit()

    def _set_source(self, data: np.ndarray) -> None:
        """New full-resolution display data; coarser levels are made when the zoom asks for them."""
        self._pyramid = {1: data}
        self._shown_factor = 0
        self._show_level()

    def _show_level(self) -> None:
        """Show the pyramid level that matches the zoom: pyqtgraph's own auto-downsampling re-averages the
        full array on every repaint (about 0.35 s per frame for a 3518 x 2800 mammogram)."""
        if not self._pyramid:
            return
        zoom = self.zoom()
        factor = 1
        while factor < _MAX_PYRAMID_FACTOR and zoom * factor * 2 <= 1.0:
            factor *= 2
        if factor == self._shown_factor:
            return
        while factor not in self._pyramid:
            previous = max(self._pyramid)
            self._pyramid[previous * 2] = downsample_mean(self._pyramid[previous], 2)
        data = self._pyramid[factor]
        self.image_item.setImage(data, autoLevels=False)
        self.image_item.setRect(QRectF(0, 0, data.shape[1] * factor, data.shape[0] * factor))
        self._shown_factor = factor
        self._apply_display()

    def shown_factor(self) -> int:
        """Downsampling factor of the level on screen (1 = full resolution)."""
        return self._shown_factor

    def _on_range_changed(self, *args: object) -> None:
        self._show_level()
        self._schedule_overlays()
        self.view_changed.emit()

    # -- overlays --------------------------------------------------------------------------------------------
    def set_show_overlays(self, show: bool) -> None:
        self.show_overlays = show
        for label in self._corners.values():
            label.setVisible(show)
        self._update_overlays()

    def _schedule_overlays(self) -> None:
        self._overlay_timer.start()

    def overlay_text(self) -> dict[str, str]:
        return {key: label.text() for key, label in self._corners.items()}

    def _update_overlays(self) -> None:
        if self.image is None or not self.show_overlays:
            for label in self._corners.values():
                label.setText("")
            return
        meta, entry = self.image.meta, self.entry
        lat = meta.laterality or (entry.laterality if entry else None)
        view = meta.view_position or (entry.view if entry else None)
        head = " ".join(p for p in (lat, view) if p) or (meta.modality or "")
        tl = [f"<span style='font-size:15pt; font-weight:600'>{head}</span>"]
        if entry is not None and not self.compact:
            tl.append(_short(entry.image_id))
            extras = [v for v in (entry.breast_birads, entry.breast_density, entry.split) if v]
            if extras:
                tl.append(" · ".join(extras))
        self._corners["tl"].setText("<br>".join(tl))
        tr = [meta.manufacturer or "", meta.manufacturer_model or ""]
        if not self.compact:
            tr.append(f"{meta.modality or ''} {meta.photometric_interpretation} {meta.bits_stored}-bit".strip())
        self._corners["tr"].setText("<br>".join(t for t in tr if t))
        assert self.window is not None
        preset = self.window.explanation or ""
        wl = f"W {self.window.width:.0f}  L {self.window.center:.0f}"
        if self.function != "LINEAR":
            wl += f"  {self.function}"
        if self.inverted:
            wl += "  INV"
        bl = [wl]
        if preset and not self.compact:
            label = f"[{self.preset_index + 1}] {preset}" if self.preset_index is not None else preset
            bl.append(label)
        if self._pixel_text and not self.compact:
            bl.append(self._pixel_text)
        self._corners["bl"].setText("<br>".join(bl))
        h, w = self.image.pixels.shape
        br = [f"Zoom {self.zoom() * 100:.0f} %"]
        if not self.compact:
            if meta.pixel_spacing_mm:
                br.append(f"{meta.pixel_spacing_mm[1]:.3g} mm/px")
            br.append(f"{w} × {h}")
        self._corners["br"].setText("<br>".join(br))
        self._place_corners()

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.image is None:
            return
        point = self.viewbox.mapSceneToView(scene_pos)
        x, y = math.floor(point.x()), math.floor(point.y())
        h, w = self.image.pixels.shape
        if self.tool in (Tool.BRUSH, Tool.ERASER) and not self.compact:
            r = self.brush_radius
            self._cursor.setRect(QRectF(point.x() - r, point.y() - r, 2 * r, 2 * r))
            self._cursor.show()
        else:
            self._cursor.hide()
        if 0 <= x < w and 0 <= y < h:
            value = float(self.image.pixels[y, x])
            shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
            self._pixel_text = f"x {x}  y {y}  value {shown}"
            self.pixel_hovered.emit(x, y, value)
        else:
            self._pixel_text = ""
        self._schedule_overlays()

    # -- findings --------------------------------------------------------------------------------------------
    def set_show_findings(self, show: bool) -> None:
        self.show_findings = show
        self._draw_findings()

    def _clear_findings(self) -> None:
        for item in self._finding_items:
            self.viewbox.removeItem(item)
        self._finding_items = []

    def _draw_findings(self) -> None:
        self._clear_findings()
        if self.entry is None or not self.show_findings or self.image is None:
            return
        selected = {tuple(b.box) for b in self.annotation.boxes if b.source == "finding"}
        for finding in self.entry.findings:
            if finding.box is None:
                continue
            x0, y0, x1, y1 = finding.box
            rect = QGraphicsRectItem(QRectF(x0, y0, x1 - x0, y1 - y0))
            chosen = tuple(finding.box) in selected
            pen = QPen(KEEP_COLOR if chosen else FINDING_COLOR, 2.5 if chosen else 1.6)
            pen.setCosmetic(True)
            rect.setPen(pen)
            rect.setZValue(8)
            self.viewbox.addItem(rect, ignoreBounds=True)
            label = ", ".join(finding.categories)
            if finding.birads:
                label += f" · {finding.birads.replace('BI-RADS ', 'BR')}"
            if finding.score < 1.0:
                label += f" · {finding.score:.2f}"
            text = pg.TextItem(label, color=(20, 20, 20), fill=pg.mkBrush(KEEP_COLOR if chosen else FINDING_COLOR),
                               anchor=(0, 1))
            text.setPos(x0, y0)
            text.setZValue(9)
            self.viewbox.addItem(text, ignoreBounds=True)
            self._finding_items.extend([rect, text])

    def finding_at(self, x: float, y: float) -> Box | None:
        """The smallest finding box containing (x, y)."""
        if self.entry is None:
            return None
        hits = [f.box for f in self.entry.findings if f.box is not None and box_contains(f.box, x, y)]
        return min(hits, key=box_area) if hits else None

    # -- annotation ------------------------------------------------------------------------------------------
    def set_brush_store(self, store: Callable[[np.ndarray], str], load: Callable[[str], np.ndarray]) -> None:
        """Where brush masks are saved and read (the review session's ``save_brush`` / ``load_brush``)."""
        self._brush_store, self._brush_load = store, load

    def set_annotation(self, annotation: ImageAnnotation, selected: int | None = None) -> None:
        """Show ``annotation`` (a copy is kept); ROIs are updated in place so a drag in progress survives."""
        self.annotation = ImageAnnotation(annotation.mode, list(annotation.boxes), annotation.margin)
        if selected is not None and not 0 <= selected < len(annotation.boxes):
            selected = None
        if selected is None and self.selected is not None and self.selected < len(annotation.boxes):
            selected = self.selected
        self.selected = selected
        if self.image is None:
            return
        h, w = self.image.pixels.shape
        bounds = QRectF(0, 0, w, h)
        boxes = annotation.boxes
        while len(self._rois) > len(boxes):
            roi = self._rois.pop()
            self.viewbox.removeItem(roi)
        for i, lesion in enumerate(boxes):
            color = KEEP_COLOR if annotation.mode == "outpaint" else BOX_COLOR
            if i < len(self._rois):
                roi = self._rois[i]
                roi.color = color
                roi.blockSignals(True)
                roi.set_lesion(lesion)
                roi.blockSignals(False)
            else:
                roi = BoxROI(i, lesion, bounds, color)
                roi.sigRegionChangeFinished.connect(self._on_roi_changed)
                roi.sigClicked.connect(self._on_roi_clicked)
                self.viewbox.addItem(roi)
                self._rois.append(roi)
            roi.set_selected(i == self.selected)
        self._refresh_roi_interaction()
        self._draw_keep_margins()
        self._draw_findings()
        self._refresh_brush_overlay()
        self.selection_changed.emit(-1 if self.selected is None else self.selected)

    def select_box(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self._rois):
            index = None
        self.selected = index
        for i, roi in enumerate(self._rois):
            roi.set_selected(i == index)
        self._refresh_roi_interaction()
        self.selection_changed.emit(-1 if index is None else index)

    def roi(self, index: int) -> BoxROI:
        return self._rois[index]

    def _clear_rois(self) -> None:
        for roi in self._rois:
            self.viewbox.removeItem(roi)
        self._rois = []
        for item in self._keep_items:
            self.viewbox.removeItem(item)
        self._keep_items = []

    def _refresh_roi_interaction(self) -> None:
        editable = self.tool in (Tool.PAN, Tool.BOX) and not self.compact
        for roi in self._rois:
            roi.set_editable(editable)

    def _draw_keep_margins(self) -> None:
        for item in self._keep_items:
            self.viewbox.removeItem(item)
        self._keep_items = []
        if self.image is None or self.annotation.mode != "outpaint":
            return
        h, w = self.image.pixels.shape
        for lesion in self.annotation.boxes:
            x0, y0, x1, y1 = expand_box(lesion.box, self.annotation.margin, w, h)
            item = QGraphicsRectItem(QRectF(x0, y0, x1 - x0, y1 - y0))
            pen = QPen(KEEP_COLOR, 1.2, Qt.PenStyle.DotLine)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(7)
            self.viewbox.addItem(item, ignoreBounds=True)
            self._keep_items.append(item)

    def _refresh_brush_overlay(self) -> None:
        if self.image is None:
            return
        union: np.ndarray | None = None
        if self._brush_load is not None:
            for lesion in self.annotation.boxes:
                if lesion.hole == "brush" and lesion.brush_file:
                    try:
                        mask = self._brush_load(lesion.brush_file)
                    except OSError:
                        self.message.emit(f"brush mask {lesion.brush_file} is missing from the session folder")
                        continue
                    if mask.shape != self.image.pixels.shape:
                        continue
                    union = mask.copy() if union is None else union | mask
        self._brush_mask = union
        if union is None:
            self.brush_item.clear()
        else:
            self.brush_item.setImage(union.astype(np.uint8), autoLevels=False, levels=(0, 1))

    def _emit_edit(self, annotation: ImageAnnotation, selected: int | None) -> None:
        self.selected = selected
        self.annotation_edited.emit(annotation)

    def _on_roi_changed(self, roi: BoxROI) -> None:
        if self.image is None or roi.index >= len(self.annotation.boxes):
            return
        h, w = self.image.pixels.shape
        box = snap_box(roi.box(), w, h)
        lesion = self.annotation.boxes[roi.index]
        if tuple(lesion.box) == box:
            return
        self._emit_edit(with_box(self.annotation, roi.index, replace(lesion, box=box, source="drawn")), roi.index)

    def _on_roi_clicked(self, roi: BoxROI, ev: object) -> None:
        self.select_box(roi.index)

    def delete_selected(self) -> bool:
        if self.selected is None or self.selected >= len(self.annotation.boxes):
            return False
        index = self.selected
        self.selected = None
        self._emit_edit(with_box(self.annotation, index, None), None)
        return True

    # -- tools -----------------------------------------------------------------------------------------------
    def set_tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)
        if self.compact and tool not in (Tool.PAN, Tool.WL):
            return
        self.cancel_interaction()
        self.tool = tool
        self._refresh_roi_interaction()
        if tool not in (Tool.BRUSH, Tool.ERASER):
            self._cursor.hide()
        cursor = {Tool.PAN: Qt.CursorShape.ArrowCursor, Tool.WL: Qt.CursorShape.SizeAllCursor,
                  Tool.BOX: Qt.CursorShape.CrossCursor, Tool.BRUSH: Qt.CursorShape.CrossCursor,
                  Tool.ERASER: Qt.CursorShape.CrossCursor}[tool]
        self.graphics.viewport().setCursor(cursor)
        self.tool_changed.emit(tool.value)

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = int(min(max(radius, 1), 512))
        self.message.emit(f"Brush radius {self.brush_radius} px")

    def cancel_interaction(self) -> None:
        """Esc: drop a box being drawn or a stroke being painted."""
        self._rubber.hide()
        self._draw_start = None
        self._wl_start = None
        if self._stroke is not None:
            self._stroke = None
            self._refresh_brush_overlay()

    def _view_point(self, ev: object, *, start: bool = False) -> QPointF:
        pos = ev.buttonDownPos() if start else ev.pos()  # type: ignore[attr-defined]
        return self.viewbox.mapToView(pos)

    def _handle_click(self, ev: object) -> bool:
        if self.image is None or ev.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return False
        p = self._view_point(ev)
        if self.tool in (Tool.BRUSH, Tool.ERASER) and not self.compact:
            self._brush_begin(p)
            self._brush_finish()
            ev.accept()  # type: ignore[attr-defined]
            return True
        if self.compact:
            return False
        if self.annotation.mode == "outpaint" and self.tool in (Tool.PAN, Tool.BOX):
            box = self.finding_at(p.x(), p.y())
            if box is not None:
                new = toggle_finding(self.annotation, box)
                self._emit_edit(new, None)
                ev.accept()  # type: ignore[attr-defined]
                return True
        if self.selected is not None:
            self.select_box(None)
        return False

    def _handle_drag(self, ev: object) -> bool:
        button = ev.button()  # type: ignore[attr-defined]
        if self.image is None:
            return False
        if button == Qt.MouseButton.RightButton or (button == Qt.MouseButton.LeftButton and self.tool == Tool.WL):
            self._drag_window(ev)
            return True
        if button != Qt.MouseButton.LeftButton or self.compact:
            return False
        if self.tool == Tool.BOX:
            self._drag_box(ev)
            return True
        if self.tool in (Tool.BRUSH, Tool.ERASER):
            self._drag_brush(ev)
            return True
        return False

    def _drag_window(self, ev: object) -> None:
        ev.accept()  # type: ignore[attr-defined]
        if ev.isStart():  # type: ignore[attr-defined]
            assert self.window is not None
            self._wl_start = (self.window, QPointF(ev.buttonDownScreenPos()))  # type: ignore[attr-defined]
        if self._wl_start is None:
            return
        start, origin = self._wl_start
        delta = QPointF(ev.screenPos()) - origin  # type: ignore[attr-defined]
        self.adjust_window(delta.x(), delta.y(), start)
        if ev.isFinish():  # type: ignore[attr-defined]
            self._wl_start = None

    def _drag_box(self, ev: object) -> None:
        ev.accept()  # type: ignore[attr-defined]
        assert self.image is not None
        if ev.isStart():  # type: ignore[attr-defined]
            self._draw_start = self._view_point(ev, start=True)
        if self._draw_start is None:
            return
        p0, p1 = self._draw_start, self._view_point(ev)
        self._rubber.setRect(QRectF(p0, p1).normalized())
        self._rubber.show()
        if ev.isFinish():  # type: ignore[attr-defined]
            self._rubber.hide()
            self._draw_start = None
            h, w = self.image.pixels.shape
            box = box_from_points((p0.x(), p0.y()), (p1.x(), p1.y()), w, h)
            if box is not None:
                self.add_box(box)

    def add_box(self, box: Box) -> None:
        """A new box of the current mode (inpainting: with the default hole shape); selected after commit."""
        if self.annotation.mode == "outpaint":
            lesion = LesionBox(box=box, hole="rectangle", source="drawn")
        elif self.default_hole == "brush" and self.image is not None and self._brush_store is not None:
            name = self._brush_store(shape_mask(self.image.pixels.shape, box, "ellipse"))
            lesion = LesionBox(box=box, hole="brush", brush_file=name, source="drawn")
        else:
            hole = self.default_hole if self.default_hole in ("ellipse", "rectangle") else "ellipse"
            lesion = LesionBox(box=box, hole=hole, source="drawn")  # type: ignore[arg-type]
        self._emit_edit(with_box(self.annotation, None, lesion), len(self.annotation.boxes))

    def _drag_brush(self, ev: object) -> None:
        ev.accept()  # type: ignore[attr-defined]
        if ev.isStart():  # type: ignore[attr-defined]
            self._brush_begin(self._view_point(ev, start=True))
        if self._stroke is None:
            return
        self._brush_to(self._view_point(ev))
        if ev.isFinish():  # type: ignore[attr-defined]
            self._brush_finish()

    def _brush_target(self, p: QPointF) -> int | None:
        """The brush box a stroke edits: the selected one if it is a brush box, else the one under ``p``."""
        boxes = self.annotation.boxes
        if self.selected is not None and self.selected < len(boxes) and boxes[self.selected].hole == "brush":
            return self.selected
        hits = [i for i, b in enumerate(boxes) if b.hole == "brush" and box_contains(b.box, p.x(), p.y())]
        return min(hits, key=lambda i: box_area(boxes[i].box)) if hits else None

    def _brush_begin(self, p: QPointF) -> None:
        if self.image is None or self._brush_store is None or self._brush_load is None:
            self.message.emit("Painting needs an open session")
            return
        if self.annotation.mode == "outpaint":
            self.message.emit("The brush paints inpainting holes; switch to inpainting mode (Ctrl+1)")
            return
        target = self._brush_target(p)
        erase = self.tool == Tool.ERASER
        if target is None and erase:
            self.message.emit("Nothing to erase here: select a brush box first")
            return
        shape = self.image.pixels.shape
        if target is not None and self.annotation.boxes[target].brush_file:
            mask = self._brush_load(self.annotation.boxes[target].brush_file).copy()  # type: ignore[arg-type]
            if mask.shape != shape:
                mask = np.zeros(shape, dtype=bool)
        else:
            mask = np.zeros(shape, dtype=bool)
        self._stroke = {"target": target, "mask": mask, "last": (p.x(), p.y()), "erase": erase,
                        "others": self._other_brush_holes(target, shape)}
        self._brush_to(p)

    def _brush_to(self, p: QPointF) -> None:
        if self._stroke is None:
            return
        mask = self._stroke["mask"]
        assert isinstance(mask, np.ndarray)
        last = self._stroke["last"]
        paint_segment(mask, last, (p.x(), p.y()), self.brush_radius, not self._stroke["erase"])  # type: ignore[arg-type]
        self._stroke["last"] = (p.x(), p.y())
        others = self._stroke["others"]
        shown = mask if others is None else (mask | others)  # type: ignore[operator]
        self.brush_item.setImage(shown.astype(np.uint8), autoLevels=False, levels=(0, 1))

    def _other_brush_holes(self, target: int | None, shape: tuple[int, int]) -> np.ndarray | None:
        """Union of the brush holes a stroke does not edit (shown unchanged while painting)."""
        assert self._brush_load is not None
        union: np.ndarray | None = None
        for i, lesion in enumerate(self.annotation.boxes):
            if i != target and lesion.hole == "brush" and lesion.brush_file:
                other = self._brush_load(lesion.brush_file)
                if other.shape == shape:
                    union = other.copy() if union is None else (union | other)
        return union

    def _brush_finish(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or self._brush_store is None:
            return
        mask = stroke["mask"]
        assert isinstance(mask, np.ndarray)
        target = stroke["target"]
        bbox = mask_bbox(mask)
        if bbox is None:
            if target is not None:  # erased completely: the box goes too
                self._emit_edit(with_box(self.annotation, target, None), None)  # type: ignore[arg-type]
            else:
                self._refresh_brush_overlay()
            return
        name = self._brush_store(mask)
        lesion = LesionBox(box=bbox, hole="brush", brush_file=name, source="drawn")
        if target is None:
            self._emit_edit(with_box(self.annotation, None, lesion), len(self.annotation.boxes))
        else:
            self._emit_edit(with_box(self.annotation, target, lesion), target)  # type: ignore[arg-type]

    # -- helpers for tests and the window ---------------------------------------------------------------------
    def map_image_to_widget(self, x: float, y: float) -> tuple[int, int]:
        """Image pixel coordinates -> viewport pixel coordinates (for synthetic mouse events)."""
        scene = self.viewbox.mapViewToScene(QPointF(x, y))
        view = self.graphics.mapFromScene(scene)
        return int(view.x()), int(view.y())


def _short(image_id: str, n: int = 12) -> str:
    return image_id if len(image_id) <= n + 1 else image_id[:n] + "…"
