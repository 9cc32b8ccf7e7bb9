"""The main window: composes browser, viewer, four-view hanging and annotation panel; no logic of its own.

State lives elsewhere: the image list in :class:`~linop_core.catalog.Catalog`, boxes/masks/decisions in the
:class:`~linop_core.review.session.ReviewSession`, preferences in :class:`~linop_gui.settings.Settings`. The window
connects them and offers the seams the generation side plugs into:

- ``current_entry``, ``current_image``, ``current_annotation()``, ``current_window()``, ``session``,
  ``catalog``, ``model_path``, ``device``;
- signals ``dataset_opened(catalog)``, ``image_changed(entry, image)``, ``annotation_changed(image_id,
  annotation)``;
- ``action("generate")`` (G; disabled until a handler is connected with ``set_generate_handler``),
  ``add_action(spec, handler)`` for more keyed actions (listed in the shortcut dialog), ``generate_menu``;
- ``set_gallery_widget(widget)`` puts a widget in the bottom "Candidates" dock;
- ``set_model_info(ModelInfo)`` updates the status bar and the about box.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from linop_core.catalog import Catalog, CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_core.errors import LinopError
from linop_core.review.session import ImageAnnotation, ReviewSession
from linop_gui import tools
from linop_gui.annotate_panel import AnnotatePanel
from linop_gui.browser import BrowserPanel
from linop_gui.hanging import HangingView
from linop_gui.loader import ImageLoader
from linop_gui.settings import Settings
from linop_gui.shortcuts import SHORTCUTS, ShortcutDialog, ShortcutSpec, key_sequences
from linop_gui.theme import app_icon, apply_theme, icon
from linop_gui.tools import Tool
from linop_gui.viewer import ImageViewer

APP_NAME = "LINOP Studio"
NO_MODEL = "biharmonic (no model)"


def app_version() -> str:
    try:
        from importlib.metadata import version

        return version("linop")
    except Exception:  # not installed as a distribution (running from a source tree)
        return "0+unknown"


@dataclass(frozen=True)
class ModelInfo:
    """What the about box and status bar say about the generator in use."""

    name: str = NO_MODEL
    version: str = "—"
    licence: str = "—"
    path: str | None = None
    device: str | None = None

    @property
    def label(self) -> str:
        return self.name + (f" · {self.device}" if self.device else "")


class MainWindow(QMainWindow):
    dataset_opened = Signal(object)  # Catalog
    image_changed = Signal(object, object)  # CatalogEntry, DicomImage
    annotation_changed = Signal(str, object)  # image_id, ImageAnnotation
    open_failed = Signal(str)

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model_path: str | None = None,
        device: str | None = None,
        session_base: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.model_path = model_path
        self.device = device
        self.session_base = session_base
        self.model_info = ModelInfo(
            name=Path(model_path).stem if model_path else NO_MODEL,
            version="not loaded yet" if model_path else "—",
            path=model_path,
            device=device,
        )
        self.catalog: Catalog | None = None
        self.session: ReviewSession | None = None
        self.current_entry: CatalogEntry | None = None
        self.current_image: DicomImage | None = None
        self._generate_handler: Callable[[], None] | None = None
        self._theme = self.settings.theme
        self._demo_datasets: dict[str, Path] = {}
        self._demo_provider: Callable[[], dict[str, Path]] | None = None

        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.loader = ImageLoader(self)

        self.specs: list[ShortcutSpec] = list(SHORTCUTS)
        self._actions: dict[str, QAction] = {}
        for spec in SHORTCUTS:
            self._make_action(spec)

        self.viewer = ImageViewer(self)
        self.viewer.brush_radius = self.settings.brush_radius
        self.viewer.default_hole = self.settings.hole_shape
        self.viewer.show_findings = self.settings.show_findings
        self.hanging = HangingView(self.loader, self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.viewer)
        self.stack.addWidget(self.hanging)
        self.setCentralWidget(self.stack)

        self.browser = BrowserPanel(self.loader, self)
        self.browser_dock = self._dock("Images", "browser", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.panel = AnnotatePanel(self._actions, self)
        self.panel.set_brush_radius(self.viewer.brush_radius)
        self.panel_dock = self._dock("Annotate", "annotate", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.gallery_dock = self._dock("Candidates", "gallery", QWidget(self), Qt.DockWidgetArea.BottomDockWidgetArea)
        self.gallery_dock.hide()

        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        self._sync_checks()
        self._update_enabled()

        geometry, state = self.settings.window_geometry(), self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 920)
        if state is None or not self.restoreState(state):
            self.resizeDocks([self.browser_dock, self.panel_dock], [330, 290], Qt.Orientation.Horizontal)

    # ------------------------------------------------------------------------------------------ construction
    def _make_action(self, spec: ShortcutSpec) -> QAction:
        action = QAction(spec.text, self)
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
            action.setIcon(icon(spec.icon, self._theme))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.addAction(action)
        self._actions[spec.action_id] = action
        return action

    def action(self, action_id: str) -> QAction:
        return self._actions[action_id]

    def add_action(self, spec: ShortcutSpec, handler: Callable[[], None], menu: QMenu | None = None) -> QAction:
        """Register a further keyed action (listed in the shortcut dialog); added to ``menu`` if given."""
        if spec.action_id in self._actions:
            raise ValueError(f"action {spec.action_id!r} exists already")
        action = self._make_action(spec)
        self.specs.append(spec)
        action.triggered.connect(lambda *_: handler())
        if menu is not None:
            menu.addAction(action)
        return action

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        a = self._actions
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(a["open"])
        file_menu.addAction(a["open_file"])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.demo_menu = file_menu.addMenu("&Demo datasets")
        file_menu.addSeparator()
        file_menu.addAction(a["save_annotations"])
        file_menu.addAction(a["load_annotations"])
        file_menu.addSeparator()
        file_menu.addAction(a["quit"])
        self.file_menu = file_menu
        self._refresh_recent_menu()
        self._refresh_demo_menu()

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
        for dock in (self.browser_dock, self.panel_dock, self.gallery_dock):
            view.addAction(dock.toggleViewAction())
        view.addAction(a["theme"])
        self.view_menu = view

        nav = bar.addMenu("&Navigate")
        for action_id in ("prev_image", "next_image", "first_image", "last_image", "focus_filter"):
            nav.addAction(a[action_id])

        tools_menu = bar.addMenu("&Tools")
        self._tool_group = QActionGroup(self)
        for action_id in ("tool_pan", "tool_wl", "tool_box", "tool_brush", "tool_eraser"):
            self._tool_group.addAction(a[action_id])
            tools_menu.addAction(a[action_id])
        tools_menu.addSeparator()
        for action_id in ("brush_smaller", "brush_larger", "cancel"):
            tools_menu.addAction(a[action_id])

        annotate = bar.addMenu("&Annotate")
        self._mode_group = QActionGroup(self)
        for action_id in ("mode_inpaint", "mode_outpaint"):
            self._mode_group.addAction(a[action_id])
            annotate.addAction(a[action_id])
        annotate.addSeparator()
        self._hole_group = QActionGroup(self)
        for action_id in ("hole_ellipse", "hole_rectangle", "hole_brush"):
            self._hole_group.addAction(a[action_id])
            annotate.addAction(a[action_id])
        annotate.addSeparator()
        for action_id in ("delete_box", "undo", "redo"):
            annotate.addAction(a[action_id])

        self.generate_menu = bar.addMenu("&Generate")
        self.generate_menu.addAction(a["generate"])

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(a["shortcuts"])
        help_menu.addAction(a["about"])

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        bar.setObjectName("toolbar_main")
        bar.setMovable(False)
        bar.setIconSize(QSize(20, 20))
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        groups = (
            ("open",),
            ("prev_image", "next_image", "hanging"),
            ("tool_pan", "tool_wl", "tool_box", "tool_brush", "tool_eraser"),
            ("fit", "one_to_one", "invert", "reset_view", "findings", "tags"),
            ("undo", "redo"),
            ("mode_inpaint", "mode_outpaint", "generate"),
        )
        for i, group in enumerate(groups):
            if i:
                bar.addSeparator()
            for action_id in group:
                bar.addAction(self._actions[action_id])
        self.toolbar = bar

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.pixel_label = QLabel("", self)
        self.window_label = QLabel("", self)
        self.model_label = QLabel("", self)
        self.model_label.setToolTip("Generator used for previews (Help > About)")
        for label in (self.pixel_label, self.window_label, self.model_label):
            status.addPermanentWidget(label)
        self._show_model_info()

    def _connect(self) -> None:
        a = self._actions
        a["open"].triggered.connect(self.choose_dataset)
        a["open_file"].triggered.connect(self.choose_file)
        a["save_annotations"].triggered.connect(self.save_annotations_dialog)
        a["load_annotations"].triggered.connect(self.load_annotations_dialog)
        a["quit"].triggered.connect(self.close)
        a["prev_image"].triggered.connect(lambda: self.browser.step(-1))
        a["next_image"].triggered.connect(lambda: self.browser.step(+1))
        a["first_image"].triggered.connect(lambda: self.browser.select_row(0))
        a["last_image"].triggered.connect(lambda: self.browser.select_row(self.browser.model.rowCount() - 1))
        a["focus_filter"].triggered.connect(self._focus_filter)
        a["hanging"].toggled.connect(self.set_hanging)
        for i in range(1, 5):
            a[f"preset_{i}"].triggered.connect(lambda _=False, i=i: self.apply_preset(i - 1))
        a["invert"].toggled.connect(self._set_inverted)
        a["fit"].triggered.connect(lambda: self._each_viewer(ImageViewer.fit))
        a["one_to_one"].triggered.connect(self.viewer.one_to_one)
        a["zoom_in"].triggered.connect(lambda: self.viewer.zoom_by(1.25))
        a["zoom_out"].triggered.connect(lambda: self.viewer.zoom_by(1 / 1.25))
        a["reset_view"].triggered.connect(self._reset_view)
        a["findings"].toggled.connect(self._set_show_findings)
        a["overlays"].toggled.connect(self._set_show_overlays)
        a["tags"].triggered.connect(self.show_tags)
        a["theme"].toggled.connect(lambda dark: self.set_theme("dark" if dark else "light"))
        for tool in Tool:
            a[f"tool_{tool.value}"].triggered.connect(lambda _=False, t=tool: self.viewer.set_tool(t))
        a["brush_smaller"].triggered.connect(lambda: self._set_brush_radius(round(self.viewer.brush_radius / 1.25)))
        a["brush_larger"].triggered.connect(lambda: self._set_brush_radius(round(self.viewer.brush_radius * 1.25) + 1))
        a["cancel"].triggered.connect(self._cancel)
        a["mode_inpaint"].triggered.connect(lambda: self.set_mode("inpaint"))
        a["mode_outpaint"].triggered.connect(lambda: self.set_mode("outpaint"))
        for hole in ("ellipse", "rectangle", "brush"):
            a[f"hole_{hole}"].triggered.connect(lambda _=False, h=hole: self.set_hole(h))
        a["delete_box"].triggered.connect(self.viewer.delete_selected)
        a["undo"].triggered.connect(self.undo)
        a["redo"].triggered.connect(self.redo)
        a["generate"].triggered.connect(self._generate)
        a["shortcuts"].triggered.connect(self.show_shortcuts)
        a["about"].triggered.connect(self.show_about)

        self.browser.entry_selected.connect(self.show_entry)
        self.loader.image_loaded.connect(self._on_image_loaded)
        self.loader.image_failed.connect(self._on_image_failed)
        self.viewer.annotation_edited.connect(self._on_annotation_edited)
        self.viewer.selection_changed.connect(self._on_selection_changed)
        self.viewer.window_changed.connect(self._on_window_changed)
        self.viewer.pixel_hovered.connect(self._on_pixel)
        self.viewer.tool_changed.connect(self._on_tool_changed)
        self.viewer.message.connect(lambda text: self.statusBar().showMessage(text, 4000))
        self.viewer.view_changed.connect(self._on_window_changed)
        self.hanging.view_activated.connect(self._open_from_hanging)
        self.panel.box_selected.connect(lambda i: self.viewer.select_box(None if i < 0 else i))
        self.panel.margin_changed.connect(self.set_margin)
        self.panel.brush_radius_changed.connect(self._set_brush_radius)

    def _sync_checks(self) -> None:
        a = self._actions
        for action_id, value in (("findings", self.viewer.show_findings), ("overlays", self.settings.show_overlays),
                                 ("theme", self._theme == "dark")):
            with QSignalBlocker(a[action_id]):
                a[action_id].setChecked(value)
        for action_id in ("tool_pan", "mode_inpaint", f"hole_{self.viewer.default_hole}"):
            a[action_id].setChecked(True)  # exclusive groups; handlers listen to `triggered`
        self.viewer.set_show_overlays(self.settings.show_overlays)

    # ------------------------------------------------------------------------------------------ opening
    def choose_dataset(self) -> None:
        start = self.settings.recent()[0] if self.settings.recent() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open a VinDr root or a folder of DICOM files", start)
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a DICOM file", str(Path.home()),
                                              "DICOM files (*.dcm *.dicom *.dic);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike[str]) -> None:
        """Open a VinDr root, a DICOM folder or file, off the GUI thread; ``dataset_opened`` follows."""
        target = Path(path).expanduser()
        self.statusBar().showMessage(f"Opening {target}…")
        self.viewer.set_placeholder(f"Opening {target.name}…") if self.viewer.image is None else None
        self.loader.submit(lambda: Catalog.open(target), lambda c: self._on_catalog(c, target), self._on_open_failed)

    def _on_catalog(self, catalog: Catalog, opened: Path) -> None:
        try:
            folder = ReviewSession.default_folder(catalog.root, self.session_base)
            session = ReviewSession.open(catalog.root, folder)
        except LinopError as exc:
            self._on_open_failed(str(exc))
            return
        self.loader.clear()
        self.catalog, self.session = catalog, session
        self.viewer.set_brush_store(session.save_brush, session.load_brush)
        self.settings.add_recent(opened)
        self._refresh_recent_menu()
        self.setWindowTitle(f"{catalog.root.name} — {APP_NAME}")
        self.current_entry = None
        self.browser.set_catalog(catalog)
        if catalog.initial_path is not None:
            entry = catalog.find_path(catalog.initial_path)
            if entry is not None:
                self.browser.select(entry.image_id)
        message = catalog.summary
        if catalog.problems:
            message += f" — {len(catalog.problems)} problem(s), see the list's tooltip"
        self.statusBar().showMessage(message, 8000)
        self._update_enabled()
        self.dataset_opened.emit(catalog)

    def _on_open_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)
        if self.viewer.image is None:
            self.viewer.set_placeholder(message)
        self.open_failed.emit(message)

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _clear_recent(self) -> None:
        self.settings.clear_recent()
        self._refresh_recent_menu()

    def set_demo_datasets(
        self, datasets: dict[str, Path], provider: Callable[[], dict[str, Path]] | None = None
    ) -> None:
        """Entries of File > Demo datasets (label -> root). With ``provider`` (which writes the datasets when
        missing and returns the same labels -> roots), choosing an entry first runs it off the GUI thread."""
        self._demo_datasets = dict(datasets)
        self._demo_provider = provider
        self._refresh_demo_menu()

    def _refresh_demo_menu(self) -> None:
        self.demo_menu.clear()
        for label, path in self._demo_datasets.items():
            action = self.demo_menu.addAction(label)
            action.setToolTip(str(path))
            action.triggered.connect(lambda _=False, lab=label: self.open_demo(lab))
        self.demo_menu.setEnabled(bool(self._demo_datasets))

    def open_demo(self, label: str) -> None:
        provider = self._demo_provider
        if provider is None:
            self.open_path(self._demo_datasets[label])
            return
        self.statusBar().showMessage("Preparing the phantom demo datasets…")
        self.loader.submit(provider, lambda roots: self.open_path(roots[label]), self._on_open_failed)

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
        self.current_entry = entry
        if not entry.ok:
            self.current_image = None
            self.viewer.clear(entry.error or "unreadable file")
            self.panel.show_annotation(ImageAnnotation(), None)
            self.statusBar().showMessage(entry.error or "", 10000)
            self._update_enabled()
            return
        image = self.loader.load(entry.path)
        if image is not None:
            self._display(entry, image)
        else:
            self.statusBar().showMessage(f"Loading {entry.path.name}…")
        if self._actions["hanging"].isChecked():
            self._update_hanging()
        for delta in (1, -1):
            neighbour = self.browser.neighbour(delta)
            if neighbour is not None and neighbour.ok:
                self.loader.prefetch(neighbour.path)

    def _on_image_loaded(self, path: object, image: DicomImage) -> None:
        entry = self.current_entry
        if entry is not None and Path(entry.path) == Path(path):  # type: ignore[arg-type]
            self._display(entry, image)

    def _on_image_failed(self, path: object, message: str) -> None:
        entry = self.current_entry
        if entry is not None and Path(entry.path) == Path(path):  # type: ignore[arg-type]
            self.current_image = None
            self.viewer.clear(message)
            self.statusBar().showMessage(message, 10000)
            self._update_enabled()

    def _display(self, entry: CatalogEntry, image: DicomImage) -> None:
        keep_view = self.current_image is not None and self.current_image.pixels.shape == image.pixels.shape
        self.current_image = image
        inverted = self._actions["invert"].isChecked()
        self.viewer.inverted = inverted
        self.viewer.set_image(image, entry, keep_view=keep_view)
        annotation = self.current_annotation()
        self.viewer.set_annotation(annotation)
        self._show_annotation_state(annotation)
        self.statusBar().showMessage(f"{entry.image_id}  {entry.view_label}", 3000)
        self._update_enabled()
        self.image_changed.emit(entry, image)

    def current_annotation(self) -> ImageAnnotation:
        """The current image's annotation from the session (a copy); empty without an image or session."""
        if self.session is None or self.current_entry is None:
            return ImageAnnotation()
        return self.session.annotation(self.current_entry.image_id)

    def current_window(self) -> VoiWindow | None:
        return self.viewer.window

    # ------------------------------------------------------------------------------------------ annotation
    def _commit(self, annotation: ImageAnnotation, selected: int | None = None) -> None:
        if self.session is None or self.current_entry is None or self.current_image is None:
            return
        self.session.apply(self.current_entry.image_id, annotation)
        self.viewer.set_annotation(annotation, selected)
        self._show_annotation_state(annotation)
        self.annotation_changed.emit(self.current_entry.image_id, annotation)

    def _on_annotation_edited(self, annotation: ImageAnnotation) -> None:
        self._commit(annotation, self.viewer.selected)

    def _show_annotation_state(self, annotation: ImageAnnotation) -> None:
        self.panel.show_annotation(annotation, self.viewer.selected)
        # Group actions run their handlers on `triggered`, which setChecked does not emit; the exclusive group
        # unchecks the others only when signals flow, so no blocker here.
        self._actions[f"mode_{annotation.mode}"].setChecked(True)
        self._sync_hole_action()
        self._update_enabled()

    def _on_selection_changed(self, index: int) -> None:
        self.panel.select_row(index)
        self._sync_hole_action()
        self._update_enabled()

    def _sync_hole_action(self) -> None:
        boxes = self.viewer.annotation.boxes
        index = self.viewer.selected
        hole = boxes[index].hole if index is not None and index < len(boxes) else self.viewer.default_hole
        self._actions[f"hole_{hole}"].setChecked(True)

    def set_mode(self, mode: str) -> None:
        annotation = self.current_annotation()
        if annotation.mode == mode:
            return
        # A fresh outpainting selection starts from the reader's usual margin.
        margin = self.settings.outpaint_margin if mode == "outpaint" and not annotation.boxes else annotation.margin
        self._commit(ImageAnnotation(mode=mode, boxes=annotation.boxes, margin=margin))  # type: ignore[arg-type]
        self.statusBar().showMessage(f"{mode.capitalize()}ing mode", 3000)

    def set_hole(self, hole: str) -> None:
        """Hole shape of the selected box, and the default for new boxes."""
        self.viewer.default_hole = hole
        self.settings.hole_shape = hole
        index = self.viewer.selected
        annotation = self.current_annotation()
        if self.session is None or index is None or index >= len(annotation.boxes) or annotation.mode != "inpaint":
            return
        assert self.current_image is not None
        new = tools.set_hole(annotation, index, hole, self.current_image.pixels.shape, self.session.save_brush)
        if new is not annotation:
            self._commit(new, index)

    def set_margin(self, margin: float) -> None:
        annotation = self.current_annotation()
        self.settings.outpaint_margin = margin
        if annotation.margin != margin:
            self._commit(ImageAnnotation(mode=annotation.mode, boxes=annotation.boxes, margin=float(margin)))

    def undo(self) -> None:
        self._undo_redo(undo=True)

    def redo(self) -> None:
        self._undo_redo(undo=False)

    def _undo_redo(self, *, undo: bool) -> None:
        if self.session is None:
            return
        image_id = self.session.undo() if undo else self.session.redo()
        if image_id is None:
            self.statusBar().showMessage("Nothing to undo" if undo else "Nothing to redo", 3000)
            return
        if self.current_entry is not None and image_id == self.current_entry.image_id:
            annotation = self.current_annotation()
            self.viewer.set_annotation(annotation)
            self._show_annotation_state(annotation)
            self.annotation_changed.emit(image_id, annotation)
        elif not self.browser.select(image_id):
            verb = "Undid" if undo else "Redid"
            self.statusBar().showMessage(f"{verb} an edit of {image_id} (hidden by the filters)", 5000)

    def save_annotations_dialog(self) -> None:
        if self.session is None:
            return
        default = str(tools.default_annotation_file(self.session))
        path, _ = QFileDialog.getSaveFileName(self, "Save boxes and masks", default, "JSON (*.json)")
        if path:
            n = tools.save_annotations(path, self.session)
            self.statusBar().showMessage(f"Saved boxes and masks of {n} image(s) to {path}", 6000)

    def load_annotations_dialog(self) -> None:
        if self.session is None or self.catalog is None:
            return
        default = str(tools.default_annotation_file(self.session))
        path, _ = QFileDialog.getOpenFileName(self, "Load boxes and masks", default, "JSON (*.json)")
        if path:
            self.load_annotations(path)

    def load_annotations(self, path: str | os.PathLike[str]) -> list[str]:
        if self.session is None or self.catalog is None:
            return []
        try:
            applied = tools.load_annotations(path, self.session, (e.image_id for e in self.catalog.entries))
        except LinopError as exc:
            QMessageBox.warning(self, "Cannot load boxes and masks", str(exc))
            return []
        if self.current_entry is not None and self.current_entry.image_id in applied:
            annotation = self.current_annotation()
            self.viewer.set_annotation(annotation)
            self._show_annotation_state(annotation)
        self.statusBar().showMessage(f"Loaded boxes and masks of {len(applied)} image(s)", 6000)
        return applied

    # ------------------------------------------------------------------------------------------ view
    def _each_viewer(self, fn: Callable[[ImageViewer], object]) -> None:
        viewers = list(self.hanging.viewers.values()) if self._actions["hanging"].isChecked() else [self.viewer]
        for viewer in viewers:
            fn(viewer)

    def apply_preset(self, index: int) -> None:
        if not self.viewer.apply_preset(index):
            self.statusBar().showMessage(f"This image has no window preset {index + 1}", 3000)
        if self._actions["hanging"].isChecked():
            for viewer in self.hanging.viewers.values():
                viewer.apply_preset(index)

    def _set_inverted(self, inverted: bool) -> None:
        self.viewer.set_inverted(inverted)
        for viewer in self.hanging.viewers.values():
            viewer.set_inverted(inverted)

    def _reset_view(self) -> None:
        with QSignalBlocker(self._actions["invert"]):
            self._actions["invert"].setChecked(False)
        self._each_viewer(ImageViewer.reset)
        self.viewer.reset()

    def _set_show_findings(self, show: bool) -> None:
        self.settings.show_findings = show
        self.viewer.set_show_findings(show)
        for viewer in self.hanging.viewers.values():
            viewer.set_show_findings(show)

    def _set_show_overlays(self, show: bool) -> None:
        self.settings.show_overlays = show
        self.viewer.set_show_overlays(show)
        for viewer in self.hanging.viewers.values():
            viewer.set_show_overlays(show)

    def set_hanging(self, on: bool) -> None:
        """Four-view hanging of the current mammography study, or back to the single view."""
        entry = self.current_entry
        if on and (self.catalog is None or entry is None or not self.catalog.has_hanging(entry)):
            with QSignalBlocker(self._actions["hanging"]):
                self._actions["hanging"].setChecked(False)
            self.statusBar().showMessage("Four-view hanging needs a mammography study with CC and MLO views", 5000)
            return
        if on:
            self._update_hanging()
        self.stack.setCurrentWidget(self.hanging if on else self.viewer)

    def _update_hanging(self) -> None:
        if self.catalog is None or self.current_entry is None:
            return
        if not self.current_entry.ok or not self.catalog.has_hanging(self.current_entry):
            self.set_hanging(False)
            with QSignalBlocker(self._actions["hanging"]):
                self._actions["hanging"].setChecked(False)
            return
        self.hanging.set_study(self.catalog.hanging(self.current_entry), self.current_entry)

    def _open_from_hanging(self, entry: CatalogEntry) -> None:
        self._actions["hanging"].setChecked(False)
        self.browser.select(entry.image_id)

    def _focus_filter(self) -> None:
        self.browser_dock.show()
        self.browser.search.setFocus()
        self.browser.search.selectAll()

    def _set_brush_radius(self, radius: int) -> None:
        self.viewer.set_brush_radius(radius)
        self.settings.brush_radius = self.viewer.brush_radius
        self.panel.set_brush_radius(self.viewer.brush_radius)

    def _cancel(self) -> None:
        self.viewer.cancel_interaction()
        self.viewer.set_tool(Tool.PAN)

    def _on_tool_changed(self, tool: str) -> None:
        self._actions[f"tool_{tool}"].setChecked(True)

    def _on_window_changed(self, *args: object) -> None:
        window = self.viewer.window
        if window is None:
            self.window_label.setText("")
            return
        zoom = self.viewer.zoom() * 100
        self.window_label.setText(f"W {window.width:.0f} / L {window.center:.0f} · zoom {zoom:.0f} %")

    def _on_pixel(self, x: int, y: int, value: float) -> None:
        shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
        self.pixel_label.setText(f"({x}, {y}) = {shown}")

    def set_theme(self, theme: str) -> None:
        self._theme = theme
        self.settings.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        for spec in self.specs:
            if spec.icon:
                self._actions[spec.action_id].setIcon(icon(spec.icon, theme))

    # ------------------------------------------------------------------------------------------ dialogs
    def show_tags(self) -> None:
        if self.current_entry is None:
            return
        from linop_gui.tags import TagDialog

        try:
            dialog = TagDialog(self.current_entry.path, self)
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
        info = self.model_info
        rows = [
            f"<h3>{APP_NAME} {app_version()}</h3>",
            "<p>Lesion in- and out-painting of mammograms and chest X-rays with a Mask-Aware Transformer.</p>",
            "<table>",
            f"<tr><td><b>Model</b>&nbsp;</td><td>{info.name}</td></tr>",
            f"<tr><td><b>Version</b>&nbsp;</td><td>{info.version}</td></tr>",
            f"<tr><td><b>Weights licence</b>&nbsp;</td><td>{info.licence}</td></tr>",
        ]
        if info.path:
            rows.append(f"<tr><td><b>Checkpoint</b>&nbsp;</td><td>{info.path}</td></tr>")
        if info.device:
            rows.append(f"<tr><td><b>Device</b>&nbsp;</td><td>{info.device}</td></tr>")
        rows.append("</table><p>Synthetic images are for research and training data only, never for diagnosis.</p>")
        return "".join(rows)

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
    def set_model_info(self, info: ModelInfo) -> None:
        self.model_info = info
        self._show_model_info()

    def _show_model_info(self) -> None:
        self.model_label.setText(f"Model: {self.model_info.label}")

    def set_generate_handler(self, handler: Callable[[], None] | None) -> None:
        """What G / Generate does (the generation panel's entry point); None disables it."""
        self._generate_handler = handler
        self._update_enabled()

    def _generate(self) -> None:
        if self._generate_handler is not None:
            self._generate_handler()

    def set_gallery_widget(self, widget: QWidget, title: str = "Candidates") -> None:
        self.gallery_dock.setWidget(widget)
        self.gallery_dock.setWindowTitle(title)
        self.gallery_dock.show()

    def _update_enabled(self) -> None:
        a = self._actions
        has_image = self.current_image is not None
        has_session = self.session is not None
        for action_id in ("preset_1", "preset_2", "preset_3", "preset_4", "invert", "fit", "one_to_one", "zoom_in",
                          "zoom_out", "reset_view", "tags", "tool_pan", "tool_wl", "tool_box", "tool_brush",
                          "tool_eraser", "mode_inpaint", "mode_outpaint"):
            a[action_id].setEnabled(has_image)
        a["tags"].setEnabled(self.current_entry is not None and self.current_entry.ok)
        a["delete_box"].setEnabled(has_image and self.viewer.selected is not None)
        for action_id in ("undo", "redo", "save_annotations", "load_annotations"):
            a[action_id].setEnabled(has_session)
        for action_id in ("prev_image", "next_image", "first_image", "last_image", "hanging"):
            a[action_id].setEnabled(self.catalog is not None)
        a["generate"].setEnabled(has_image and self._generate_handler is not None)

    # ------------------------------------------------------------------------------------------ lifetime
    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.loader.shutdown()
        super().closeEvent(event)
