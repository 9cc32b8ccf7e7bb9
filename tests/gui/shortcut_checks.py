"""The shortcut list (H) against the keys a window really binds, shared by the main and the reading window's tests."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from linop_gui.shortcuts import ShortcutDialog


def listed_and_bound_keys(dialog: ShortcutDialog, window: QWidget) -> tuple[set[str], set[str]]:
    """Every key the dialog lists, and every key an action of ``window`` is bound to (native text)."""
    tree = dialog.tree
    rows = {tree.topLevelItem(i).child(j).text(1)
            for i in range(tree.topLevelItemCount()) for j in range(tree.topLevelItem(i).childCount())}  # fmt: skip
    listed = {k.strip() for row in rows for k in row.split(",")}
    bound = {seq.toString(QKeySequence.SequenceFormat.NativeText)
             for action in window.findChildren(QAction) for seq in action.shortcuts()}  # fmt: skip
    return listed, bound
