"""The annotation's graphics on an image: box ROIs with handles, outpainting keep margins, the dataset's
findings and the painted brush holes. Items only; what an edit means is the viewer's and the session's job."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from linop_core.catalog import CatalogEntry
from linop_core.review.session import ImageAnnotation, LesionBox
from linop_core.vocab import HoleKind, Task
from linop_gui.theme import BOX_COLOR, BRUSH_RGBA, FINDING_COLOR, KEEP_COLOR, SELECTED_COLOR
from linop_gui.tools import Box, expand_box, label_rows

FINDING_SOURCE = "finding"


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
        if self.lesion.source == FINDING_SOURCE:
            editable = False
        self.translatable = editable and self.lesion.hole is not HoleKind.BRUSH
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
        if self.lesion.hole is HoleKind.ELLIPSE:
            faint = QPen(pen)
            faint.setStyle(Qt.PenStyle.DashLine)
            faint.setWidthF(1.0)
            p.setPen(faint)
            p.drawRect(rect)
            p.setPen(pen)
            p.drawEllipse(rect)
        else:
            if self.lesion.hole is HoleKind.BRUSH:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawRect(rect)


class AnnotationLayer:
    """The items of one annotation in a view box. ``on_moved(roi)`` follows a finished move or resize of a box,
    ``on_clicked(roi)`` a click on one."""

    def __init__(self, viewbox: pg.ViewBox, on_moved: Callable[[BoxROI], None],
                 on_clicked: Callable[[BoxROI], None]) -> None:
        self.viewbox = viewbox
        self._on_moved = on_moved
        self._on_clicked = on_clicked
        self.rois: list[BoxROI] = []
        self._keep_items: list[QGraphicsRectItem] = []
        self._finding_items: list[object] = []
        self.brush_item = pg.ImageItem(axisOrder="row-major")
        self.brush_item.setZValue(5)
        self.brush_item.setLookupTable(np.array([[0, 0, 0, 0], list(BRUSH_RGBA)], dtype=np.uint8))
        viewbox.addItem(self.brush_item)

    def clear(self) -> None:
        for roi in self.rois:
            self.viewbox.removeItem(roi)
        self.rois = []
        self._remove(self._keep_items)
        self._remove(self._finding_items)
        self.brush_item.clear()

    def _remove(self, items: list) -> None:
        for item in items:
            self.viewbox.removeItem(item)
        items.clear()

    # -- boxes -----------------------------------------------------------------------------------------------
    def show_boxes(self, annotation: ImageAnnotation, selected: int | None, shape: tuple[int, int]) -> None:
        """ROIs for ``annotation``'s boxes, updated in place (a drag in progress survives)."""
        h, w = shape
        bounds = QRectF(0, 0, w, h)
        boxes = annotation.boxes
        while len(self.rois) > len(boxes):
            self.viewbox.removeItem(self.rois.pop())
        color = KEEP_COLOR if annotation.mode is Task.OUTPAINT else BOX_COLOR
        for i, lesion in enumerate(boxes):
            if i < len(self.rois):
                roi = self.rois[i]
                roi.color = color
                roi.blockSignals(True)
                roi.set_lesion(lesion)
                roi.blockSignals(False)
            else:
                roi = BoxROI(i, lesion, bounds, color)
                roi.sigRegionChangeFinished.connect(self._on_moved)
                roi.sigClicked.connect(lambda r, _ev: self._on_clicked(r))
                self.viewbox.addItem(roi)
                self.rois.append(roi)
            roi.set_selected(i == selected)

    def select(self, index: int | None) -> None:
        for i, roi in enumerate(self.rois):
            roi.set_selected(i == index)

    def set_editable(self, editable: bool) -> None:
        for roi in self.rois:
            roi.set_editable(editable)

    def show_keep_margins(self, annotation: ImageAnnotation, shape: tuple[int, int]) -> None:
        """Outpainting: the dotted outline of what is kept around each selected region."""
        self._remove(self._keep_items)
        if annotation.mode is not Task.OUTPAINT:
            return
        h, w = shape
        for lesion in annotation.boxes:
            x0, y0, x1, y1 = expand_box(lesion.box, annotation.margin, w, h)
            item = QGraphicsRectItem(QRectF(x0, y0, x1 - x0, y1 - y0))
            pen = QPen(KEEP_COLOR, 1.2, Qt.PenStyle.DotLine)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(7)
            self.viewbox.addItem(item, ignoreBounds=True)
            self._keep_items.append(item)

    # -- findings and brush ----------------------------------------------------------------------------------
    def show_findings(self, entry: CatalogEntry | None, annotation: ImageAnnotation, show: bool) -> None:
        """The dataset's labelled boxes (amber; green once chosen as a kept region)."""
        self._remove(self._finding_items)
        if entry is None or not show:
            return
        selected = {tuple(b.box) for b in annotation.boxes if b.source == FINDING_SOURCE}
        findings = [f for f in entry.findings if f.box is not None]
        extent = max((max(f.box[2], f.box[3]) for f in findings), default=1.0)
        side = float(max(entry.height or 0, entry.width or 0) or extent)
        rows = label_rows([(f.box[0], f.box[1]) for f in findings], near_x=0.2 * side, near_y=0.04 * side)
        for finding, row in zip(findings, rows, strict=True):
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
                               anchor=(0, 1 + row))  # stacked above labels it would hide
            text.setPos(x0, y0)
            text.setZValue(9)
            self.viewbox.addItem(text, ignoreBounds=True)
            self._finding_items.extend([rect, text])

    def show_brush(self, mask: np.ndarray | None) -> None:
        """The painted holes (a bool (H, W) union), or none."""
        if mask is None:
            self.brush_item.clear()
        else:
            self.brush_item.setImage(mask.astype(np.uint8), autoLevels=False, levels=(0, 1))
