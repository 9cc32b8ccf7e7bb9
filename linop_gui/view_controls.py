"""The view commands of the main window: window presets, inversion, reset, findings and overlays, the four-view
hanging, brush size, Esc, the theme. They act on the viewer (and the hanging's viewers) and report to the status
bar; the display state they change reaches the workspace through the viewer."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QApplication, QDockWidget, QStackedWidget

from linop_core.catalog import CatalogEntry
from linop_gui.annotate_panel import AnnotatePanel
from linop_gui.browser import BrowserPanel
from linop_gui.hanging import HangingView
from linop_gui.settings import Settings
from linop_gui.theme import apply_theme
from linop_gui.tools import Tool
from linop_gui.viewer import ImageViewer
from linop_gui.window_actions import ActionSet
from linop_gui.workspace import Workspace

StatusFn = Callable[[str, int], None]


class ViewControls:
    """View commands over the main viewer and the four-view hanging (see the module docstring)."""

    def __init__(self, workspace: Workspace, commands: ActionSet, settings: Settings, *, viewer: ImageViewer,
                 hanging: HangingView, stack: QStackedWidget, browser: BrowserPanel, browser_dock: QDockWidget,
                 panel: AnnotatePanel, status: StatusFn) -> None:
        self.workspace = workspace
        self.commands = commands
        self.settings = settings
        self.viewer = viewer
        self.hanging = hanging
        self.stack = stack
        self.browser = browser
        self.browser_dock = browser_dock
        self.panel = panel
        self._status = status

    @property
    def hanging_on(self) -> bool:
        return self.commands["hanging"].isChecked()

    def each_viewer(self, fn: Callable[[ImageViewer], object]) -> None:
        for viewer in (self.hanging.viewers.values() if self.hanging_on else [self.viewer]):
            fn(viewer)

    def all_viewers(self) -> list[ImageViewer]:
        return [self.viewer, *self.hanging.viewers.values()]

    # -- grey levels -----------------------------------------------------------------------------------------
    def apply_preset(self, index: int) -> None:
        if not self.viewer.apply_preset(index):
            self._status(f"This image has no window preset {index + 1}", 3000)
        if self.hanging_on:
            for viewer in self.hanging.viewers.values():
                viewer.apply_preset(index)

    def set_inverted(self, inverted: bool) -> None:
        for viewer in self.all_viewers():
            viewer.set_inverted(inverted)

    def reset_view(self) -> None:
        with QSignalBlocker(self.commands["invert"]):
            self.commands["invert"].setChecked(False)
        self.each_viewer(ImageViewer.reset)
        self.viewer.reset()

    def set_show_findings(self, show: bool) -> None:
        self.settings.show_findings = show
        for viewer in self.all_viewers():
            viewer.set_show_findings(show)

    def set_show_overlays(self, show: bool) -> None:
        self.settings.show_overlays = show
        for viewer in self.all_viewers():
            viewer.set_show_overlays(show)

    # -- four-view hanging -----------------------------------------------------------------------------------
    def set_hanging(self, on: bool) -> None:
        """Four-view hanging of the current mammography study, or back to the single view."""
        catalog, entry = self.workspace.catalog, self.workspace.entry
        if on and (catalog is None or entry is None or not catalog.has_hanging(entry)):
            with QSignalBlocker(self.commands["hanging"]):
                self.commands["hanging"].setChecked(False)
            self._status("Four-view hanging needs a mammography study with CC and MLO views", 5000)
            return
        if on:
            self.update_hanging()
        self.stack.setCurrentWidget(self.hanging if on else self.viewer)

    def update_hanging(self) -> None:
        catalog, entry = self.workspace.catalog, self.workspace.entry
        if catalog is None or entry is None:
            return
        if not entry.ok or not catalog.has_hanging(entry):
            self.set_hanging(False)
            with QSignalBlocker(self.commands["hanging"]):
                self.commands["hanging"].setChecked(False)
            return
        self.hanging.set_study(catalog.hanging(entry), entry)

    def open_from_hanging(self, entry: CatalogEntry) -> None:
        self.commands["hanging"].setChecked(False)
        self.browser.select(entry.image_id)

    # -- tools and keyboard ----------------------------------------------------------------------------------
    def focus_filter(self) -> None:
        self.browser_dock.show()
        self.browser.search.setFocus()
        self.browser.search.selectAll()

    def set_brush_radius(self, radius: int) -> None:
        self.viewer.set_brush_radius(radius)
        self.settings.brush_radius = self.viewer.brush_radius
        self.panel.set_brush_radius(self.viewer.brush_radius)

    def cancel(self) -> None:
        self.viewer.cancel_interaction()
        self.workspace.set_tool(Tool.PAN)

    def set_theme(self, theme: str) -> None:
        self.settings.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        self.commands.set_theme(theme)
