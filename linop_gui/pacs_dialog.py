"""File > Open from PACS (DICOMweb): search a server's studies (QIDO-RS), retrieve one into the local cache
(WADO-RS) and open it in the main window, like any folder of DICOM files.

- :class:`PacsDialog` shows a :class:`~linop_gui.pacs.PacsBrowser` (the state, Qt-free) and turns clicks into its
  methods; the network calls run as jobs of a worker thread, with progress and cancel.
- :class:`PacsController` adds the menu entry to the main window, owns the dialog and that worker thread, and
  opens a retrieved study. ``linop-gui --dicomweb URL`` opens the dialog at start and lists the server's studies.

The browser has its own worker thread rather than the io thread of generation: a WADO retrieval of a large study
takes minutes and must not hold up the gallery's candidate reads and the exports queued on that thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from linop_core.dicomweb import RetrievedStudy, SeriesSummary, StudySummary
from linop_gui.pacs import (
    MODALITIES,
    PacsActivity,
    PacsBrowser,
    PacsSearch,
    retrieve_job,
    search_job,
    series_job,
)
from linop_gui.settings import Settings
from linop_gui.shortcuts import ShortcutSpec
from linop_gui.worker import BackgroundWorker, WorkerError
from linop_gui.workspace import MessageLevel

SEARCH_CHANNEL = "pacs-search"
SERIES_CHANNEL = "pacs-series"
RETRIEVE_CHANNEL = "pacs-retrieve"
STUDY_COLUMNS = ("Study date", "Patient ID", "Patient name", "Description", "Modalities", "Series", "Images")
SERIES_COLUMNS = ("#", "Modality", "Description", "Images")
_LEVEL_STYLE = {  # background, accent, mark: the viewer's message bar colours, readable in both themes
    MessageLevel.INFO: ("#1f3a5f", "#9cc3f5", "ℹ"),
    MessageLevel.WARNING: ("#4a3b12", "#f0c040", "⚠"),
    MessageLevel.ERROR: ("#4d1f1f", "#ff8a80", "✖"),
}


class PacsHost(Protocol):
    """What the PACS browser needs of the main window."""

    settings: Settings

    @property
    def menus(self) -> Any: ...  # .file and .recent (QMenu)

    def add_action(self, spec: ShortcutSpec, handler: Any, menu: QMenu | None = None) -> QAction: ...

    def open_path(self, path: str | os.PathLike[str]) -> None: ...

    def show_status(self, text: str, timeout_ms: int = 4000) -> None: ...

    def installEventFilter(self, watched: QObject) -> None: ...


def _date_text(date: str) -> str:
    return f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else date


def _count(value: int | None) -> QTableWidgetItem:
    item = QTableWidgetItem()
    if value is not None:
        item.setData(Qt.ItemDataRole.DisplayRole, value)  # sorts as a number
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class PacsDialog(QDialog):
    """The PACS browser (see the module docstring). Non-modal: the main window stays usable behind it."""

    def __init__(self, browser: PacsBrowser, worker: BackgroundWorker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.browser = browser
        self.worker = worker
        self._jobs: dict[str, int | None] = {SEARCH_CHANNEL: None, SERIES_CHANNEL: None, RETRIEVE_CHANNEL: None}
        self._shown: tuple[StudySummary, ...] | None = None
        self.setWindowTitle("Open from PACS (DICOMweb)")
        self.setObjectName("pacs_dialog")

        self.url_edit = QLineEdit(browser.url, self)
        self.url_edit.setPlaceholderText("http://host:8042/dicom-web")
        self.url_edit.setToolTip("The server's DICOMweb root (QIDO-RS / WADO-RS)")
        self.credentials_label = QLabel(browser.credentials, self)
        self.credentials_label.setWordWrap(True)
        self.cache_label = QLabel(self)
        self.cache_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cache_label.setWordWrap(True)

        self.patient_id_edit = QLineEdit(self)
        self.patient_name_edit = QLineEdit(self)
        self.patient_name_edit.setPlaceholderText("DOE* (wildcards * and ?)")
        self.modality_combo = QComboBox(self)
        self.modality_combo.setEditable(True)
        for modality in MODALITIES:
            self.modality_combo.addItem(modality or "any", modality)
        self.date_edit = QLineEdit(self)
        self.date_edit.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.study_uid_edit = QLineEdit(self)
        self.study_uid_edit.setPlaceholderText("1.2.840…")
        self.search_button = QPushButton("&Search", self)
        self.search_button.setDefault(True)

        self.studies = QTableWidget(0, len(STUDY_COLUMNS), self)
        self.studies.setObjectName("pacs_studies")
        self.studies.setHorizontalHeaderLabels(STUDY_COLUMNS)
        self.studies.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.studies.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.studies.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.studies.setAlternatingRowColors(True)
        self.studies.verticalHeader().hide()
        header = self.studies.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.series_table = QTableWidget(0, len(SERIES_COLUMNS), self)
        self.series_table.setObjectName("pacs_series")
        self.series_table.setHorizontalHeaderLabels(SERIES_COLUMNS)
        self.series_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.series_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.series_table.verticalHeader().hide()
        self.series_table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m images")
        self.message_frame = QFrame(self)
        self.message_frame.setObjectName("pacsMessage")
        self.message_icon = QLabel(self.message_frame)
        self.message_label = QLabel(self.message_frame)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout(self.message_frame)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.message_icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.message_label, 1)

        self.buttons = QDialogButtonBox(self)
        self.retrieve_button = self.buttons.addButton("&Retrieve and open", QDialogButtonBox.ButtonRole.ActionRole)
        self.retrieve_button.setToolTip("Fetch the selected study's images into the cache (WADO-RS) and open them")
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.setAutoDefault(False)

        self._build_layout()
        self._connect()
        self._fit_screen()
        self.refresh()

    def _build_layout(self) -> None:
        server = QGroupBox("Server", self)
        server_layout = QGridLayout(server)
        server_layout.addWidget(QLabel("DICOMweb URL:", server), 0, 0)
        server_layout.addWidget(self.url_edit, 0, 1)
        server_layout.addWidget(self.credentials_label, 1, 1)
        server_layout.addWidget(self.cache_label, 2, 1)
        server_layout.setColumnStretch(1, 1)

        search = QGroupBox("Search studies", self)
        grid = QGridLayout(search)
        for column, (label, widget) in enumerate((("Patient ID:", self.patient_id_edit),
                                                  ("Patient name:", self.patient_name_edit),
                                                  ("Modality:", self.modality_combo))):
            grid.addWidget(QLabel(label, search), 0, 2 * column)
            grid.addWidget(widget, 0, 2 * column + 1)
        grid.addWidget(QLabel("Study date:", search), 1, 0)
        grid.addWidget(self.date_edit, 1, 1)
        grid.addWidget(QLabel("Study UID:", search), 1, 2)
        grid.addWidget(self.study_uid_edit, 1, 3, 1, 3)
        grid.addWidget(self.search_button, 0, 6, 2, 1)
        for column in (1, 3):
            grid.setColumnStretch(column, 1)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.studies)
        series_box = QWidget(split)
        series_layout = QVBoxLayout(series_box)
        series_layout.setContentsMargins(0, 0, 0, 0)
        self.series_caption = QLabel("Series of the selected study", series_box)
        series_layout.addWidget(self.series_caption)
        series_layout.addWidget(self.series_table)
        split.addWidget(series_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        self.split = split

        layout = QVBoxLayout(self)
        layout.addWidget(server)
        layout.addWidget(search)
        layout.addWidget(split, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.message_frame)
        layout.addWidget(self.buttons)

    def _fit_screen(self) -> None:
        """Large enough for a page of studies, never larger than the screen (1366 x 768 included)."""
        screen = (self.parentWidget() or self).screen()
        available = screen.availableGeometry() if screen is not None else None
        width, height = 1180, 780
        if available is not None:
            width = min(width, int(available.width() * 0.9))
            height = min(height, int(available.height() * 0.9))
        self.resize(width, height)
        self.split.setSizes([int(height * 0.45), int(height * 0.18)])

    def _connect(self) -> None:
        self.search_button.clicked.connect(self.search)
        for edit in (self.patient_id_edit, self.patient_name_edit, self.date_edit, self.study_uid_edit):
            edit.returnPressed.connect(self.search)
        self.url_edit.returnPressed.connect(self.search)
        self.url_edit.editingFinished.connect(lambda: self.browser.set_url(self.url_edit.text()))
        self.studies.itemSelectionChanged.connect(self._on_selection)
        self.studies.itemDoubleClicked.connect(lambda *_: self.retrieve())
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.browser.changed.connect(self.refresh)
        self.browser.series_listed.connect(self._on_series)
        self.worker.progress.connect(self._on_progress)
        self.worker.result.connect(self._on_result)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)

    # -- the form ------------------------------------------------------------------------------------------------
    def form(self) -> PacsSearch:
        modality = self.modality_combo.currentText().strip()
        return PacsSearch(
            patient_id=self.patient_id_edit.text(), patient_name=self.patient_name_edit.text(),
            modality="" if modality.lower() == "any" else modality, date=self.date_edit.text(),
            study_uid=self.study_uid_edit.text(),
        )

    # -- commands --------------------------------------------------------------------------------------------
    def search(self) -> int | None:
        """Runs the form's QIDO-RS search off the GUI thread; returns the job id (None: refused, says why)."""
        self.browser.set_url(self.url_edit.text())
        request = self.browser.begin_search(self.form())
        if request is None:
            return None
        return self._submit(SEARCH_CHANNEL, partial(search_job, request=request))

    def retrieve(self) -> int | None:
        """Retrieves the selected study into the cache off the GUI thread; it opens when done."""
        request = self.browser.begin_retrieve()
        if request is None:
            return None
        self.progress.setRange(0, max(request.study.n_instances or 0, 1))
        self.progress.setValue(0)
        return self._submit(RETRIEVE_CHANNEL, partial(retrieve_job, request=request))

    def cancel(self) -> None:
        for channel in (SEARCH_CHANNEL, RETRIEVE_CHANNEL):
            if self._jobs[channel] is not None:
                self.worker.cancel(channel)

    def _submit(self, channel: str, fn: Any) -> int:
        job = self.worker.submit(fn, channel=channel)
        self._jobs[channel] = job
        return job

    def _list_series(self, study: StudySummary) -> None:
        if study.study_uid in self.browser.series:
            self._on_series(study.study_uid, self.browser.series[study.study_uid])
            return
        try:
            server = self.browser.server()
        except Exception:  # the URL was changed to something that is not one; the next search will say so
            return
        self.series_caption.setText(f"Series of study {study.study_uid}: listing…")
        self._submit(SERIES_CHANNEL, partial(series_job, server=server, study_uid=study.study_uid))

    # -- the state, shown ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.browser.busy

    @property
    def message(self) -> str:
        return self.browser.message

    def refresh(self) -> None:
        b = self.browser
        if self.url_edit.text().strip() != b.url and not self.url_edit.hasFocus():
            self.url_edit.setText(b.url)
        cache = b.cache_folder()
        self.cache_label.setText(f"Cache: {cache}" if cache is not None else f"Cache: under {b.cache_root}")
        if self._shown is not b.studies:  # a new search's results (the table sorts its rows its own way)
            self._shown = b.studies
            self._fill_studies(b.studies)
        busy = b.busy
        self.search_button.setEnabled(not busy)
        self.retrieve_button.setEnabled(not busy and b.selected is not None)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)  # an idle bar would read "0 / 1 images"
        if b.activity is PacsActivity.SEARCHING:
            self.progress.setRange(0, 0)
        elif not busy:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        background, accent, mark = _LEVEL_STYLE[b.level]
        self.message_frame.setStyleSheet(
            f"QFrame#pacsMessage {{ background-color: {background}; border: 1px solid {accent}; border-radius: 4px; }}"
            " QLabel { color: #f2f2f2; background: transparent; }")
        self.message_icon.setText(f"<span style='color:{accent}'>{mark}</span>")
        self.message_label.setText(b.message)
        self.message_frame.setVisible(bool(b.message))

    def _fill_studies(self, studies: tuple[StudySummary, ...]) -> None:
        table = self.studies
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(len(studies))
        for row, study in enumerate(studies):
            texts = (_date_text(study.date), study.patient_id, study.patient_name, study.description,
                     "/".join(study.modalities))
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setData(Qt.ItemDataRole.UserRole, study.study_uid)
                    item.setToolTip(f"Study Instance UID {study.study_uid}")
                table.setItem(row, column, item)
            table.setItem(row, 5, _count(study.n_series))
            table.setItem(row, 6, _count(study.n_instances))
        table.setSortingEnabled(True)
        table.sortByColumn(0, Qt.SortOrder.DescendingOrder)  # newest first, as a PACS worklist
        table.resizeColumnsToContents()
        table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.series_table.setRowCount(0)
        self.series_caption.setText("Series of the selected study")
        if studies:
            table.selectRow(0)

    def _on_selection(self) -> None:
        rows = self.studies.selectionModel().selectedRows()
        uid = self.studies.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None
        study = self.browser.select(uid)
        if study is not None:
            self._list_series(study)
        else:
            self.series_table.setRowCount(0)

    def _on_series(self, study_uid: str, series: tuple[SeriesSummary, ...]) -> None:
        selected = self.browser.selected
        if selected is None or selected.study_uid != study_uid:
            return
        self.series_caption.setText(f"Series of study {study_uid}")
        self.series_table.setRowCount(len(series))
        for row, item in enumerate(series):
            self.series_table.setItem(row, 0, _count(item.number))
            self.series_table.setItem(row, 1, QTableWidgetItem(item.modality))
            self.series_table.setItem(row, 2, QTableWidgetItem(item.description))
            self.series_table.setItem(row, 3, _count(item.n_instances))
        self.series_table.resizeColumnsToContents()
        self.series_table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)

    # -- from the worker ---------------------------------------------------------------------------------------
    def _channel(self, job_id: int) -> str | None:
        return next((c for c, j in self._jobs.items() if j == job_id), None)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if self._channel(job_id) == RETRIEVE_CHANNEL:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    def _on_result(self, job_id: int, payload: object) -> None:
        channel = self._channel(job_id)
        if channel is None:
            return
        self._jobs[channel] = None
        if channel == SEARCH_CHANNEL:
            query, studies = payload  # type: ignore[misc]
            self.browser.search_done(query, studies)
        elif channel == SERIES_CHANNEL:
            study_uid, series = payload  # type: ignore[misc]
            self.browser.series_done(study_uid, series)
        else:
            assert isinstance(payload, RetrievedStudy)
            self.browser.retrieve_done(payload)

    def _on_failed(self, job_id: int, error: WorkerError) -> None:
        channel = self._channel(job_id)
        if channel is None:
            return
        self._jobs[channel] = None
        if channel == SERIES_CHANNEL:
            self.series_caption.setText(f"Series not listed: {error.message}")
        else:
            self.browser.failed(error.message)

    def _on_cancelled(self, job_id: int) -> None:
        channel = self._channel(job_id)
        if channel is None:
            return
        self._jobs[channel] = None
        if channel != SERIES_CHANNEL and self.browser.busy:
            self.browser.cancelled()

    def closeEvent(self, event: Any) -> None:
        # a running retrieval goes on and opens its study when done (the controller listens); a search just ends
        if self.browser.activity is PacsActivity.SEARCHING:
            self.cancel()
        super().closeEvent(event)


