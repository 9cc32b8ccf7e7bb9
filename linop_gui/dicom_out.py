"""DICOM out from the export dialog: after the HDF5 set is written, optionally write it as DICOM (a Secondary
Capture image and a Segmentation of the generated region per sample, :mod:`linop_core.dicom_export`) and store
those files on a PACS (STOW-RS, :mod:`linop_core.dicomweb`), in the same io-thread job, with progress.

Nothing written is lost on the way: the set stays when the DICOM export fails, and the DICOM files stay when the
PACS rejects them or cannot be reached; the result says what was written where and the one line of what failed,
and ``linop-export dicom SET DIR [--stow URL]`` finishes the rest (it resumes, keeping the files already there).

- :class:`DicomOutBox`: the dialog's group of options (folder, STOW URL, which credentials are in use);
- :func:`export_with_dicom_job`: the io-thread job (the HDF5 export, then DICOM, then STOW);
- :class:`ExportOutcome`: what it did.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QToolButton,
    QWidget,
)

from linop_core.dicom_export import DicomExport, export_dicom
from linop_core.dicomweb import DicomwebAuth, DicomwebServer, StowResult, store_files
from linop_core.errors import LinopError
from linop_core.review.export import ExportPlan, ExportSummary, export_reviewed
from linop_core.review.session import ReviewSession
from linop_gui.pacs import credentials_text
from linop_gui.worker import BackgroundWorker, JobContext


class ExportPhase(StrEnum):
    """The steps of one export job, in order; the dialog's progress bar names the running one."""

    SET = "HDF5 set"
    DICOM = "DICOM"
    STOW = "STOW-RS"


MIN_WIDTH_PX = 680  # folder paths and the result lines readable without making the dialog tall
PROGRESS_FORMAT = {ExportPhase.SET: "HDF5 set: %v / %m", ExportPhase.DICOM: "DICOM: %v / %m samples",
                   ExportPhase.STOW: "STOW-RS: %v / %m files"}


@dataclass(frozen=True)
class DicomOutPlan:
    """Where the DICOM files go, and the PACS to store them on (None: keep them local)."""

    folder: Path
    stow_url: str | None = None
    auth: DicomwebAuth = field(default_factory=DicomwebAuth)


@dataclass(frozen=True)
class PhaseDone:
    """Sent (``ctx.partial``) when a step finished, so a cancel later still tells what is on disk."""

    phase: ExportPhase
    summary: ExportSummary | None = None
    dicom: DicomExport | None = None


@dataclass(frozen=True)
class ExportOutcome:
    """The set, and what became of its DICOM: ``dicom_error`` / ``stow_error`` hold the one line of a step that
    failed after the set was written (its files are kept)."""

    summary: ExportSummary
    plan: DicomOutPlan
    dicom: DicomExport | None = None
    stored: StowResult | None = None
    dicom_error: str = ""
    stow_error: str = ""

    def text(self) -> str:
        plan = self.plan
        if self.dicom is None:
            return f"DICOM not written to {plan.folder}: {self.dicom_error}"
        d = self.dicom
        kept = f", {d.n_kept} sample(s) already there kept" if d.n_kept else ""
        replaced = f", {d.n_replaced} damaged or foreign file pair(s) replaced" if d.n_replaced else ""
        text = (f"DICOM: {2 * d.n_written} file(s) written ({d.files_per_second:.1f} files/s){kept}{replaced} "
                f"in {d.out_dir} (image + SEG per sample)")  # fmt: skip
        if plan.stow_url is None:
            return text
        if self.stored is None:
            return (f"{text}. Not stored on the PACS: {self.stow_error} (rerun `linop-export dicom "
                    f"{self.summary.out} {d.out_dir} --stow {plan.stow_url}` to store them)")  # fmt: skip
        return f"{text}. Stored {self.stored.n_stored} file(s) on {plan.stow_url} (STOW-RS)"


def export_with_dicom_job(ctx: JobContext, plan: ExportPlan, session: ReviewSession,
                          dicom: DicomOutPlan) -> ExportOutcome:
    """IO thread: the reviewed candidates to the set, the set to DICOM, the DICOM files to the PACS."""
    ctx.partial(ExportPhase.SET)
    summary = export_reviewed(plan, session, progress=ctx.progress, check=ctx.check)
    ctx.partial(PhaseDone(ExportPhase.SET, summary=summary))
    ctx.partial(ExportPhase.DICOM)
    try:
        written = export_dicom(summary.out, dicom.folder, progress=ctx.progress)
    except LinopError as exc:
        return ExportOutcome(summary, dicom, dicom_error=str(exc))
    ctx.partial(PhaseDone(ExportPhase.DICOM, summary=summary, dicom=written))
    if dicom.stow_url is None:
        return ExportOutcome(summary, dicom, written)
    ctx.partial(ExportPhase.STOW)
    try:
        stored = store_files(DicomwebServer(dicom.stow_url, dicom.auth), written.files, progress=ctx.progress)
    except LinopError as exc:
        return ExportOutcome(summary, dicom, written, stow_error=str(exc))
    return ExportOutcome(summary, dicom, written, stored)


