"""The image view: native-bit-depth display with window/level, zoom, overlays, findings, boxes and brush.

How grey levels are made is :mod:`linop_gui.display`; the items drawn over the image are
:mod:`linop_gui.roi`; the corner texts :mod:`linop_gui.overlays`; what the mouse does
:mod:`linop_gui.viewer_input`. The viewer keeps no annotation state of its own: it shows an ``ImageAnnotation``
and emits ``annotation_edited`` with the edited copy; the owner commits it to the session and hands it back with
:meth:`ImageViewer.set_annotation`. Its window, VOI function and inversion are reported with ``window_changed``
so the workspace holds the display state the rest of the app reads.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from linop_core.catalog import CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_core.review.session import ImageAnnotation
from linop_core.vocab import HoleKind
from linop_gui.display import (
    data_range,
    display_array,
    display_transform,
    downsample_mean,
    file_windows,
    shown_function,
    window_presets,
)
from linop_gui.overlays import CornerOverlays, MessageBar, OverlayState, corner_texts
from linop_gui.roi import AnnotationLayer, BoxROI
from linop_gui.theme import IMAGE_BACKGROUND
from linop_gui.tools import Box, box_area, box_contains
from linop_gui.viewer_input import PointerTools
from linop_gui.workspace import DisplayState, MessageLevel

ZOOM_STEP = 1.25
_MAX_PYRAMID_FACTOR = 16
_WL_SENSITIVITY = 1.0 / 400.0  # fraction of the data range per screen pixel of drag


def difference_lut(alpha: int = 215) -> np.ndarray:
    """RGBA lookup table of the difference map: transparent at 0 (pixels the candidate kept), then a perceptual
    black-red-yellow ramp (*inferno*) for larger differences."""
    lut = np.asarray(pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=True), dtype=np.uint8).copy()
    lut[:, 3] = alpha
    lut[0, 3] = 0
    return lut


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


class ImageViewer(QWidget, PointerTools):
    """One image with window/level, zoom, overlays, findings and the annotation tools.

    ``compact=True`` (four-view hanging): no annotation tools, small overlays.
    """

    window_changed = Signal(object)  # VoiWindow, after any change of window, VOI function or inversion
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
        self.show_findings = True
        self.show_overlays = True
        self.annotation = ImageAnnotation()
        self.selected: int | None = None
        self.mirror = False
        self._display: np.ndarray | None = None
        self._value_span = (0.0, 1.0)
        self._override: np.ndarray | None = None
        self._pixel_text = ""

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
        self.layer = AnnotationLayer(self.viewbox, self._on_roi_changed, self._on_roi_clicked)
        self.brush_item = self.layer.brush_item
        self._init_pointer_tools()

        self.difference_item = pg.ImageItem(axisOrder="row-major")
        self.difference_item.setZValue(4)
        self.difference_item.setLookupTable(difference_lut(), update=False)
        self.difference_item.hide()
        self.viewbox.addItem(self.difference_item)

        self.overlays = CornerOverlays(self.graphics)
        self.message_bar = MessageBar(self.graphics)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.graphics.installEventFilter(self)
        self.graphics.viewport().installEventFilter(self)
        self._fitted = True  # the whole image in view: kept so when the view changes size
        self.viewbox.sigResized.connect(self._on_resized)
        self.viewbox.sigRangeChangedManually.connect(self._on_user_zoom)
        self.viewbox.sigRangeChanged.connect(self._on_range_changed)
        self.viewbox.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._overlay_timer = QTimer(self)
        self._overlay_timer.setSingleShot(True)
        self._overlay_timer.setInterval(30)
        self._overlay_timer.timeout.connect(self._update_overlays)
        self.set_placeholder("Open a dataset (Ctrl+O) or drop a folder here" if not compact else "")

    # -- events ----------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.graphics and event.type() == QEvent.Type.Resize:
            self.overlays.place()
            self.message_bar.place()
        if watched is self.graphics and event.type() == QEvent.Type.Leave:
            self._cursor.hide()
        if watched is self.graphics.viewport() and event.type() == QEvent.Type.MouseButtonPress and not self.compact:
            self.setFocus(Qt.FocusReason.MouseFocusReason)  # a click on the image gives it the keyboard
        return super().eventFilter(watched, event)

    def show_message(self, text: str, level: MessageLevel = MessageLevel.INFO) -> None:
        """A message over the top of the image (skipped, refused, failed), until closed or replaced."""
        self.message_bar.show_message(text, level)

    # -- image -----------------------------------------------------------------------------------------------
    def set_placeholder(self, text: str) -> None:
        self.overlays.set_placeholder(text)

    def placeholder_text(self) -> str:
        return self.overlays.placeholder.text()

    def clear(self, text: str = "") -> None:
        self.image = None
        self.entry = None
        self._display = None
        self._pyramid = {}
        self._shown_factor = 0
        self.image_item.clear()
        self.layer.clear()
        self.set_difference_overlay(None)
        self.annotation = ImageAnnotation()
        self.selected = None
        self.overlays.clear()
        self.set_placeholder(text)

    def set_image(self, image: DicomImage, entry: CatalogEntry | None = None, *, keep_view: bool = False) -> None:
        """Show a new image in its default window (the file's first window, else the automatic one)."""
        same_shape = self.image is not None and self.image.pixels.shape == image.pixels.shape
        self.image = image
        self.entry = entry
        self._override = None
        self._pixel_text = ""
        self._display = display_array(image)
        self._value_span = data_range(image) if self._display.dtype != np.uint16 else (
            float(self._display.min()), float(self._display.max()))
        # The percentile preset costs a histogram of every pixel: only made here when the file has no window.
        own = file_windows(image)
        self._presets = None if own else window_presets(image)
        self.function = shown_function(image)
        self.preset_index = 0
        self.window = own[0] if own else self.presets[0]
        self._set_source(self._display)
        h, w = image.pixels.shape
        # Panning stops a little past the image, but zooming out must always reach the whole image: a landscape
        # image in a tall view needs a vertical range well beyond its own height (and a portrait one the reverse).
        margin = 2.0 * max(w, h)
        self.viewbox.setLimits(xMin=-margin, xMax=w + margin, yMin=-margin, yMax=h + margin)
        self.set_placeholder("")
        self.set_difference_overlay(None)
        self.annotation = ImageAnnotation()
        self.selected = None
        self.layer.clear()
        self.layer.show_findings(entry, self.annotation, self.show_findings)
        if not (keep_view and same_shape):
            self.fit()
        self._show_level()
        self._update_overlays()
        self.window_changed.emit(self.window)

    def set_difference_overlay(self, difference: np.ndarray | None, origin: tuple[int, int] = (0, 0)) -> None:
        """|candidate − original| of a crop at ``origin`` (y0, x0), in colour over the image; None removes it."""
        if difference is None or not difference.size or self.image is None:
            self.difference_item.hide()
            self.difference_item.clear()
            return
        top = float(difference.max())
        self.difference_item.setImage(difference, autoLevels=False, levels=(0.0, max(top, 1e-6)))
        y0, x0 = origin
        h, w = difference.shape
        self.difference_item.setRect(QRectF(x0, y0, w, h))
        self.difference_item.show()

    def reveal(self, box: Box) -> None:
        """Pans (keeping the zoom) so ``box`` (x0, y0, x1, y1) is in view, when it is not."""
        view = self.viewbox.viewRect()
        x0, y0, x1, y1 = box
        if view.contains(QRectF(x0, y0, x1 - x0, y1 - y0)):
            return
        self.viewbox.translateBy(x=(x0 + x1) / 2 - view.center().x(), y=(y0 + y1) / 2 - view.center().y())

    def set_display_override(self, pixels: np.ndarray | None) -> None:
        """Show another native array of the same shape in the current window (e.g. a candidate pasted into
        the image, for a hold-key compare); None restores the image."""
        if self.image is None or self._display is None:
            return
        if pixels is not None and pixels.shape != self.image.pixels.shape:
            raise ValueError(f"override shape {pixels.shape} differs from the image {self.image.pixels.shape}")
        self._override = pixels
        self._set_source(self._display if pixels is None else pixels.astype(self._display.dtype, copy=False))

    def display_source(self) -> np.ndarray | None:
        """The display array of the image itself (without an override)."""
        return self._display

    def set_mirror(self, mirror: bool) -> None:
        """Flip the view left-right (four-view hanging puts chest walls back to back)."""
        self.mirror = mirror
        self.viewbox.invertX(mirror)

    # -- window / level --------------------------------------------------------------------------------------
    def display_state(self) -> DisplayState:
        return DisplayState(self.window, self.function, self.inverted)

    def apply_display(self, state: DisplayState) -> None:
        """Show ``state`` (the workspace's display state); nothing happens when it is shown already."""
        if state == self.display_state() or self.image is None:
            return
        if state.inverted != self.inverted:
            self.set_inverted(state.inverted)
        if state.window is not None and state.window != self.window:
            preset = self.presets.index(state.window) if state.window in self.presets else None
            self.set_window(state.window, preset=preset)

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
        """Window presets of keys 1-4 (see :func:`linop_gui.display.window_presets`)."""
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
        if bool(inverted) == self.inverted:
            return
        self.inverted = bool(inverted)
        self._apply_display()
        self._schedule_overlays()
        if self.window is not None:
            self.window_changed.emit(self.window)

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
        """The whole image in view; kept whole when the view changes size until the user zooms or pans."""
        self._fitted = True
        if self.image is None:
            return
        h, w = self.image.pixels.shape
        self.viewbox.setRange(QRectF(0, 0, w, h), padding=0.02)

    def _on_resized(self, *args: object) -> None:
        if self._fitted and self.image is not None:
            self.fit()

    def _on_user_zoom(self, *args: object) -> None:
        self._fitted = False

    def zoom_by(self, factor: float) -> None:
        self._fitted = False
        self.viewbox.scaleBy((1.0 / factor, 1.0 / factor))

    def one_to_one(self) -> None:
        """One image pixel per (logical) screen pixel, centred where the view is now."""
        if self.image is None:
            return
        self._fitted = False
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
        self.set_inverted(False)
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
        self.overlays.set_visible(show)
        self._update_overlays()

    def _schedule_overlays(self) -> None:
        self._overlay_timer.start()

    def overlay_text(self) -> dict[str, str]:
        return self.overlays.texts()

    def _update_overlays(self) -> None:
        if self.image is None or not self.show_overlays or self.window is None:
            self.overlays.clear()
            return
        state = OverlayState(self.window, self.function, self.inverted, self.preset_index, self._pixel_text,
                             self.zoom(), self.compact)
        self.overlays.set_texts(corner_texts(self.image, self.entry, state))

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.image is None:
            return
        point = self.viewbox.mapSceneToView(scene_pos)
        x, y = math.floor(point.x()), math.floor(point.y())
        h, w = self.image.pixels.shape
        self._show_brush_cursor(point)
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

    def _draw_findings(self) -> None:
        self.layer.show_findings(self.entry if self.image is not None else None, self.annotation, self.show_findings)

    def finding_at(self, x: float, y: float) -> Box | None:
        """The smallest finding box containing (x, y)."""
        if self.entry is None:
            return None
        hits = [f.box for f in self.entry.findings if f.box is not None and box_contains(f.box, x, y)]
        return min(hits, key=box_area) if hits else None

    # -- annotation ------------------------------------------------------------------------------------------
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
        shape = self.image.pixels.shape
        self.layer.show_boxes(self.annotation, self.selected, shape)
        self._refresh_roi_interaction()
        self.layer.show_keep_margins(self.annotation, shape)
        self._draw_findings()
        self._refresh_brush_overlay()
        self.selection_changed.emit(-1 if self.selected is None else self.selected)

    def select_box(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self.layer.rois):
            index = None
        self.selected = index
        self.layer.select(index)
        self._refresh_roi_interaction()
        self.selection_changed.emit(-1 if index is None else index)

    def roi(self, index: int) -> BoxROI:
        return self.layer.rois[index]

    def _on_roi_clicked(self, roi: BoxROI) -> None:
        self.select_box(roi.index)

    def _refresh_brush_overlay(self) -> None:
        if self.image is None:
            return
        union: np.ndarray | None = None
        if self._brush_load is not None:
            for lesion in self.annotation.boxes:
                if lesion.hole is HoleKind.BRUSH and lesion.brush_file:
                    try:
                        mask = self._brush_load(lesion.brush_file)
                    except OSError:
                        self.message.emit(f"brush mask {lesion.brush_file} is missing from the session folder")
                        continue
                    if mask.shape != self.image.pixels.shape:
                        continue
                    union = mask.copy() if union is None else union | mask
        self.layer.show_brush(union)
