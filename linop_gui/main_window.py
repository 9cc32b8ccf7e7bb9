"""The main window: composes browser, viewer, four-view hanging and the side panels around one workspace.

State lives in :class:`~linop_gui.workspace.Workspace` (dataset, session, current image, selection, display,
tool, model); the window's widgets observe it and turn user input into its methods. Commands are QActions built
from the shortcut table (:mod:`linop_gui.window_actions`); opening datasets is :mod:`linop_gui.datasets`; command
edits of annotations are :mod:`linop_gui.annotation_editing`. What generation plugs into (see
:class:`~linop_gui.generation.GenerationHost`): ``add_action``, ``menus.generate``, ``set_generate_handler``,
``set_gallery_widget``, ``add_side_dock`` and the viewer. Qt signals for scripts and tests:
``dataset_opened(catalog)``, ``image_changed(entry, image)``, ``annotation_changed(image_id, annotation)``,
``open_failed(message)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from linop_core.catalog import Catalog, CatalogEntry
from linop_core.dicom import DicomImage
from linop_core.errors import LinopError
from linop_core.review.session import ImageAnnotation, ReviewSession
from linop_core.vocab import HoleKind, Task
from linop_gui.annotate_panel import AnnotatePanel
from linop_gui.annotation_editing import AnnotationEditor
from linop_gui.browser import BrowserPanel
from linop_gui.datasets import DatasetOpener
from linop_gui.hanging import HangingView
from linop_gui.keyboard import KeyboardGuard
from linop_gui.loader import ImageLoader
from linop_gui.settings import Settings
from linop_gui.shortcuts import MAIN_SHORTCUTS, ShortcutDialog, ShortcutSpec
from linop_gui.theme import app_icon
from linop_gui.tools import Tool
from linop_gui.view_controls import ViewControls
from linop_gui.viewer import ImageViewer
from linop_gui.window_actions import ActionSet, build_menus, build_toolbar
from linop_gui.window_layout import default_geometry, place_side_dock, restore_layout, scrolled
from linop_gui.window_status import APP_NAME, StatusLine, about_text, app_version
from linop_gui.workspace import NO_MODEL, Message, ModelInfo, Workspace

if TYPE_CHECKING:
    from linop_gui.generation import GenerationController

__all__ = ["APP_NAME", "NO_MODEL", "MainWindow", "ModelInfo", "app_version"]


class MainWindow(QMainWindow):
    dataset_opened = Signal(object)  # Catalog
    image_changed = Signal(object, object)  # CatalogEntry, DicomImage
    annotation_changed = Signal(str, object)  # image_id, ImageAnnotation
    open_failed = Signal(str)
    image_failed = Signal(str)  # the current entry cannot be shown: why

    def __init__(self, settings: Settings | None = None, *, model_path: str | None = None, device: str | None = None,
                 precision: str | None = None, session_base: Path | None = None, remember_layout: bool = True) -> None:
        """``remember_layout=False`` (``--screenshot``): start from the default layout and save none on close."""
        super().__init__()
        self.remember_layout = remember_layout
        self.settings = settings or Settings()
        self.model_path = model_path
        self.device = device
        self.precision = precision
        self.generation: GenerationController | None = None
        self.workspace = Workspace(default_hole=self.settings.hole_shape, model=ModelInfo(
            name=f"{Path(model_path).stem} (not loaded yet)" if model_path else NO_MODEL,
            version="not loaded yet" if model_path else "—", path=model_path, device=device))
        self._generate_handler: Callable[[], None] | None = None
        self._return_to: tuple[str, int | None] | None = None  # image and box in use when the dataset was closed
        self._theme = self.settings.theme

        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.loader = ImageLoader(self)
        self.commands = ActionSet(self, MAIN_SHORTCUTS, self._theme)

        self.viewer = ImageViewer(self)
        self.viewer.brush_radius = self.settings.brush_radius
        self.viewer.default_hole = self.workspace.default_hole
        self.viewer.show_findings = self.settings.show_findings
        self.hanging = HangingView(self.loader, self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.viewer)
        self.stack.addWidget(self.hanging)
        self.setCentralWidget(self.stack)

        left, right, bottom = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea,
                               Qt.DockWidgetArea.BottomDockWidgetArea)
        self.browser = BrowserPanel(self.loader, self)
        self.browser_dock = self._dock("Images", "browser", scrolled(self.browser), left)
        self.panel = AnnotatePanel(self.commands, self)
        self.panel.set_brush_radius(self.viewer.brush_radius)
        self.panel_dock = self._dock("Annotate", "annotate", scrolled(self.panel), right)
        self.gallery_dock = self._dock("Candidates", "gallery", QWidget(self), bottom)
        self.gallery_dock.hide()
        self.view = ViewControls(self.workspace, self.commands, self.settings, viewer=self.viewer,
                                 hanging=self.hanging, stack=self.stack, browser=self.browser,
                                 browser_dock=self.browser_dock, panel=self.panel, status=self.show_status)

        self.menus = build_menus(self, self.commands, (self.browser_dock, self.panel_dock, self.gallery_dock))
        self.toolbar = build_toolbar(self, self.commands)
        self.status_line = StatusLine(self.statusBar(), self, self.workspace, self.viewer)
        self.opener = DatasetOpener(self.workspace, self.loader, self.settings, parent=self,
                                    recent_menu=self.menus.recent, demo_menu=self.menus.demo, status=self.show_status,
                                    session_base=session_base)
        self.editor = AnnotationEditor(self.workspace, self.settings, parent=self, show_image=self.browser.select,
                                       status=self.show_status)
        self.keyboard = KeyboardGuard(self, self.viewer, self.specs)
        for spec in self.specs:
            if spec.group == "Review" and not spec.hold:
                self.commands[spec.action_id].setEnabled(False)  # until a candidate is selected for review
        self._connect_actions()
        self._observe_workspace()
        self._sync_checks()
        self._update_enabled()

        self.resizeDocks([self.browser_dock, self.panel_dock], [300, 300], Qt.Orientation.Horizontal)
        if remember_layout:
            restore_layout(self, self.settings.window_geometry(), self.settings.window_state(),
                           self.settings.window_size())
        else:
            default_geometry(self)

    # ------------------------------------------------------------------------------------------ construction
    def action(self, action_id: str) -> QAction:
        return self.commands[action_id]

    @property
    def specs(self) -> list[ShortcutSpec]:
        return self.commands.specs

    def add_action(self, spec: ShortcutSpec, handler: Callable[[], None], menu: QMenu | None = None) -> QAction:
        """Register a further keyed action (listed in the shortcut dialog); added to ``menu`` if given."""
        return self.commands.add(spec, handler, menu)

    def bind_hold(self, action_id: str, handler: Callable[[bool], None], available: Callable[[], bool]) -> None:
        """What a hold key of the shortcut table does while held (see :class:`KeyboardGuard`)."""
        self.keyboard.bind_hold(action_id, handler, available)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def add_side_dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        """A further scrolling dock on the right with the annotation panel (under it, or a tab behind it on a short
        screen), listed in the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(scrolled(widget))
        place_side_dock(self, self.panel_dock, dock)
        self.menus.view.addAction(dock.toggleViewAction())
        return dock

    def show_status(self, text: str, timeout_ms: int = 4000) -> None:
        self.status_line.show(text, timeout_ms)

    def show_reader(self, reader: str) -> None:
        """The reader whose review decisions are recorded, in the status line."""
        self.status_line.show_reader(reader)

    def select_image(self, image_id: str) -> None:
        """Shows the image ``image_id`` of the open dataset (as choosing it in the browser does)."""
        self.browser.select(image_id)

    def _connect_actions(self) -> None:
        a, ws, viewer, editor, opener, view = (self.commands, self.workspace, self.viewer, self.editor, self.opener,
                                               self.view)
        handlers: dict[str, Callable[[], object]] = {
            "open": opener.choose_dataset, "open_file": opener.choose_file, "save_annotations": editor.save_dialog,
            "load_annotations": editor.load_dialog, "quit": self.close,
            "prev_image": lambda: self.browser.step(-1), "next_image": lambda: self.browser.step(+1),
            "first_image": lambda: self.browser.select_row(0),
            "last_image": lambda: self.browser.select_row(self.browser.model.rowCount() - 1),
            "focus_filter": view.focus_filter, "fit": lambda: view.each_viewer(ImageViewer.fit),
            "one_to_one": viewer.one_to_one, "zoom_in": lambda: viewer.zoom_by(1.25),
            "zoom_out": lambda: viewer.zoom_by(1 / 1.25), "reset_view": view.reset_view, "tags": self.show_tags,
            "brush_smaller": lambda: view.set_brush_radius(round(viewer.brush_radius / 1.25)),
            "brush_larger": lambda: view.set_brush_radius(round(viewer.brush_radius * 1.25) + 1),
            "cancel": view.cancel, "mode_inpaint": lambda: editor.set_mode(Task.INPAINT),
            "mode_outpaint": lambda: editor.set_mode(Task.OUTPAINT), "delete_box": viewer.delete_selected,
            "undo": editor.undo, "redo": editor.redo, "generate": self._generate, "shortcuts": self.show_shortcuts,
            "about": self.show_about,
        }
        for action_id, handler in handlers.items():
            a[action_id].triggered.connect(lambda _=False, h=handler: h())
        for i in range(1, 5):
            a[f"preset_{i}"].triggered.connect(lambda _=False, i=i: view.apply_preset(i - 1))
        for tool in Tool:
            a[f"tool_{tool.value}"].triggered.connect(lambda _=False, t=tool: ws.set_tool(t))
        for hole in (HoleKind.ELLIPSE, HoleKind.RECTANGLE, HoleKind.BRUSH):
            a[f"hole_{hole}"].triggered.connect(lambda _=False, h=hole: editor.set_hole(h))
        a["hanging"].toggled.connect(view.set_hanging)
        a["invert"].toggled.connect(view.set_inverted)
        a["findings"].toggled.connect(view.set_show_findings)
        a["overlays"].toggled.connect(view.set_show_overlays)
        a["theme"].toggled.connect(lambda dark: view.set_theme("dark" if dark else "light"))

        self.browser.entry_selected.connect(self.show_entry)
        self.loader.image_loaded.connect(self._on_image_loaded)
        self.loader.image_failed.connect(self._on_image_failed)
        self.opener.failed.connect(self._on_open_failed)
        viewer.annotation_edited.connect(lambda annotation: ws.commit(annotation, viewer.selected))
        viewer.selection_changed.connect(lambda i: ws.select(None if i < 0 else i))
        viewer.window_changed.connect(lambda *_: ws.set_display(viewer.display_state()))
        viewer.tool_changed.connect(ws.set_tool)
        viewer.message.connect(lambda text: self.show_status(text, 4000))
        self.hanging.view_activated.connect(view.open_from_hanging)
        self.panel.box_selected.connect(lambda i: viewer.select_box(None if i < 0 else i))
        self.panel.margin_changed.connect(editor.set_margin)
        self.panel.brush_radius_changed.connect(view.set_brush_radius)

    def _observe_workspace(self) -> None:
        ws = self.workspace
        ws.dataset_opened.connect(self._on_dataset_opened)
        ws.image_changed.connect(self._on_image_shown)
        ws.annotation_changed.connect(self._on_annotation_changed)
        ws.selection_changed.connect(self._on_selection_changed)
        ws.display_changed.connect(self.viewer.apply_display)
        ws.tool_changed.connect(self._on_tool_changed)
        ws.hole_changed.connect(self._on_hole_changed)
        ws.message.connect(self._on_message)

    def _sync_checks(self) -> None:
        a = self.commands
        for action_id, value in (("findings", self.viewer.show_findings), ("overlays", self.settings.show_overlays),
                                 ("theme", self._theme == "dark")):
            with QSignalBlocker(a[action_id]):
                a[action_id].setChecked(value)
        for action_id in ("tool_pan", "mode_inpaint", f"hole_{self.workspace.default_hole}"):
            a.check(action_id)
        self.viewer.set_show_overlays(self.settings.show_overlays)

    # ------------------------------------------------------------------------------------------ opening
    def open_path(self, path: str | os.PathLike[str]) -> None:
        """Open a VinDr root, a DICOM folder or file, off the GUI thread; ``dataset_opened`` follows."""
        if self.viewer.image is None:
            self.viewer.set_placeholder(f"Opening {Path(path).name}…")
        self.opener.open_path(path)

    def set_demo_datasets(self, datasets: dict[str, Path], provider: Callable[[], dict[str, Path]] | None = None
                          ) -> None:
        """Entries of File > Demo datasets (label -> root). With ``provider`` (which writes the datasets when
        missing and returns the same labels -> roots), choosing an entry first runs it off the GUI thread."""
        self.opener.set_demo_datasets(datasets, provider)

    def _on_dataset_opened(self, catalog: Catalog, session: ReviewSession) -> None:
        self.viewer.set_brush_store(session.save_brush, session.load_brush)
        self.setWindowTitle(f"{catalog.root.name} — {APP_NAME}")
        image_id, selected = self.settings.last_view(catalog.root)
        self._return_to = None
        self.browser.set_catalog(catalog)  # shows the first image
        if image_id is not None and catalog.initial_path is None:
            self._return_to = (image_id, selected)
        if catalog.initial_path is not None:
            entry = catalog.find_path(catalog.initial_path)
            if entry is not None:
                self.browser.select(entry.image_id)
        elif image_id is not None:
            self.browser.select(image_id)  # back to the image in use last time
        message = catalog.summary
        if catalog.problems:
            message += f" — {len(catalog.problems)} problem(s), see the list's tooltip"
        self.show_status(message, 8000)
        self._update_enabled()
        self.viewer.setFocus(Qt.FocusReason.OtherFocusReason)  # keys act on the image, not on the filter
        self.dataset_opened.emit(catalog)

    def _on_open_failed(self, message: str) -> None:
        if self.viewer.image is None:
            self.viewer.set_placeholder(message)
        self.open_failed.emit(message)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls: list[QUrl] = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_path(urls[0].toLocalFile())

    # ------------------------------------------------------------------------------------------ images
    def show_entry(self, entry: CatalogEntry) -> None:
        if self._return_to is not None and self._return_to[0] != entry.image_id:
            self._return_to = None  # the reader went elsewhere first
        self.workspace.choose_entry(entry)
        if not entry.ok:
            self.viewer.clear(entry.error or "unreadable file")
            self.panel.show_annotation(ImageAnnotation(), None)
            self.show_status(entry.error or "", 10000)
            self._update_enabled()
            self.image_failed.emit(entry.error or f"{entry.path}: unreadable file")
            return
        image = self.loader.load(entry.path)
        if image is not None:
            self.workspace.show_image(entry, image)
        else:
            self.show_status(f"Loading {entry.path.name}…", 0)
        if self.view.hanging_on:
            self.view.update_hanging()
        for delta in (1, -1):
            neighbour = self.browser.neighbour(delta)
            if neighbour is not None and neighbour.ok:
                self.loader.prefetch(neighbour.path)

    def _on_image_loaded(self, path: object, image: DicomImage) -> None:
        entry = self.workspace.entry
        if entry is not None and Path(entry.path) == Path(path):  # type: ignore[arg-type]
            self.workspace.show_image(entry, image)

    def _on_image_failed(self, path: object, message: str) -> None:
        entry = self.workspace.entry
        if entry is not None and Path(entry.path) == Path(path):  # type: ignore[arg-type]
            self.workspace.drop_image()
            self.viewer.clear(message)
            self.show_status(message, 10000)
            self._update_enabled()
            self.image_failed.emit(message)

    def _on_image_shown(self, entry: CatalogEntry, image: DicomImage) -> None:
        self.viewer.inverted = self.commands["invert"].isChecked()
        self.viewer.set_image(image, entry, keep_view=True)
        annotation = self.workspace.annotation()
        self.viewer.set_annotation(annotation, self.workspace.selected)
        self._show_annotation_state(annotation)
        if self._return_to is not None and self._return_to[0] == entry.image_id:
            self.workspace.select(self._return_to[1])
            self._return_to = None
        self._remember_view()
        self.show_status(f"{entry.image_id}  {entry.view_label}", 3000)
        self._update_enabled()
        self.image_changed.emit(entry, image)

    # ------------------------------------------------------------------------------------------ annotation
    def _on_annotation_changed(self, image_id: str, annotation: ImageAnnotation) -> None:
        if image_id == self.workspace.image_id and self.workspace.image is not None:
            self.viewer.set_annotation(annotation, self.workspace.selected)
            self._show_annotation_state(annotation)
        self.annotation_changed.emit(image_id, annotation)

    def _show_annotation_state(self, annotation: ImageAnnotation) -> None:
        self.panel.show_annotation(annotation, self.workspace.selected)
        # Group actions run their handlers on `triggered`, which setChecked does not emit.
        self.commands.check(f"mode_{annotation.mode}")
        self._sync_hole_action()
        self._update_enabled()

    def _remember_view(self) -> None:
        ws = self.workspace
        if ws.catalog is not None and ws.image_id is not None and self.remember_layout:
            self.settings.set_last_view(ws.catalog.root, ws.image_id, ws.selected)

    def _on_selection_changed(self, index: int | None) -> None:
        self._remember_view()
        if self.viewer.selected != index:
            self.viewer.select_box(index)
        self.panel.select_row(-1 if index is None else index)
        self._sync_hole_action()
        self._update_enabled()

    def _sync_hole_action(self) -> None:
        boxes = self.workspace.annotation().boxes
        index = self.workspace.selected
        hole = boxes[index].hole if index is not None and index < len(boxes) else self.workspace.default_hole
        self.commands.check(f"hole_{hole}")

    def _on_hole_changed(self, hole: HoleKind) -> None:
        self.viewer.default_hole = hole
        self._sync_hole_action()

    def _on_tool_changed(self, tool: Tool) -> None:
        if self.viewer.tool is not tool:
            self.viewer.set_tool(tool)
        self.commands.check(f"tool_{tool.value}")

    def _on_message(self, message: Message) -> None:
        if message.text:
            self.viewer.show_message(message.text, message.level)
        else:
            self.viewer.message_bar.retract()

    # ------------------------------------------------------------------------------------------ dialogs
    def show_tags(self) -> None:
        entry = self.workspace.entry
        if entry is None:
            return
        from linop_gui.tags import TagDialog

        try:
            dialog = TagDialog(entry.path, self)
        except LinopError as exc:
            QMessageBox.warning(self, "DICOM tags", str(exc))
            return
        dialog.show()
        self._tags_dialog = dialog

    def show_shortcuts(self) -> None:
        dialog = ShortcutDialog(self.specs, self)
        dialog.show()
        self._shortcut_dialog = dialog

    def about_text(self) -> str:
        return about_text(self.workspace.model)

    def show_about(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle(f"About {APP_NAME}")
        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(self.about_text())
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.show()
        self._about_box = box

    # ------------------------------------------------------------------------------------------ generation seam
    def set_generate_handler(self, handler: Callable[[], None] | None) -> None:
        """What G / Generate does (the generation panel's entry point); None disables it."""
        self._generate_handler = handler
        self._update_enabled()

    def _generate(self) -> None:
        if self._generate_handler is not None:
            self._generate_handler()

    def set_gallery_widget(self, widget: QWidget, title: str = "Candidates", *, show: bool = True) -> None:
        """``widget`` in the bottom "Candidates" dock; ``show=False`` keeps the dock hidden until
        :meth:`show_gallery` (so the image has the height until there is something to review)."""
        self.gallery_dock.setWidget(widget)
        self.gallery_dock.setWindowTitle(title)
        self.gallery_dock.setVisible(show)

    def show_gallery(self, visible: bool = True) -> None:
        self.gallery_dock.setVisible(visible)

    def enable_generation(self) -> GenerationController:
        """Adds generation, review and export (the model and io threads) to this window; returns the controller."""
        if self.generation is None:
            from linop_gui.generation import GenerationController

            self.generation = GenerationController(self.workspace, self, self.viewer, settings=self.settings,
                                                   model_path=self.model_path, device=self.device,
                                                   precision=self.precision)
        return self.generation

    def _update_enabled(self) -> None:
        a = self.commands
        ws = self.workspace
        has_image = ws.image is not None
        for action_id in ("preset_1", "preset_2", "preset_3", "preset_4", "invert", "fit", "one_to_one", "zoom_in",
                          "zoom_out", "reset_view", "tags", "tool_pan", "tool_wl", "tool_box", "tool_brush",
                          "tool_eraser", "mode_inpaint", "mode_outpaint"):
            a[action_id].setEnabled(has_image)
        a["tags"].setEnabled(ws.entry is not None and ws.entry.ok)
        a["delete_box"].setEnabled(has_image and ws.selected is not None)
        for action_id in ("undo", "redo", "save_annotations", "load_annotations"):
            a[action_id].setEnabled(ws.session is not None)
        for action_id in ("prev_image", "next_image", "first_image", "last_image", "hanging"):
            a[action_id].setEnabled(ws.catalog is not None)
        a["generate"].setEnabled(has_image and self._generate_handler is not None)

    # ------------------------------------------------------------------------------------------ lifetime
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous():
            self.viewer.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.remember_layout:
            self.settings.save_window(self.saveGeometry(), self.saveState(), self.size())
            self.settings.sync()
        if self.generation is not None:
            self.generation.shutdown()
        self.loader.shutdown()
        super().closeEvent(event)
