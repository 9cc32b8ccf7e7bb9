"""Exporting from the GUI, always off the GUI thread, through the synthesis issue's exporter (``linop_core.synthset``).

- :class:`ExportDialog`: reviewed candidates of the session -> an HDF5 synthetic set (and optionally COCO JSON +
  16-bit PNG), with destination, filters (decision, task, minimum realism score) and a progress bar. Test-split
  sources are refused unless the override is ticked, exactly as the exporter refuses them.
- :class:`BatchDialog`: the current generation settings applied to many images of a VinDr root (random mass
  boxes on the normal mammograms, or out-painting around the CXR findings: ``linop-export``'s own sampler), sent
  to the review gallery (the session) or straight to a set. It runs in the model thread (it needs the engine).

The jobs (:func:`export_reviewed`, :func:`run_batch`) are plain functions of a ``JobContext``, so tests and
scripts can run them without dialogs.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

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

from linop_core.errors import DataError, LinopError
from linop_gui.session import CandidateEntry, ImageAnnotation, LesionBox, ReviewSession
from linop_gui.worker import BackgroundWorker, JobContext, WorkerError

EXPORT_CHANNEL = "export"
BATCH_CHANNEL = "batch"
TEST_SPLIT = "test"
DECISIONS = ("approved", "rejected", "pending")


# ----------------------------------------------------------------------------------------------- export jobs


@dataclass(frozen=True)
class ExportFilter:
    """Which reviewed candidates go into the set."""

    decisions: tuple[str, ...] = ("approved",)
    tasks: tuple[str, ...] = ("inpaint", "outpaint")
    min_score: int = 0  # 0: any, rated or not; k: only candidates rated >= k

    def matches(self, entry: CandidateEntry) -> bool:
        task = entry.provenance.get("task", "inpaint" if entry.box_index >= 0 else "outpaint")
        if entry.decision not in self.decisions or task not in self.tasks:
            return False
        return self.min_score <= 0 or (entry.realism_score or 0) >= self.min_score

    def text(self) -> str:
        parts = [" | ".join(f"decision=={d}" for d in self.decisions)]
        if set(self.tasks) != {"inpaint", "outpaint"}:
            parts.append(" | ".join(f"task=={t}" for t in self.tasks))
        if self.min_score > 0:
            parts.append(f"realism_score>={self.min_score}")
        return " & ".join(parts)


@dataclass(frozen=True)
class SourceRef:
    """Where an image of the session lives and its dataset ids (never DICOM patient attributes)."""

    image_id: str
    path: Path
    dataset: str
    study_id: str
    split: str
    laterality: str | None
    view: str | None


@dataclass(frozen=True)
class ExportPlan:
    out: Path
    entries: tuple[CandidateEntry, ...]  # snapshots (deep copies) taken in the GUI thread
    sources: dict[str, SourceRef]
    filter: ExportFilter
    allow_test_split: bool = False
    coco_dir: Path | None = None
    append: bool = False
    skipped: tuple[str, ...] = ()  # one line per candidate left out, and why

    @property
    def test_split_images(self) -> list[str]:
        return sorted({e.image_id for e in self.entries if self.sources[e.image_id].split == TEST_SPLIT})


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    n_samples: int
    sha256: str
    coco_json: Path | None = None
    skipped: tuple[str, ...] = field(default_factory=tuple)


def source_refs(catalog: Any, image_ids: set[str]) -> dict[str, SourceRef]:
    """Dataset ids of ``image_ids`` from the catalog (VinDr records when the catalog is a VinDr root)."""
    refs = {}
    for image_id in image_ids:
        entry = catalog.by_id(image_id)
        refs[image_id] = SourceRef(
            image_id=image_id, path=Path(entry.path), dataset=str(catalog.kind), study_id=str(entry.study_id),
            split=str(entry.split or "unknown"), laterality=entry.laterality, view=entry.view,
        )
    return refs


def plan_export(
    session: ReviewSession,
    catalog: Any,
    out: str | Path,
    export_filter: ExportFilter,
    *,
    allow_test_split: bool = False,
    coco_dir: str | Path | None = None,
    append: bool = False,
) -> ExportPlan:
    """Chooses the candidates to export (GUI thread: it snapshots the session). Raises LinopError if none."""
    chosen, skipped = [], []
    for entry in session.candidates.values():
        if not export_filter.matches(entry):
            continue
        if not entry.provenance:
            skipped.append(f"{entry.candidate_id[:8]}: stored without synthesis provenance")
            continue
        if catalog is None:
            skipped.append(f"{entry.candidate_id[:8]}: no dataset open to read its source image from")
            continue
        try:
            catalog.by_id(entry.image_id)
        except LinopError:
            skipped.append(f"{entry.candidate_id[:8]}: image {entry.image_id} is not in the open dataset")
            continue
        chosen.append(copy.deepcopy(entry))
    if not chosen:
        raise DataError(session.folder, f"no candidate matches {export_filter.text()}; review some first"
                        + (f" ({len(skipped)} left out: {skipped[0]})" if skipped else ""))
    chosen.sort(key=lambda e: (e.image_id, e.box_index, e.created_utc, e.seed))
    return ExportPlan(
        out=Path(out), entries=tuple(chosen), sources=source_refs(catalog, {e.image_id for e in chosen}),
        filter=export_filter, allow_test_split=allow_test_split, coco_dir=Path(coco_dir) if coco_dir else None,
        append=append, skipped=tuple(skipped),
    )


def export_reviewed(ctx: JobContext, plan: ExportPlan, session: ReviewSession) -> ExportSummary:
    """Worker side: one unit per source image, written and committed by ``SynthSetWriter``; resumable."""
    import numpy as np

    from linop_core.dicom import read_dicom
    from linop_core.synthset import Review, SourceInfo, SynthSample, SynthSetWriter, export_coco

    if plan.test_split_images and not plan.allow_test_split:
        first = plan.test_split_images[0]
        raise DataError(plan.out, f"{len(plan.test_split_images)} source image(s) are from the test split "
                        f"(first: {first}); synthesising from evaluation images leaks them into training; "
                        "leave them out or tick 'Allow test-split sources'")
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    by_image: dict[str, list[CandidateEntry]] = {}
    for entry in plan.entries:
        by_image.setdefault(entry.image_id, []).append(entry)
    box_names = sorted({n for e in plan.entries for n in e.provenance.get("box_labels", [])})
    global_names = sorted({n for e in plan.entries for n in e.provenance.get("global_labels", [])})
    start_unit, start_index = _next_free(plan.out) if plan.append else (0, 0)
    config = {
        "source": "linop-gui review session",
        "dataset_root": session.dataset_root,
        "candidates": sorted(e.candidate_id for e in plan.entries),
        "start_unit": start_unit,
    }
    writer = SynthSetWriter(plan.out, config=config, filter=plan.filter.text(), allow_test_split=plan.allow_test_split,
                            box_label_names=box_names, global_label_names=global_names, append=plan.append)
    images = sorted(by_image)
    total = len(images) + 1 + (1 if plan.coco_dir else 0)
    index = start_index
    for done, image_id in enumerate(images):
        entries = by_image[image_id]
        unit = start_unit + done
        if unit not in writer.done_units:
            ref = plan.sources[image_id]
            image = read_dicom(ref.path)
            source = SourceInfo(dataset=ref.dataset, image_id=ref.image_id, study_id=ref.study_id, split=ref.split,
                                laterality=ref.laterality, view=ref.view, pixel_spacing_mm=image.meta.pixel_spacing_mm)
            samples = []
            for k, entry in enumerate(entries):
                ctx.check()
                review = Review(decision=entry.decision, reviewer=entry.reviewer or "",
                                reject_reason=entry.reject_reason or "",
                                realism_score=float(entry.realism_score) if entry.realism_score else math.nan,
                                reviewed_utc=entry.reviewed_utc or "")
                candidate = session.rebuild_candidate(entry.candidate_id, entry)
                if candidate.image.shape != image.pixels.shape:
                    raise DataError(ref.path, f"candidate {entry.candidate_id[:8]} is {candidate.image.shape} but the "
                                    f"source is {image.pixels.shape}; the file changed since it was generated")
                samples.append(SynthSample(index=index + k, candidate=candidate,
                                           source_pixels=np.asarray(image.pixels), source=source, review=review))
            writer.commit(unit, samples)
        index += len(entries)
        ctx.progress(done + 1, total)
    manifest = writer.finish()
    ctx.progress(len(images) + 1, total)
    coco_json = None
    if plan.coco_dir is not None:
        decisions = plan.filter.decisions
        result = export_coco(plan.out, plan.coco_dir, decisions=decisions)
        coco_json = result.coco_json
        ctx.progress(total, total)
    return ExportSummary(plan.out, int(manifest["n_samples"]), str(manifest["sha256"]), coco_json, plan.skipped)


def _next_free(out: Path) -> tuple[int, int]:
    """(first unit, first sample index) after those of an existing set."""
    if not out.exists():
        return 0, 0
    from linop_core.synthset import SynthSet

    with SynthSet(out) as synth:
        units, indices = synth.meta["unit"], synth.meta["index"]
        return (int(units.max()) + 1 if len(units) else 0, int(indices.max()) + 1 if len(indices) else 0)


# ----------------------------------------------------------------------------------------------- batch jobs


@dataclass(frozen=True)
class BatchPlan:
    """The current settings applied to ``n`` images of a VinDr root (``linop-export generate`` semantics)."""

    root: Path
    n: int
    candidates: int = 1
    seed: int = 0
    split: str = "training"
    allow_test_split: bool = False
    hole: Literal["ellipse", "rectangle"] = "ellipse"
    context: float = 2.0
    feather_px: float | None = None
    anatomy_check: bool = True
    target: Literal["session", "set"] = "session"
    out: Path | None = None
    append: bool = False

    def argv(self, out: Path) -> list[str]:
        argv = ["generate", str(self.root), str(out), "--n", str(self.n), "--candidates", str(self.candidates),
                "--seed", str(self.seed), "--split", self.split, "--hole", self.hole, "--context", str(self.context),
                "--no-progress"]
        if self.feather_px is not None:
            argv += ["--feather", str(self.feather_px)]
        if self.allow_test_split:
            argv.append("--allow-test-sources")
        if not self.anatomy_check:
            argv.append("--no-anatomy-check")
        if self.append:
            argv.append("--append")
        return argv


@dataclass(frozen=True)
class BatchItem:
    """One stored candidate of a batch sent to the session, with the box to add to its image's annotation."""

    entry: CandidateEntry
    task: str
    boxes: tuple[tuple[float, float, float, float], ...]
    hole: str
    margin: float


