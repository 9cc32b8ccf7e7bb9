"""DICOM tag browser (T): every element of the file, sequences expanded, searchable.

Reads the header only (``stop_before_pixels``); long values (LUT data, overlays) are shortened for display.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from linop_core.errors import DicomError

MAX_VALUE_CHARS = 160


def element_rows(ds: Dataset) -> list[tuple[str, str, str, str, list]]:
    """(tag, name, VR, value, children) for each element; children are rows of sequence items."""
    rows: list[tuple[str, str, str, str, list]] = []
    for elem in ds:
        rows.append(_row(elem))
    return rows


def _row(elem: DataElement) -> tuple[str, str, str, str, list]:
    tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
    name = elem.name or elem.keyword or "Private tag"
    if elem.VR == "SQ":
        items = []
        for i, item in enumerate(elem.value):
            items.append((f"Item {i + 1}", "", "", "", element_rows(item)))
        return tag, name, "SQ", f"{len(elem.value)} item(s)", items
    return tag, name, str(elem.VR), _value_text(elem), []


def _value_text(elem: DataElement) -> str:
    if elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") or elem.tag == 0x7FE00010:
        length = len(elem.value) if isinstance(elem.value, bytes | bytearray) else 0
        return f"<{length} bytes>"
    try:
        text = str(elem.value)
    except Exception as exc:  # a malformed value must not stop the browser
        text = f"<unreadable: {type(exc).__name__}>"
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def read_header(path: str | os.PathLike[str]) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:
        raise DicomError(path, f"cannot read the header for the tag browser ({type(exc).__name__}: {exc})") from exc


class TagDialog(QDialog):
    """Searchable tree of a file's DICOM elements (file meta first)."""

    def __init__(self, path: str | os.PathLike[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.setWindowTitle(f"DICOM tags — {self.path.name}")
        self.resize(820, 680)
        layout = QVBoxLayout(self)
        caption = QLabel(str(self.path), self)
        caption.setObjectName("hint")
        caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(caption)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search tag, name or value…")
        self.search.setClearButtonEnabled(True)
        layout.addWidget(self.search)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.setColumnWidth(1, 260)
        layout.addWidget(self.tree, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        ds = read_header(self.path)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and len(meta):
            group = QTreeWidgetItem(self.tree, ["", "File meta information", "", ""])
            self._add(group, element_rows(meta))
        self._add(self.tree.invisibleRootItem(), element_rows(ds))
        self.tree.expandToDepth(0)
        self.search.textChanged.connect(self._filter)

    def _add(self, parent: QTreeWidgetItem, rows: list) -> None:
        for tag, name, vr, value, children in rows:
            item = QTreeWidgetItem(parent, [tag, name, vr, value])
            item.setToolTip(3, value)
            if children:
                self._add(item, children)

    def _filter(self, text: str) -> None:
        needle = text.strip().lower()

        def visit(item: QTreeWidgetItem) -> bool:
            own = not needle or any(needle in item.text(c).lower() for c in range(4))
            child_match = False
            for i in range(item.childCount()):
                child_match |= visit(item.child(i))
            show = own or child_match
            item.setHidden(not show)
            if needle and child_match:
                item.setExpanded(True)
            return show

        root = self.tree.invisibleRootItem()
        for i in range(root.childCount()):
            visit(root.child(i))

    def find_rows(self, name: str) -> list[str]:
        """Values of visible top-level rows whose name equals ``name`` (tests)."""
        root = self.tree.invisibleRootItem()
        return [root.child(i).text(3) for i in range(root.childCount())
                if root.child(i).text(1) == name and not root.child(i).isHidden()]
