"""Exporting from the GUI, always off the GUI thread, through the synthesis issue's exporter (``linop_core.synthset``).

- :class:`ExportDialog`: reviewed candidates of the session -> an HDF5 synthetic set (and optionally COCO JSON +
  16-bit PNG), with destination, filters (decision, task, minimum realism score, and with several readers the
  consensus rule and minimum number of readers; the set records every reader's decision) and a progress bar. Test-split
  sources are refused unless the override is ticked, exactly as the exporter refuses them.
- :class:`BatchDialog`: the current generation settings applied to many images of a VinDr root (random mass
  boxes on the normal mammograms, or out-painting around the CXR findings: ``linop-export``'s own sampler), sent
  to the review gallery (the session) or straight to a set. It runs in the model thread (it needs the engine).

The work itself is the core's (:mod:`linop_core.review.export`, :mod:`linop_core.synthset.batch`); the job
functions here (:func:`export_job`, :func:`batch_job`) only adapt a worker's ``JobContext`` to it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from linop_core.catalog import Catalog
from linop_core.errors import LinopError
from linop_core.review.batch import BatchItem, batch_into_session, record_batch
from linop_core.review.consensus import ConsensusRule
from linop_core.review.export import ExportFilter, ExportPlan, ExportSummary, export_reviewed, plan_export
from linop_core.review.session import ReviewSession
from linop_core.synthset.batch import BatchOptions, vindr_job, write_set
from linop_core.synthset.records import TEST_SPLIT
from linop_core.vocab import DatasetKind, Decision, HoleKind, Task
from linop_gui.dicom_out import DicomOutBox, ExportOutcome, export_with_dicom_job
from linop_gui.generation_jobs import GenerateOptions
from linop_gui.settings import Settings
from linop_gui.worker import BackgroundWorker, JobContext, WorkerError

EXPORT_CHANNEL = "export"
CONSENSUS_CHOICES = (
    ("Latest decision (one reader)", ConsensusRule.LATEST),
    ("All readers approve", ConsensusRule.ALL),
    ("A majority approves", ConsensusRule.MAJORITY),
    ("Any reader approves", ConsensusRule.ANY),
)
BATCH_CHANNEL = "batch"


class BatchTarget(StrEnum):
    SESSION = "session"  # the review gallery
    SET = "set"  # straight to an unreviewed HDF5 set


# ----------------------------------------------------------------------------------------------- jobs


def export_job(ctx: JobContext, plan: ExportPlan, session: ReviewSession) -> ExportSummary:
    """IO thread: the core exporter, reporting to the dialog and stopping when cancelled."""
    return export_reviewed(plan, session, progress=ctx.progress, check=ctx.check)


@dataclass(frozen=True)
class BatchPlan:
    """The dialog's choices: ``options`` applied to ``n`` units of the VinDr root, sent to the review session
    or straight to a set (``out``)."""

    root: Path
    n: int
    options: BatchOptions
    target: BatchTarget = BatchTarget.SESSION
    out: Path | None = None
    append: bool = False


@dataclass(frozen=True)
class BatchResult:
    target: BatchTarget
    n_units: int
    items: tuple[BatchItem, ...] = ()  # session target
    out: Path | None = None  # set target
    n_samples: int = 0
    sha256: str = ""


def batch_job(ctx: JobContext, plan: BatchPlan, session: ReviewSession | None) -> BatchResult:
    """Model thread: the core batch service with the loaded engine, into the session or a set."""
    if ctx.engine is None:
        raise LinopError("no generation engine is loaded; load a model (or the biharmonic baseline) first")
    if plan.target is BatchTarget.SET and plan.out is None:
        raise LinopError("choose the HDF5 file to write the batch to")
    job = vindr_job(plan.root, plan.options, ctx.engine)
    ctx.check()
    if plan.target is BatchTarget.SESSION:
        if session is None:
            raise LinopError("open a dataset first: batch results go to its review session")
        items = batch_into_session(job, job.units(plan.n), session, progress=ctx.progress)
        return BatchResult(BatchTarget.SESSION, plan.n, tuple(items))
    assert plan.out is not None
    result = write_set(job, plan.out, n=plan.n, append=plan.append,
                       filter="decision==pending (unreviewed batch export from the GUI)", progress=ctx.progress)
    manifest = result.manifest or {}
    return BatchResult(BatchTarget.SET, plan.n, out=plan.out, n_samples=result.n_samples,
                       sha256=str(manifest.get("sha256", "")))


# ----------------------------------------------------------------------------------------------- dialogs


class _JobDialog(QDialog):
    """Progress bar, Start / Cancel / Close and result text around one worker job."""

    def __init__(self, worker: BackgroundWorker, channel: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.channel = channel
        self.job: int | None = None
        self.error: WorkerError | None = None
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.result_label = QLabel("", self)
        self.result_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.start_button = self.buttons.addButton("Start", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        worker.progress.connect(self._on_progress)
        worker.result.connect(self._on_result)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self) -> int | None:
        raise NotImplementedError

    def _submit(self, fn: Any) -> int:
        self.error = None
        self.job = self.worker.submit(fn, channel=self.channel)
        self.progress.setRange(0, 0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.result_label.setText("Working…")
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.worker.cancel(self.channel)

    def _done(self) -> None:
        self.job = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if job_id == self.job:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    def _on_result(self, job_id: int, payload: object) -> None:
        if job_id == self.job:
            self._done()
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.finished_job(payload)

    def _on_failed(self, job_id: int, error: WorkerError) -> None:
        if job_id == self.job:
            self._done()
            self.error = error
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.result_label.setText(f"<b>{error.title}</b>: {error.message}")

    def _on_cancelled(self, job_id: int) -> None:
        if job_id == self.job:
            self._done()
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.result_label.setText("Cancelled. Start again with the same options to resume where it stopped.")

    def finished_job(self, payload: object) -> None:
        raise NotImplementedError

    def closeEvent(self, event: Any) -> None:
        # A running export keeps going in the background; its spool makes a later run resume.
        for signal, slot in ((self.worker.progress, self._on_progress), (self.worker.result, self._on_result),
                             (self.worker.failed, self._on_failed), (self.worker.cancelled, self._on_cancelled)):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)
        super().closeEvent(event)


def _path_row(parent: QWidget, edit: QLineEdit, browse: Any) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    button = QToolButton(parent)
    button.setText("…")
    button.clicked.connect(browse)
    row.addWidget(button)
    return row


class ExportDialog(_JobDialog):
    """Reviewed candidates -> HDF5 set (+ COCO / PNG)."""

    export_finished = Signal(object)  # ExportSummary

    def __init__(self, session: ReviewSession, catalog: Catalog | None, worker: BackgroundWorker,
                 parent: QWidget | None = None) -> None:
        super().__init__(worker, EXPORT_CHANNEL, parent)
        self.session = session
        self.catalog = catalog
        self.summary: ExportSummary | None = None
        self.outcome: ExportOutcome | None = None  # with the DICOM option
        self.setWindowTitle("Export reviewed candidates")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.path_edit = QLineEdit(str(session.folder / "exports" / f"approved-{stamp}.h5"), self)
        self.append_check = QCheckBox("Append to an existing set", self)
        self.decision_checks = {d: QCheckBox(d.capitalize(), self)
                                for d in (Decision.APPROVED, Decision.REJECTED, Decision.PENDING)}
        self.decision_checks[Decision.APPROVED].setChecked(True)
        self.task_combo = QComboBox(self)
        for label, tasks in (("All", tuple(Task)), ("In-painting", (Task.INPAINT,)),
                             ("Out-painting", (Task.OUTPAINT,))):
            self.task_combo.addItem(label, tasks)
        self.score_spin = QSpinBox(self)
        self.score_spin.setRange(0, 5)
        self.score_spin.setSpecialValueText("any")
        self.consensus_combo = QComboBox(self)
        for label, rule in CONSENSUS_CHOICES:
            self.consensus_combo.addItem(label, rule)
        self.consensus_combo.setToolTip("How several readers' decisions make one: the set takes the candidates the "
                                        "rule approves and records every reader's decision")
        self.readers_spin = QSpinBox(self)
        self.readers_spin.setRange(1, 99)
        self.readers_spin.setToolTip("Candidates fewer readers decided on stay pending")
        self.allow_test = QCheckBox("Allow test-split sources (leaks evaluation images into training)", self)
        self.coco_check = QCheckBox("Also write COCO JSON + 16-bit PNG images to", self)
        self.coco_edit = QLineEdit(str(session.folder / "exports" / f"coco-{stamp}"), self)
        self.count_label = QLabel("", self)
        self.count_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Set file (.h5):", _path_row(self, self.path_edit, self._browse_out))
        form.addRow("", self.append_check)
        decisions = QHBoxLayout()
        for check in self.decision_checks.values():
            decisions.addWidget(check)
            check.toggled.connect(self.refresh_count)
        form.addRow("Decisions:", decisions)
        readers = QHBoxLayout()
        readers.addWidget(self.consensus_combo, 1)
        readers.addWidget(QLabel("at least", self))
        readers.addWidget(self.readers_spin)
        readers.addWidget(QLabel("reader(s)", self))
        form.addRow("Readers:", readers)
        form.addRow("Task:", self.task_combo)
        form.addRow("Realism at least:", self.score_spin)
        form.addRow("", self.allow_test)
        form.addRow(self.coco_check, _path_row(self, self.coco_edit, self._browse_coco))
        self.dicom_box = DicomOutBox(session.folder / "exports" / f"dicom-{stamp}", Settings().dicomweb_url, self)
        self.dicom_box.follow(worker, lambda: self.job, self.progress, self.result_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.dicom_box)
        layout.addWidget(self.count_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)
        self.task_combo.currentIndexChanged.connect(self.refresh_count)
        self.score_spin.valueChanged.connect(self.refresh_count)
        self.consensus_combo.currentIndexChanged.connect(self.refresh_count)
        self.readers_spin.valueChanged.connect(self.refresh_count)
        self.allow_test.toggled.connect(self.refresh_count)
        self.refresh_count()

    def export_filter(self) -> ExportFilter:
        decisions = tuple(d for d, check in self.decision_checks.items() if check.isChecked())
        return ExportFilter(decisions=decisions, tasks=tuple(self.task_combo.currentData()),
                            min_score=self.score_spin.value(), consensus=self.consensus_rule(),
                            min_readers=self.readers_spin.value())

    def consensus_rule(self) -> ConsensusRule:
        return ConsensusRule(self.consensus_combo.currentData())  # the combo hands back the plain string

    def plan(self) -> ExportPlan:
        return plan_export(self.session, self.catalog, self.path_edit.text().strip(), self.export_filter(),
                           allow_test_split=self.allow_test.isChecked(),
                           coco_dir=self.coco_edit.text().strip() if self.coco_check.isChecked() else None,
                           append=self.append_check.isChecked())

    def refresh_count(self, *args: object) -> None:
        readers = self.session.readers()
        self.readers_spin.setEnabled(self.consensus_rule() is not ConsensusRule.LATEST)
        self.consensus_combo.setToolTip(f"{len(readers)} reader(s) decided: {', '.join(readers) or 'none yet'}")
        try:
            plan = self.plan()
        except LinopError as exc:
            self.count_label.setText(str(exc))
            self.start_button.setEnabled(False)
            return
        tests = plan.test_split_images
        text = f"{len(plan.entries)} candidate(s) from {len(plan.sources)} image(s) match."
        if plan.filter.consensus is not ConsensusRule.LATEST:
            text += f" Readers so far: {', '.join(readers)}."
        if plan.skipped:
            text += f" {len(plan.skipped)} left out ({plan.skipped[0]})."
        if tests and not plan.allow_test_split:
            text += (f" {len(tests)} image(s) are from the test split: the export refuses them unless you allow "
                     "test-split sources.")
        self.count_label.setText(text)
        self.start_button.setEnabled(not self.running and not (tests and not plan.allow_test_split))

    def start(self) -> int | None:
        if not self.path_edit.text().strip():
            self.result_label.setText("Choose the set file first")
            return None
        try:
            plan = self.plan()
            dicom = self.dicom_box.plan()
        except LinopError as exc:
            self.result_label.setText(str(exc))
            return None
        if plan.test_split_images and not plan.allow_test_split:
            self.result_label.setText(f"Refused: {len(plan.test_split_images)} source image(s) are from the test "
                                      "split; tick 'Allow test-split sources' to override")
            return None
        if dicom is not None:
            return self._submit(partial(export_with_dicom_job, plan=plan, session=self.session, dicom=dicom))
        return self._submit(partial(export_job, plan=plan, session=self.session))

    def finished_job(self, payload: object) -> None:
        self.outcome = payload if isinstance(payload, ExportOutcome) else None
        if self.outcome is not None:
            payload = self.outcome.summary
        assert isinstance(payload, ExportSummary)
        self.summary = payload
        text = f"Wrote {payload.n_samples} sample(s) to {payload.out} (sha256 {payload.sha256[:12]}…)"
        if payload.coco_json is not None:
            text += f" and {payload.coco_json}"
        if self.outcome is not None:
            text += f"\n{self.outcome.text()}"
        self.result_label.setText(text)
        self.export_finished.emit(payload)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Synthetic set", self.path_edit.text(), "HDF5 (*.h5)")
        if path:
            self.path_edit.setText(path)

    def _browse_coco(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "COCO / PNG folder", self.coco_edit.text())
        if folder:
            self.coco_edit.setText(folder)
            self.coco_check.setChecked(True)


class BatchDialog(_JobDialog):
    """Current settings applied to many images of the open VinDr root; results to the gallery or a set."""

    finished_to_session = Signal(list)  # image ids that got candidates
    batch_finished = Signal(object)  # BatchResult

    def __init__(self, session: ReviewSession, catalog: Catalog, worker: BackgroundWorker, options: GenerateOptions,
                 parent: QWidget | None = None) -> None:
        super().__init__(worker, BATCH_CHANNEL, parent)
        self.session = session
        self.catalog = catalog
        self.options = options
        self.result: BatchResult | None = None
        self.setWindowTitle("Batch generate")
        what = {DatasetKind.MAMMO: "random mass boxes on the normal (BI-RADS 1) mammograms",
                DatasetKind.CXR: "out-painting around the findings of the abnormal chest X-rays"}.get(catalog.kind)
        self.n_spin = QSpinBox(self)
        self.n_spin.setRange(1, 1_000_000)
        self.n_spin.setValue(10)
        self.candidates_spin = QSpinBox(self)
        self.candidates_spin.setRange(1, 32)
        self.candidates_spin.setValue(max(1, options.candidates))
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(options.first_seed)
        self.split_combo = QComboBox(self)
        self.split_combo.addItems(["training", "test"])
        self.allow_test = QCheckBox("Allow test-split sources (leaks evaluation images into training)", self)
        self.hole_combo = QComboBox(self)
        self.hole_combo.addItems([str(HoleKind.ELLIPSE), str(HoleKind.RECTANGLE)])
        self.context_spin = QDoubleSpinBox(self)
        self.context_spin.setRange(1.0, 8.0)
        self.context_spin.setValue(options.hole_context)
        self.anatomy_check = QCheckBox("Boxes must lie in the breast / chest", self)
        self.anatomy_check.setChecked(options.anatomy_check)
        self.to_session = QRadioButton("Review gallery (this session)", self)
        self.to_set = QRadioButton("Straight to an HDF5 set (unreviewed)", self)
        self.to_session.setChecked(True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.path_edit = QLineEdit(str(session.folder / "exports" / f"batch-{stamp}.h5"), self)
        self.append_check = QCheckBox("Append to an existing set", self)

        form = QFormLayout()
        about = what or "not a VinDr root: batch generation needs one"
        form.addRow("Dataset:", QLabel(f"{getattr(catalog, 'root', '?')}\n{about}", self))
        form.addRow("Images (units):", self.n_spin)
        form.addRow("Candidates each:", self.candidates_spin)
        form.addRow("Seed:", self.seed_spin)
        form.addRow("Source split:", self.split_combo)
        form.addRow("", self.allow_test)
        form.addRow("Hole:", self.hole_combo)
        form.addRow("Context:", self.context_spin)
        form.addRow("", self.anatomy_check)
        target = QGroupBox("Send results to", self)
        target_layout = QVBoxLayout(target)
        target_layout.addWidget(self.to_session)
        target_layout.addWidget(self.to_set)
        target_layout.addLayout(_path_row(self, self.path_edit, self._browse_out))
        target_layout.addWidget(self.append_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(target)
        layout.addWidget(self.progress)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)
        if what is None:
            self.start_button.setEnabled(False)

    def plan(self) -> BatchPlan:
        options = BatchOptions(
            candidates=self.candidates_spin.value(), seed=self.seed_spin.value(),
            split=self.split_combo.currentText(), allow_test_sources=self.allow_test.isChecked(),
            hole=HoleKind(self.hole_combo.currentText()), context=self.context_spin.value(),
            feather_px=getattr(self.options, "feather_px", None), anatomy_check=self.anatomy_check.isChecked(),
        )
        return BatchPlan(
            root=Path(self.catalog.root), n=self.n_spin.value(), options=options,
            target=BatchTarget.SESSION if self.to_session.isChecked() else BatchTarget.SET,
            out=Path(self.path_edit.text().strip()) if self.to_set.isChecked() else None,
            append=self.append_check.isChecked(),
        )

    def start(self) -> int | None:
        plan = self.plan()
        if plan.options.split == TEST_SPLIT and not plan.options.allow_test_sources:
            self.result_label.setText("Refused: the test split holds evaluation images; tick 'Allow test-split "
                                      "sources' to override")
            return None
        return self._submit(partial(batch_job, plan=plan, session=self.session))

    def finished_job(self, payload: object) -> None:
        assert isinstance(payload, BatchResult)
        self.result = payload
        if payload.target is BatchTarget.SESSION:
            image_ids = record_batch(self.session, payload.items)
            self.result_label.setText(f"{len(payload.items)} candidate(s) on {len(image_ids)} image(s) are waiting "
                                      "in the review gallery")
            self.finished_to_session.emit(image_ids)
        else:
            self.result_label.setText(f"Wrote {payload.n_samples} sample(s) to {payload.out} "
                                      f"(sha256 {payload.sha256[:12]}…)")
        self.batch_finished.emit(payload)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Synthetic set", self.path_edit.text(), "HDF5 (*.h5)")
        if path:
            self.path_edit.setText(path)
            self.to_set.setChecked(True)


__all__ = [
    "BatchDialog",
    "BatchPlan",
    "BatchResult",
    "BatchTarget",
    "ExportDialog",
    "batch_job",
    "export_job",
]
