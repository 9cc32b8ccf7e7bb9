"""The main window's commands as QActions, built from the one shortcut table, and where they appear: the menu
bar and the toolbar. Handlers are connected by the window and its controllers, not here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QToolBar, QWidget

from linop_gui.shortcuts import ShortcutSpec, key_sequences
from linop_gui.theme import icon

TOOLBAR_GROUPS: tuple[tuple[str, ...], ...] = (
    ("open",),
    ("prev_image", "next_image", "hanging"),
    ("tool_pan", "tool_wl", "tool_box", "tool_brush", "tool_eraser"),
    ("fit", "one_to_one", "invert", "reset_view", "findings", "tags"),
    ("undo", "redo"),
    ("mode_inpaint", "mode_outpaint", "generate"),
)


class ActionSet:
    """One QAction per :class:`ShortcutSpec`, owned by ``parent`` (window-wide shortcuts), with themed icons.

    ``specs`` lists every action in order (what the shortcut dialog shows)."""

    def __init__(self, parent: QWidget, specs: Iterable[ShortcutSpec], theme: str) -> None:
        self.parent = parent
        self.theme = theme
        self.specs: list[ShortcutSpec] = []
        self._actions: dict[str, QAction] = {}
        for spec in specs:
            self._make(spec)

    def __getitem__(self, action_id: str) -> QAction:
        return self._actions[action_id]

    def __contains__(self, action_id: str) -> bool:
        return action_id in self._actions

    def _make(self, spec: ShortcutSpec) -> QAction | None:
        self.specs.append(spec)
        if spec.hold:
            return None  # bound by the keyboard guard (press and release), not a shortcut
        action = QAction(spec.text, self.parent)
        action.setObjectName(f"action_{spec.action_id}")
        if spec.keys:
            action.setShortcuts(key_sequences(spec))
            keys = QKeySequence(spec.keys[0]).toString(QKeySequence.SequenceFormat.NativeText)
            name = spec.text.replace("&", "").rstrip("…")
            action.setToolTip(f"{name} ({keys})" + (f"\n{spec.tip}" if spec.tip else ""))
        elif spec.tip:
            action.setToolTip(spec.tip)
        action.setStatusTip(spec.tip)
        action.setCheckable(spec.checkable)
        if spec.icon:
            action.setIcon(icon(spec.icon, self.theme))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.parent.addAction(action)
        self._actions[spec.action_id] = action
        return action

    def add(self, spec: ShortcutSpec, handler: Callable[[], None], menu: QMenu | None = None) -> QAction:
        """A further keyed action (listed in the shortcut dialog); added to ``menu`` if given."""
        if any(s.action_id == spec.action_id for s in self.specs):
            raise ValueError(f"action {spec.action_id!r} exists already")
        action = self._make(spec)
        if action is None:
            raise ValueError(f"{spec.action_id!r} is a hold key; bind it with the keyboard guard")
        action.triggered.connect(lambda *_: handler())
        if menu is not None:
            menu.addAction(action)
        return action

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        for spec in self.specs:
            if spec.icon and spec.action_id in self._actions:
                self._actions[spec.action_id].setIcon(icon(spec.icon, theme))

    def check(self, action_id: str, checked: bool = True) -> None:
        """Check an action of an exclusive group without running its handler (they listen to ``triggered``)."""
        self._actions[action_id].setChecked(checked)


@dataclass(frozen=True)
class Menus:
    file: QMenu
    recent: QMenu
    demo: QMenu
    view: QMenu
    generate: QMenu


def build_menus(window: QMainWindow, a: ActionSet, docks: Iterable[QDockWidget]) -> Menus:
    """The menu bar; exclusive groups for tools, annotation modes and hole shapes."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(a["open"])
    file_menu.addAction(a["open_file"])
    recent = file_menu.addMenu("Open &recent")
    demo = file_menu.addMenu("&Demo datasets")
    file_menu.addSeparator()
    file_menu.addAction(a["save_annotations"])
    file_menu.addAction(a["load_annotations"])
    file_menu.addSeparator()
    file_menu.addAction(a["quit"])

    view = bar.addMenu("&View")
    presets = view.addMenu("Window &presets")
    for i in range(1, 5):
        presets.addAction(a[f"preset_{i}"])
    for action_id in ("invert", "reset_view"):
        view.addAction(a[action_id])
    view.addSeparator()
    for action_id in ("fit", "one_to_one", "zoom_in", "zoom_out"):
        view.addAction(a[action_id])
    view.addSeparator()
    for action_id in ("hanging", "findings", "overlays", "tags"):
        view.addAction(a[action_id])
    view.addSeparator()
    for dock in docks:
        view.addAction(dock.toggleViewAction())
    view.addAction(a["theme"])

    nav = bar.addMenu("&Navigate")
    for action_id in ("prev_image", "next_image", "first_image", "last_image", "focus_filter"):
        nav.addAction(a[action_id])

    tools_menu = bar.addMenu("&Tools")
    _group(window, a, tools_menu, ("tool_pan", "tool_wl", "tool_box", "tool_brush", "tool_eraser"))
    tools_menu.addSeparator()
    for action_id in ("brush_smaller", "brush_larger", "cancel"):
        tools_menu.addAction(a[action_id])

    annotate = bar.addMenu("&Annotate")
    _group(window, a, annotate, ("mode_inpaint", "mode_outpaint"))
    annotate.addSeparator()
    _group(window, a, annotate, ("hole_ellipse", "hole_rectangle", "hole_brush"))
    annotate.addSeparator()
    for action_id in ("delete_box", "undo", "redo"):
        annotate.addAction(a[action_id])

    generate = bar.addMenu("&Generate")
    generate.addAction(a["generate"])

    help_menu = bar.addMenu("&Help")
    help_menu.addAction(a["shortcuts"])
    help_menu.addAction(a["about"])
    return Menus(file_menu, recent, demo, view, generate)


def _group(window: QMainWindow, a: ActionSet, menu: QMenu, action_ids: tuple[str, ...]) -> QActionGroup:
    group = QActionGroup(window)
    for action_id in action_ids:
        group.addAction(a[action_id])
        menu.addAction(a[action_id])
    return group


def build_toolbar(window: QMainWindow, a: ActionSet) -> QToolBar:
    bar = QToolBar("Main", window)
    bar.setObjectName("toolbar_main")
    bar.setMovable(False)
    bar.setIconSize(QSize(20, 20))
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    for i, group in enumerate(TOOLBAR_GROUPS):
        if i:
            bar.addSeparator()
        for action_id in group:
            bar.addAction(a[action_id])
    return bar