@dataclass(frozen=True)
class BatchResult:
    target: str
    n_units: int
    items: tuple[BatchItem, ...] = ()  # session target
    out: Path | None = None  # set target
    n_samples: int = 0
    sha256: str = ""


def run_batch(ctx: JobContext, plan: BatchPlan, session: ReviewSession | None) -> BatchResult:
    """Worker side (model thread): ``linop-export``'s sampler and synthesis with the loaded engine."""
    from linop_core.cli import export as cli
    from linop_core.synthset import SynthSetWriter
    from linop_core.vindr import ALL_LABELS, LOCAL_LABELS

    if ctx.engine is None:
        raise LinopError("no generation engine is loaded; load a model (or the biharmonic baseline) first")
    if plan.target == "set" and plan.out is None:
        raise LinopError("choose the HDF5 file to write the batch to")
    out = plan.out if plan.out is not None else Path(session.folder if session else ".") / "batch-unused.h5"
    args = cli.build_parser().parse_args(plan.argv(out))
    # linop-export's own job builder: the same pool, box sampler, seeds and test-split refusal as the CLI.
    job, config = cli.build_job(args, ctx.engine)
    ctx.check()
    if plan.target == "session":
        if session is None:
            raise LinopError("open a dataset first: batch results go to its review session")
        items: list[BatchItem] = []
        for unit in range(plan.n):
            ctx.check()
            for sample in cli.run_unit(job, unit):
                c = sample.candidate
                ctx.check()
                entry = session.store_candidate(
                    image_id=sample.source.image_id, box_index=0 if c.task == "inpaint" else -1, seed=c.seed,
                    engine=c.engine, pixels=c.image, generated=c.generated, model_name=c.model_name,
                    checkpoint_sha256=c.checkpoint_sha256, provenance=_provenance(c),
                )
                items.append(BatchItem(entry, c.task, tuple(c.boxes), c.hole_kind or plan.hole, c.margin_px))
            ctx.progress(unit + 1, plan.n)
        return BatchResult("session", plan.n, tuple(items))
    assert plan.out is not None
    box_names = ("Mass",) if job.kind == "mammo" else LOCAL_LABELS
    global_names = () if job.kind == "mammo" else ALL_LABELS
    start = cli.next_unit(plan.out) if plan.append else 0
    config["start"] = start
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    writer = SynthSetWriter(plan.out, config=config, filter="decision==pending (unreviewed batch export from the GUI)",
                            allow_test_split=plan.allow_test_split, box_label_names=box_names,
                            global_label_names=global_names, append=plan.append)
    units = range(start, start + plan.n)
    for done, unit in enumerate(units, start=1):
        ctx.check()
        if unit not in writer.done_units:
            writer.commit(unit, cli.run_unit(job, unit))
        ctx.progress(done, plan.n + 1)
    manifest = writer.finish()
    ctx.progress(plan.n + 1, plan.n + 1)
    return BatchResult("set", plan.n, out=plan.out, n_samples=int(manifest["n_samples"]),
                       sha256=str(manifest["sha256"]))


