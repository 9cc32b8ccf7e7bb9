"""Opening what the user points at: File > Open, the recent and demo menus, drops. The catalog is read off the
GUI thread; its review session is opened (restoring boxes, candidates and decisions) and both go into the
workspace, whose observers update the widgets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from linop_core.catalog import Catalog
from linop_core.errors import LinopError
from linop_core.review.session import ReviewSession
from linop_gui.loader import ImageLoader
from linop_gui.preflight import path_problem
from linop_gui.settings import Settings
from linop_gui.workspace import Workspace

StatusFn = Callable[[str, int], None]


def _open_catalog(target: Path) -> Catalog:
    """The catalog of ``target``; a file that is not DICOM is refused rather than its folder opened."""
    problem = path_problem(target)
    if problem is not None:
        raise LinopError(problem)
    return Catalog.open(target)


class DatasetOpener(QObject):
    """Opens datasets into ``workspace``. ``failed(message)`` reports a path that could not be opened."""

    failed = Signal(str)

    def __init__(self, workspace: Workspace, loader: ImageLoader, settings: Settings, *, parent: QWidget,
                 recent_menu: QMenu, demo_menu: QMenu, status: StatusFn, session_base: Path | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.loader = loader
        self.settings = settings
        self.session_base = session_base
        self._parent = parent
        self._status = status
        self.recent_menu = recent_menu
        self.demo_menu = demo_menu
        self._demo_datasets: dict[str, Path] = {}
        self._demo_provider: Callable[[], dict[str, Path]] | None = None
        self.refresh_recent_menu()
        self._refresh_demo_menu()

    # -- dialogs ---------------------------------------------------------------------------------------------
    def choose_dataset(self) -> None:
        start = self.settings.recent()[0] if self.settings.recent() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self._parent, "Open a VinDr root or a folder of DICOM files", start)
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent, "Open a DICOM file", str(Path.home()),
                                              "DICOM files (*.dcm *.dicom *.dic);;All files (*)")
        if path:
            self.open_path(path)

    # -- opening ---------------------------------------------------------------------------------------------
    def open_path(self, path: str | os.PathLike[str]) -> None:
        """Open a VinDr root, a DICOM folder or file, off the GUI thread; the workspace's ``dataset_opened``
        follows, or ``failed``."""
        target = Path(path).expanduser()
        self._status(f"Opening {target}…", 0)
        self.loader.submit(lambda: _open_catalog(target), lambda c: self._on_catalog(c, target), self._fail)

    def _on_catalog(self, catalog: Catalog, opened: Path) -> None:
        try:
            folder = ReviewSession.default_folder(catalog.root, self.session_base)
            session = ReviewSession.open(catalog.root, folder)
        except LinopError as exc:
            self._fail(str(exc))
            return
        self.loader.clear()
        self.settings.add_recent(opened)
        self.refresh_recent_menu()
        self.workspace.open_dataset(catalog, session)

    def _fail(self, message: str) -> None:
        self._status(message, 10000)
        self.failed.emit(message)

    # -- menus -----------------------------------------------------------------------------------------------
    def refresh_recent_menu(self) -> None:
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
        self.refresh_recent_menu()

    def set_demo_datasets(self, datasets: dict[str, Path], provider: Callable[[], dict[str, Path]] | None) -> None:
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
        self._status("Preparing the phantom demo datasets…", 0)
        self.loader.submit(provider, lambda roots: self.open_path(roots[label]), self._fail)