class DicomOutBox(QGroupBox):
    """The export dialog's DICOM options. ``plan()`` is None when DICOM is not asked for."""

    def __init__(self, folder: Path, stow_url: str, parent: QWidget | None = None, *,
                 environ: Mapping[str, str] | None = None) -> None:
        super().__init__("DICOM and PACS", parent)
        self.auth = DicomwebAuth.from_env(os.environ if environ is None else environ)
        self.dicom_check = QCheckBox("Also write DICOM (image + SEG) to", self)
        self.dicom_check.setToolTip("Each sample as a Secondary Capture image and a Segmentation of its generated "
                                    "region (see docs/dicom-export.md)")
        self.folder_edit = QLineEdit(str(folder), self)
        self.stow_check = QCheckBox("Store to PACS (STOW-RS) at", self)
        self.stow_edit = QLineEdit(stow_url, self)
        self.stow_edit.setPlaceholderText("http://host:8042/dicom-web")
        self.credentials_label = QLabel(credentials_text(self.auth), self)
        self.credentials_label.setWordWrap(True)
        browse = QToolButton(self)
        browse.setText("…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        grid = QGridLayout(self)
        grid.addWidget(self.dicom_check, 0, 0)
        grid.addLayout(folder_row, 0, 1)
        grid.addWidget(self.stow_check, 1, 0)
        grid.addWidget(self.stow_edit, 1, 1)
        grid.addWidget(self.credentials_label, 2, 1)
        grid.setColumnStretch(1, 1)
        self.setMinimumWidth(MIN_WIDTH_PX)
        self.stow_check.toggled.connect(self._stow_toggled)
        self.dicom_check.toggled.connect(self._dicom_toggled)
        self._stow_toggled(False)
        self._job: int | None = None
        self._done: PhaseDone | None = None
        self._current_job: Callable[[], int | None] = lambda: None
        self._bar: QProgressBar | None = None
        self._result_label: QLabel | None = None

    def plan(self) -> DicomOutPlan | None:
        """The DICOM step the user asked for; raises a one-line :class:`LinopError` for an unusable choice."""
        if not self.dicom_check.isChecked():
            return None
        folder = self.folder_edit.text().strip()
        if not folder:
            raise LinopError("choose the folder for the DICOM files, or untick 'Also write DICOM'")
        url = self.stow_edit.text().strip() if self.stow_check.isChecked() else None
        if url is not None:
            DicomwebServer(url, self.auth)  # a URL that is not one is refused now, before anything is written
        return DicomOutPlan(Path(folder).expanduser(), url or None, self.auth)

    def _stow_toggled(self, on: bool) -> None:
        self.stow_edit.setEnabled(on)
        self.credentials_label.setVisible(on)
        if on:
            self.dicom_check.setChecked(True)  # storing needs the DICOM files
        self._fit_window()

    def _fit_window(self) -> None:
        # a dialog does not grow by itself for a label that wraps (height-for-width): without this, its rows
        # are squeezed over each other when a longer text appears
        window = self.window()
        if window is not self and window.isVisible():
            window.adjustSize()

    def _dicom_toggled(self, on: bool) -> None:
        self.folder_edit.setEnabled(on)
        if not on:
            self.stow_check.setChecked(False)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "DICOM folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self.dicom_check.setChecked(True)

    # -- following the dialog's job -----------------------------------------------------------------------------
    def follow(self, worker: BackgroundWorker, current_job: Callable[[], int | None], bar: QProgressBar,
               result_label: QLabel) -> None:
        """Names the running step on ``bar``; after a cancel, tells in ``result_label`` what was written. The
        slots are this box's, so Qt disconnects them when the dialog goes."""
        self._current_job, self._bar, self._result_label = current_job, bar, result_label
        worker.partial.connect(self._on_partial)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)

    def _on_partial(self, job_id: int, payload: object) -> None:
        if self._bar is None or job_id != self._current_job():
            return
        self._job = job_id
        if isinstance(payload, ExportPhase):
            if payload is ExportPhase.SET:
                self._done = None
            self._bar.setFormat(PROGRESS_FORMAT[payload])
            self._bar.setValue(0)
        elif isinstance(payload, PhaseDone):
            self._done = payload

    def _on_cancelled(self, job_id: int) -> None:
        # runs after the dialog's own handler (connected first), so this text replaces its "start again"
        done, self._done = self._done, None
        if self._result_label is None or job_id != self._job or done is None or done.summary is None:
            return  # cancelled before the set was written: the dialog's own text holds
        where = str(done.summary.out)
        if done.dicom is not None:
            where += f" and the DICOM files in {done.dicom.out_dir}"
        url = self.stow_edit.text().strip()
        stow = f" --stow {url}" if self.stow_check.isChecked() and url else ""
        self._result_label.setText(
            f"Cancelled after writing {where} (kept). Finish with `linop-export dicom {done.summary.out} "
            f"{self.folder_edit.text().strip()}{stow}` (it resumes), or start again with a new set file and DICOM "
            "folder")

    def _on_finished(self, job_id: int) -> None:
        if self._bar is not None and job_id == self._job:
            self._bar.setFormat("%p%")
            self._fit_window()  # the result lines are in by now


__all__ = ["DicomOutBox", "DicomOutPlan", "ExportOutcome", "ExportPhase", "export_with_dicom_job"]
