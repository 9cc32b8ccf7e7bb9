"""The dataset browser: filters over a thumbnail list of the catalog's images.

Thin on purpose: which images exist and how they filter is :mod:`linop_core.catalog`; decoding thumbnails is
:mod:`linop_gui.loader` (only for the rows in sight, so a 20,000-image VinDr root does not decode everything).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from linop_core.catalog import FILTER_FIELDS, Catalog, CatalogEntry, Filters
from linop_gui.loader import ImageLoader

ICON_SIDE = 56
_ANY = "Any"
EntryRole = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


def thumbnail_pixmap(thumb: np.ndarray, side: int = ICON_SIDE) -> QPixmap:
    """A square pixmap with the grey thumbnail centred on the neutral image background."""
    h, w = thumb.shape
    data = np.ascontiguousarray(thumb)
    image = QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    pixmap = QPixmap(side, side)
    pixmap.fill(QColor(38, 38, 38))
    scaled = QPixmap.fromImage(image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(pixmap)
    painter.drawPixmap((side - scaled.width()) // 2, (side - scaled.height()) // 2, scaled)
    painter.end()
    return pixmap


def _placeholder_pixmap(error: bool, side: int = ICON_SIDE) -> QPixmap:
    pixmap = QPixmap(side, side)
    pixmap.fill(QColor(38, 38, 38))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if error:
        painter.setPen(QColor(255, 110, 100))
        font = painter.font()
        font.setBold(True)
        font.setPointSize(20)
        painter.setFont(font)
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, "!")
    else:
        painter.setPen(QColor(90, 90, 90))
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, "…")
    painter.end()
    return pixmap


class CatalogModel(QAbstractListModel):
    """The filtered entries of a catalog, with thumbnails once they are decoded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[CatalogEntry] = []
        self._rows: dict[str, int] = {}
        self._icons: dict[str, QIcon] = {}
        self._loading = QIcon(_placeholder_pixmap(False))
        self._error = QIcon(_placeholder_pixmap(True))

    def set_entries(self, entries: list[CatalogEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self._rows = {str(e.path): i for i, e in enumerate(self.entries)}
        self.endResetModel()

    def clear_icons(self) -> None:
        self._icons.clear()

    def set_thumbnail(self, path: str, thumb: np.ndarray) -> None:
        self._icons[path] = QIcon(thumbnail_pixmap(thumb))
        row = self._rows.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def has_thumbnail(self, path: str) -> bool:
        return path in self._icons

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's default argument
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        e = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return _row_text(e)
        if role == Qt.ItemDataRole.DecorationRole:
            if not e.ok:
                return self._error
            return self._icons.get(str(e.path), self._loading)
        if role == Qt.ItemDataRole.ToolTipRole:
            return e.error if e.error else f"{e.image_id}\nstudy {e.study_id}\n{e.path}"
        if role == Qt.ItemDataRole.ForegroundRole and not e.ok:
            return QColor(255, 120, 110)
        if role == EntryRole:
            return e
        return None


def _row_text(e: CatalogEntry) -> str:
    if not e.ok:
        reason = (e.error or "").split(": ", 1)[-1]
        return f"{e.path.name}\nunreadable: {reason}"
    label = str(e.label) if e.label is not None else ""
    first = e.view_label or (label[:1].upper() + label[1:] if label else e.modality or "image")
    extras = [v for v in (e.breast_birads, e.breast_density) if v]
    line1 = "  ".join([first, *extras])
    cats = [c for c in e.categories if c not in ("No Finding", "No finding")]
    detail = ", ".join(cats[:2]) + ("…" if len(cats) > 2 else "") if cats else "no finding"
    study = e.study_id if len(e.study_id) <= 10 else e.study_id[:8] + "…"
    parts = [study, e.split, detail] if e.split else [study, detail]
    return f"{line1}\n{' · '.join(p for p in parts if p)}"


class BrowserPanel(QWidget):
    """Filters + thumbnail list. ``entry_selected`` fires when the current image changes (click or keys)."""

    entry_selected = Signal(object)  # CatalogEntry
    filters_changed = Signal(object)  # Filters

    def __init__(self, loader: ImageLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.catalog: Catalog | None = None
        self._filters = Filters()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        self.summary = QLabel("No dataset open", self)
        self.summary.setObjectName("hint")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Filter by image or study id…")
        self.search.setClearButtonEnabled(True)
        layout.addWidget(self.search)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(4)
        self.combos: dict[str, QComboBox] = {}
        for name, label in FILTER_FIELDS:
            combo = QComboBox(self)
            combo.addItem(_ANY)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            combo.currentIndexChanged.connect(self._on_filter_changed)
            self.combos[name] = combo
            form.addRow(label, combo)
        layout.addLayout(form)

        row = QHBoxLayout()
        self.count = QLabel("", self)
        self.count.setObjectName("hint")
        row.addWidget(self.count, 1)
        self.reset_button = QPushButton("Clear filters", self)
        self.reset_button.clicked.connect(self.clear_filters)
        row.addWidget(self.reset_button)
        layout.addLayout(row)

        self.model = CatalogModel(self)
        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.list.setUniformItemSizes(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setWordWrap(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumHeight(3 * (ICON_SIDE + 8))  # a few rows even when the dock is short (it scrolls)
        layout.addWidget(self.list, 1)
        self.list.selectionModel().currentChanged.connect(self._on_current_changed)
        self.search.textChanged.connect(self._on_filter_changed)

        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(80)
        self._thumb_timer.timeout.connect(self._request_visible_thumbnails)
        self.list.verticalScrollBar().valueChanged.connect(lambda _: self._thumb_timer.start())
        self.loader.thumbnail_ready.connect(self._on_thumbnail)

    # -- catalog ---------------------------------------------------------------------------------------------
    def set_catalog(self, catalog: Catalog, filters: Filters | None = None) -> None:
        self.catalog = catalog
        self.model.clear_icons()
        self.summary.setText(catalog.summary + f"\n{catalog.root}")
        self.summary.setToolTip("\n".join(catalog.problems[:30]) if catalog.problems else "")
        for name, combo in self.combos.items():
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(_ANY)
            combo.addItems(catalog.choices(name))
            combo.setEnabled(combo.count() > 1)
            combo.blockSignals(False)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.set_filters(filters or Filters())

    def filters(self) -> Filters:
        return self._filters

    def set_filters(self, filters: Filters) -> None:
        """Apply ``filters`` (values the catalog lacks fall back to Any) and keep the current image if shown."""
        for name, combo in self.combos.items():
            value = getattr(filters, name)
            combo.blockSignals(True)
            i = combo.findText(value) if value else 0
            combo.setCurrentIndex(max(i, 0))
            combo.blockSignals(False)
        self.search.blockSignals(True)
        self.search.setText(filters.text)
        self.search.blockSignals(False)
        self._on_filter_changed()

    def clear_filters(self) -> None:
        self.set_filters(Filters())

    def _read_filters(self) -> Filters:
        values = {name: (None if c.currentIndex() <= 0 else c.currentText()) for name, c in self.combos.items()}
        return Filters(text=self.search.text(), **values)

    def _on_filter_changed(self, *args: object) -> None:
        if self.catalog is None:
            return
        previous = self.current_entry()
        self._filters = self._read_filters()
        entries = self.catalog.filtered(self._filters)
        self.model.set_entries(entries)
        self.count.setText(f"{len(entries)} of {len(self.catalog)} images")
        self.filters_changed.emit(self._filters)
        if previous is not None and self.select(previous.image_id):
            return
        if entries:
            self.select_row(0)
        self._thumb_timer.start()

    # -- selection -------------------------------------------------------------------------------------------
    def current_entry(self) -> CatalogEntry | None:
        index = self.list.currentIndex()
        return self.model.data(index, EntryRole) if index.isValid() else None  # type: ignore[return-value]

    def select_row(self, row: int) -> bool:
        if not 0 <= row < self.model.rowCount():
            return False
        self.list.setCurrentIndex(self.model.index(row))
        return True

    def select(self, image_id: str) -> bool:
        for row, e in enumerate(self.model.entries):
            if e.image_id == image_id:
                index = self.model.index(row)
                if self.list.currentIndex() != index:
                    self.list.setCurrentIndex(index)
                self.list.scrollTo(index)
                return True
        return False

    def step(self, delta: int) -> bool:
        """Previous (-1) / next (+1) image in the filtered list; False at either end."""
        row = self.list.currentIndex().row()
        return self.select_row((row + delta) if row >= 0 else 0)

    def neighbour(self, delta: int) -> CatalogEntry | None:
        row = self.list.currentIndex().row() + delta
        if 0 <= row < len(self.model.entries):
            return self.model.entries[row]
        return None

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        entry = self.model.data(current, EntryRole)
        if entry is not None:
            self.list.scrollTo(current)
            self.entry_selected.emit(entry)
        self._thumb_timer.start()

    # -- thumbnails ------------------------------------------------------------------------------------------
    def _request_visible_thumbnails(self) -> None:
        if not self.model.entries:
            return
        top = self.list.indexAt(self.list.viewport().rect().topLeft()).row()
        bottom = self.list.indexAt(self.list.viewport().rect().bottomLeft()).row()
        top = max(top, 0)
        bottom = len(self.model.entries) - 1 if bottom < 0 else bottom
        for row in range(top, min(bottom + 3, len(self.model.entries))):
            e = self.model.entries[row]
            key = str(e.path)
            if not e.ok or self.model.has_thumbnail(key):
                continue
            thumb = self.loader.thumbnail(e.path)
            if thumb is not None:
                self.model.set_thumbnail(key, thumb)

    def _on_thumbnail(self, path: object, thumb: np.ndarray) -> None:
        self.model.set_thumbnail(str(path), thumb)

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)  # type: ignore[arg-type]
        self._thumb_timer.start()

