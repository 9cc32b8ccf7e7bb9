"""What the mouse does on the image: window/level drags, drawing boxes, painting and erasing brush holes,
clicking findings and boxes (see ``shortcuts.MOUSE_BINDINGS``).

:class:`PointerTools` is a part of :class:`~linop_gui.viewer.ImageViewer` (a mixin): it turns pointer gestures
into an edited copy of the shown annotation (``annotation_edited``), never into session state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, SignalInstance
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsRectItem

from linop_core.dicom import DicomImage, VoiWindow
from linop_core.review.session import ImageAnnotation, LesionBox
from linop_core.vocab import BOX_HOLES, HoleKind, Task
from linop_gui.roi import AnnotationLayer, BoxROI
from linop_gui.theme import BOX_COLOR
from linop_gui.tools import (
    Box,
    Tool,
    box_area,
    box_contains,
    box_from_points,
    mask_bbox,
    paint_segment,
    shape_mask,
    snap_box,
    toggle_finding,
    with_box,
)

_CURSORS = {Tool.PAN: Qt.CursorShape.ArrowCursor, Tool.WL: Qt.CursorShape.SizeAllCursor,
            Tool.BOX: Qt.CursorShape.CrossCursor, Tool.BRUSH: Qt.CursorShape.CrossCursor,
            Tool.ERASER: Qt.CursorShape.CrossCursor}


@dataclass
class _Stroke:
    """A brush stroke in progress: the mask it edits (of box ``target``, or a new box), where it was last."""

    target: int | None
    mask: np.ndarray
    last: tuple[float, float]
    erase: bool
    others: np.ndarray | None  # the brush holes it does not edit, shown unchanged


class PointerTools:
    """Mouse tools of the image viewer. The viewer provides the attributes declared here."""

    image: DicomImage | None
    annotation: ImageAnnotation
    selected: int | None
    window: VoiWindow | None
    compact: bool
    viewbox: pg.ViewBox
    graphics: pg.GraphicsView
    layer: AnnotationLayer
    annotation_edited: SignalInstance
    tool_changed: SignalInstance
    message: SignalInstance
    select_box: Callable[[int | None], None]
    finding_at: Callable[[float, float], Box | None]
    adjust_window: Callable[..., None]
    _refresh_brush_overlay: Callable[[], None]

    def _init_pointer_tools(self) -> None:
        self.tool = Tool.PAN
        self.brush_radius = 12
        self.default_hole = HoleKind.ELLIPSE
        self._stroke: _Stroke | None = None
        self._wl_start: tuple[VoiWindow, QPointF] | None = None
        self._draw_start: QPointF | None = None
        self._brush_store: Callable[[np.ndarray], str] | None = None
        self._brush_load: Callable[[str], np.ndarray] | None = None
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
        self.graphics.viewport().setCursor(_CURSORS[tool])
        self.tool_changed.emit(tool.value)

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = int(min(max(radius, 1), 512))
        self.message.emit(f"Brush radius {self.brush_radius} px")

    def set_brush_store(self, store: Callable[[np.ndarray], str], load: Callable[[str], np.ndarray]) -> None:
        """Where brush masks are saved and read (the review session's ``save_brush`` / ``load_brush``)."""
        self._brush_store, self._brush_load = store, load

    def cancel_interaction(self) -> None:
        """Esc: drop a box being drawn or a stroke being painted."""
        self._rubber.hide()
        self._draw_start = None
        self._wl_start = None
        if self._stroke is not None:
            self._stroke = None
            self._refresh_brush_overlay()

    def _refresh_roi_interaction(self) -> None:
        self.layer.set_editable(self.tool in (Tool.PAN, Tool.BOX) and not self.compact)

    def _show_brush_cursor(self, point: QPointF) -> None:
        if self.tool in (Tool.BRUSH, Tool.ERASER) and not self.compact:
            r = self.brush_radius
            self._cursor.setRect(QRectF(point.x() - r, point.y() - r, 2 * r, 2 * r))
            self._cursor.show()
        else:
            self._cursor.hide()

    # -- edits -----------------------------------------------------------------------------------------------
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

    def delete_selected(self) -> bool:
        if self.selected is None or self.selected >= len(self.annotation.boxes):
            return False
        index = self.selected
        self.selected = None
        self._emit_edit(with_box(self.annotation, index, None), None)
        return True

    def add_box(self, box: Box) -> None:
        """A new box of the current mode (inpainting: with the default hole shape); selected after commit."""
        if self.annotation.mode is Task.OUTPAINT:
            lesion = LesionBox(box=box, hole=HoleKind.RECTANGLE, source="drawn")
        elif self.default_hole is HoleKind.BRUSH and self.image is not None and self._brush_store is not None:
            name = self._brush_store(shape_mask(self.image.pixels.shape, box, HoleKind.ELLIPSE))
            lesion = LesionBox(box=box, hole=HoleKind.BRUSH, brush_file=name, source="drawn")
        else:
            hole = self.default_hole if self.default_hole in BOX_HOLES else HoleKind.ELLIPSE
            lesion = LesionBox(box=box, hole=hole, source="drawn")
        self._emit_edit(with_box(self.annotation, None, lesion), len(self.annotation.boxes))

    # -- gestures --------------------------------------------------------------------------------------------
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
        if self.annotation.mode is Task.OUTPAINT and self.tool in (Tool.PAN, Tool.BOX):
            box = self.finding_at(p.x(), p.y())
            if box is not None:
                self._emit_edit(toggle_finding(self.annotation, box), None)
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

    # -- brush -----------------------------------------------------------------------------------------------
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
        if self.selected is not None and self.selected < len(boxes) and boxes[self.selected].hole is HoleKind.BRUSH:
            return self.selected
        hits = [i for i, b in enumerate(boxes) if b.hole is HoleKind.BRUSH and box_contains(b.box, p.x(), p.y())]
        return min(hits, key=lambda i: box_area(boxes[i].box)) if hits else None

    def _brush_begin(self, p: QPointF) -> None:
        if self.image is None or self._brush_store is None or self._brush_load is None:
            self.message.emit("Painting needs an open session")
            return
        if self.annotation.mode is Task.OUTPAINT:
            self.message.emit("The brush paints inpainting holes; switch to inpainting mode (Ctrl+1)")
            return
        target = self._brush_target(p)
        erase = self.tool == Tool.ERASER
        if target is None and erase:
            self.message.emit("Nothing to erase here: select a brush box first")
            return
        shape = self.image.pixels.shape
        mask = np.zeros(shape, dtype=bool)
        brush_file = self.annotation.boxes[target].brush_file if target is not None else None
        if brush_file:
            stored = self._brush_load(brush_file)
            if stored.shape == shape:
                mask = stored.copy()
        self._stroke = _Stroke(target, mask, (p.x(), p.y()), erase, self._other_brush_holes(target, shape))
        self._brush_to(p)

    def _brush_to(self, p: QPointF) -> None:
        stroke = self._stroke
        if stroke is None:
            return
        paint_segment(stroke.mask, stroke.last, (p.x(), p.y()), self.brush_radius, not stroke.erase)
        stroke.last = (p.x(), p.y())
        self.layer.show_brush(stroke.mask if stroke.others is None else (stroke.mask | stroke.others))

    def _other_brush_holes(self, target: int | None, shape: tuple[int, int]) -> np.ndarray | None:
        """Union of the brush holes a stroke does not edit (shown unchanged while painting)."""
        assert self._brush_load is not None
        union: np.ndarray | None = None
        for i, lesion in enumerate(self.annotation.boxes):
            if i != target and lesion.hole is HoleKind.BRUSH and lesion.brush_file:
                other = self._brush_load(lesion.brush_file)
                if other.shape == shape:
                    union = other.copy() if union is None else (union | other)
        return union

    def _brush_finish(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or self._brush_store is None:
            return
        bbox = mask_bbox(stroke.mask)
        if bbox is None:
            if stroke.target is not None:  # erased completely: the box goes too
                self._emit_edit(with_box(self.annotation, stroke.target, None), None)
            else:
                self._refresh_brush_overlay()
            return
        name = self._brush_store(stroke.mask)
        lesion = LesionBox(box=bbox, hole=HoleKind.BRUSH, brush_file=name, source="drawn")
        if stroke.target is None:
            self._emit_edit(with_box(self.annotation, None, lesion), len(self.annotation.boxes))
        else:
            self._emit_edit(with_box(self.annotation, stroke.target, lesion), stroke.target)

    # -- helpers for tests and the window ---------------------------------------------------------------------
    def map_image_to_widget(self, x: float, y: float) -> tuple[int, int]:
        """Image pixel coordinates -> viewport pixel coordinates (for synthetic mouse events)."""
        scene = self.viewbox.mapViewToScene(QPointF(x, y))
        view = self.graphics.mapFromScene(scene)
        return int(view.x()), int(view.y())