class PacsController(QObject):
    """Adds File > Open from PACS (DICOMweb) to ``host``; owns the browser, its dialog and its worker thread."""

    def __init__(self, host: PacsHost, cache_root: Path, *, environ: Mapping[str, str] | None = None,
                 url: str | None = None) -> None:
        super().__init__(host)  # type: ignore[arg-type]
        self.host = host
        self.settings = host.settings
        self.browser = PacsBrowser(cache_root, os.environ if environ is None else environ,
                                   url if url is not None else self.settings.dicomweb_url)
        self.browser.retrieved.connect(self._open_retrieved)
        self.browser.changed.connect(self._remember_url)
        self.worker: BackgroundWorker | None = None
        self.dialog: PacsDialog | None = None
        self.action = host.add_action(
            ShortcutSpec("open_pacs", "Open from &PACS (DICOMweb)…", ("Ctrl+Shift+P",), "File", None,
                         "Search a PACS over DICOMweb (QIDO-RS) and open a study from it (WADO-RS, cached)"),
            lambda: self.show_dialog())
        host.menus.file.insertAction(host.menus.recent.menuAction(), self.action)
        host.installEventFilter(self)

    def show_dialog(self, *, search: bool = False) -> PacsDialog:
        """Shows the browser (the same one each time, with its last results); ``search``: list the studies now."""
        if self.worker is None:
            self.worker = BackgroundWorker("linop-pacs", self)
        if self.dialog is None:
            self.dialog = PacsDialog(self.browser, self.worker, self.host)  # type: ignore[arg-type]
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        if search and self.browser.url and not self.browser.busy:
            self.dialog.search()
        return self.dialog

    def _open_retrieved(self, study: RetrievedStudy) -> None:
        self.host.open_path(study.folder)
        self.host.show_status(self.browser.message, 8000)
        if self.dialog is not None:
            self.dialog.hide()  # the study is in the main window now; the menu shows the results again

    def _remember_url(self) -> None:
        # only a URL that answered a search is remembered (not every typo)
        if self.browser.last_query is not None and self.browser.url != self.settings.dicomweb_url:
            self.settings.dicomweb_url = self.browser.url

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.host and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        if self.dialog is not None:
            self.dialog.close()
        if self.worker is not None:
            self.worker.shutdown(timeout_ms)


def install_pacs(host: PacsHost, cache_root: Path, *, url: str | None = None,
                 environ: Mapping[str, str] | None = None) -> PacsController:
    """File > Open from PACS (DICOMweb) in ``host``; studies are cached under ``cache_root`` (one folder per
    server). ``url`` (``--dicomweb``) replaces the remembered one."""
    return PacsController(host, cache_root, environ=environ, url=url)


__all__ = ["PacsController", "PacsDialog", "PacsHost", "install_pacs"]