def _provenance(candidate: Any) -> dict[str, Any]:
    from linop_gui.session import candidate_provenance

    return candidate_provenance(candidate)


def record_batch(session: ReviewSession, result: BatchResult) -> list[str]:
    """GUI side: adds each batch box to its image's annotation, records the candidates; returns the image ids."""
    annotations: dict[str, ImageAnnotation] = {}
    entries = []
    for item in result.items:
        image_id = item.entry.image_id
        annotation = annotations.get(image_id) or session.annotation(image_id)
        if item.task == "inpaint":
            if annotation.mode != "inpaint":
                continue  # the reader set this image up for out-painting; do not mix the tasks
            box = tuple(float(v) for v in item.boxes[0])
            index = next((i for i, b in enumerate(annotation.boxes) if tuple(b.box) == box), None)
            if index is None:
                hole = item.hole if item.hole in ("ellipse", "rectangle") else "ellipse"
                annotation.boxes.append(LesionBox(box, hole=hole, source="drawn"))  # type: ignore[arg-type]
                index = len(annotation.boxes) - 1
            item.entry.box_index = index
        else:
            if not annotation.boxes:
                annotation = ImageAnnotation(mode="outpaint", margin=item.margin, boxes=[
                    LesionBox(tuple(float(v) for v in b), hole="rectangle", source="finding")  # type: ignore[arg-type]
                    for b in item.boxes])
            item.entry.box_index = -1
        annotations[image_id] = annotation
        entries.append(item.entry)
    session.record_batch(annotations, entries)
    return sorted(annotations)


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

    def __init__(self, session: ReviewSession, catalog: Any, worker: BackgroundWorker,
                 parent: QWidget | None = None) -> None:
        super().__init__(worker, EXPORT_CHANNEL, parent)
        self.session = session
        self.catalog = catalog
        self.summary: ExportSummary | None = None
        self.setWindowTitle("Export reviewed candidates")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.path_edit = QLineEdit(str(session.folder / "exports" / f"approved-{stamp}.h5"), self)
        self.append_check = QCheckBox("Append to an existing set", self)
        self.decision_checks = {d: QCheckBox(d.capitalize(), self) for d in DECISIONS}
        self.decision_checks["approved"].setChecked(True)
        self.task_combo = QComboBox(self)
        for label, tasks in (("All", ("inpaint", "outpaint")), ("In-painting", ("inpaint",)),
                             ("Out-painting", ("outpaint",))):
            self.task_combo.addItem(label, tasks)
        self.score_spin = QSpinBox(self)
        self.score_spin.setRange(0, 5)
        self.score_spin.setSpecialValueText("any")
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
        form.addRow("Task:", self.task_combo)
        form.addRow("Realism at least:", self.score_spin)
        form.addRow("", self.allow_test)
        form.addRow(self.coco_check, _path_row(self, self.coco_edit, self._browse_coco))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.count_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)
        self.task_combo.currentIndexChanged.connect(self.refresh_count)
        self.score_spin.valueChanged.connect(self.refresh_count)
        self.allow_test.toggled.connect(self.refresh_count)
        self.refresh_count()

    def export_filter(self) -> ExportFilter:
        decisions = tuple(d for d, check in self.decision_checks.items() if check.isChecked())
        return ExportFilter(decisions=decisions, tasks=tuple(self.task_combo.currentData()),
                            min_score=self.score_spin.value())

    def plan(self) -> ExportPlan:
        return plan_export(self.session, self.catalog, self.path_edit.text().strip(), self.export_filter(),
                           allow_test_split=self.allow_test.isChecked(),
                           coco_dir=self.coco_edit.text().strip() if self.coco_check.isChecked() else None,
                           append=self.append_check.isChecked())

    def refresh_count(self, *args: object) -> None:
        try:
            plan = self.plan()
        except LinopError as exc:
            self.count_label.setText(str(exc))
            self.start_button.setEnabled(False)
            return
        tests = plan.test_split_images
        text = f"{len(plan.entries)} candidate(s) from {len(plan.sources)} image(s) match."
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
        except LinopError as exc:
            self.result_label.setText(str(exc))
            return None
        if plan.test_split_images and not plan.allow_test_split:
            self.result_label.setText(f"Refused: {len(plan.test_split_images)} source image(s) are from the test "
                                      "split; tick 'Allow test-split sources' to override")
            return None
        return self._submit(partial(export_reviewed, plan=plan, session=self.session))

    def finished_job(self, payload: object) -> None:
        assert isinstance(payload, ExportSummary)
        self.summary = payload
        text = f"Wrote {payload.n_samples} sample(s) to {payload.out} (sha256 {payload.sha256[:12]}…)"
        if payload.coco_json is not None:
            text += f" and {payload.coco_json}"
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

    def __init__(self, session: ReviewSession, catalog: Any, worker: BackgroundWorker, options: Any,
                 parent: QWidget | None = None) -> None:
        super().__init__(worker, BATCH_CHANNEL, parent)
        self.session = session
        self.catalog = catalog
        self.options = options
        self.result: BatchResult | None = None
        self.setWindowTitle("Batch generate")
        kind = getattr(catalog, "kind", "folder")
        what = {"mammo": "random mass boxes on the normal (BI-RADS 1) mammograms",
                "cxr": "out-painting around the findings of the abnormal chest X-rays"}.get(kind)
        self.n_spin = QSpinBox(self)
        self.n_spin.setRange(1, 1_000_000)
        self.n_spin.setValue(10)
        self.candidates_spin = QSpinBox(self)
        self.candidates_spin.setRange(1, 32)
        self.candidates_spin.setValue(max(1, int(getattr(options, "candidates", 1))))
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(int(getattr(options, "first_seed", 0)))
        self.split_combo = QComboBox(self)
        self.split_combo.addItems(["training", "test"])
        self.allow_test = QCheckBox("Allow test-split sources (leaks evaluation images into training)", self)
        self.hole_combo = QComboBox(self)
        self.hole_combo.addItems(["ellipse", "rectangle"])
        self.context_spin = QDoubleSpinBox(self)
        self.context_spin.setRange(1.0, 8.0)
        self.context_spin.setValue(float(getattr(options, "hole_context", 2.0)))
        self.anatomy_check = QCheckBox("Boxes must lie in the breast / chest", self)
        self.anatomy_check.setChecked(bool(getattr(options, "anatomy_check", True)))
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
        feather = getattr(self.options, "feather_px", None)
        return BatchPlan(
            root=Path(self.catalog.root), n=self.n_spin.value(), candidates=self.candidates_spin.value(),
            seed=self.seed_spin.value(), split=self.split_combo.currentText(),
            allow_test_split=self.allow_test.isChecked(), hole=self.hole_combo.currentText(),  # type: ignore[arg-type]
            context=self.context_spin.value(), feather_px=feather, anatomy_check=self.anatomy_check.isChecked(),
            target="session" if self.to_session.isChecked() else "set",
            out=Path(self.path_edit.text().strip()) if self.to_set.isChecked() else None,
            append=self.append_check.isChecked(),
        )

    def start(self) -> int | None:
        plan = self.plan()
        if plan.split == TEST_SPLIT and not plan.allow_test_split:
            self.result_label.setText("Refused: the test split holds evaluation images; tick 'Allow test-split "
                                      "sources' to override")
            return None
        return self._submit(partial(run_batch, plan=plan, session=self.session))

    def finished_job(self, payload: object) -> None:
        assert isinstance(payload, BatchResult)
        self.result = payload
        if payload.target == "session":
            image_ids = record_batch(self.session, payload)
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
    "ExportDialog",
    "ExportFilter",
    "ExportPlan",
    "ExportSummary",
    "export_reviewed",
    "plan_export",
    "record_batch",
    "run_batch",
]
