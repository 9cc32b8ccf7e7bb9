"""Wires generation, review and export into a :class:`~linop_gui.main_window.MainWindow`.

``attach_generation(window)`` adds a "Generate" dock (model/device choice, candidates per box, seeds,
Generate / Cancel, progress), puts the candidate gallery into the window's "Candidates" dock, hooks G /
Generate, and adds Generate-menu actions (cancel, export approved, batch export). Two long-lived worker
threads do the work: the *model* thread owns the engine (generation and batch synthesis), the *io* thread
reads stored candidates for the gallery and writes exports. The GUI thread only records results in the
review session (one small JSON save) and updates widgets.

What runs where: :func:`run_generation` (worker) synthesises one request with ``linop_core.synthesis`` and
writes each candidate's pixels (``ReviewSession.store_candidate``); the controller records the entries
(``ReviewSession.record_candidates``) when the result arrives, so a result superseded by a newer request
leaves at most orphan files, never half-recorded entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from linop_core.dicom import DicomImage, VoiWindow
from linop_core.engines import EngineKind, EngineSpec
from linop_core.errors import LinopError
from linop_core.review.session import CandidateEntry, ImageAnnotation, ReviewSession
from linop_core.synthesis import InpaintRequest, OutpaintRequest, SynthesisRequest, synthesize
from linop_core.vocab import HoleKind, Task
from linop_gui.gallery import CandidateGallery, GalleryItem, load_gallery_items, make_gallery_item
from linop_gui.model_panel import BUNDLED_NOTE, ModelPanel, find_bundled_model, initial_engine_spec, save_choice
from linop_gui.shortcuts import ShortcutSpec
from linop_gui.worker import BackgroundWorker, EngineInfo, JobContext, WorkerError

GENERATE_CHANNEL = "generate"
GALLERY_CHANNEL = "gallery"
OUTPAINT_DEFAULT_LABEL = "Other lesion"
SEED_LIMIT = 2**31 - 1


# ----------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class GenerateOptions:
    """The generation settings of the panel (also what batch export applies to many images)."""

    candidates: int = 4
    first_seed: int = 0
    hole_context: float = 2.0
    feather_px: float | None = None  # None: synthesis' default
    anatomy_check: bool = True
    selected_only: bool = False


@dataclass(frozen=True)
class BoxTask:
    """One synthesis call: an inpainting box (its index in the annotation) or, for outpainting, all kept
    regions at once (``box_index`` None)."""

    box_index: int | None
    request: SynthesisRequest


@dataclass(frozen=True)
class GenerationRequest:
    image_id: str
    image: DicomImage
    tasks: tuple[BoxTask, ...]
    seeds: tuple[int, ...]
    anatomy_check: bool = True


@dataclass(frozen=True)
class GenerationResult:
    image_id: str
    entries: list[CandidateEntry]  # stored, not recorded yet
    items: list[GalleryItem]
    problems: list[str] = field(default_factory=list)  # boxes that could not be generated, one line each
    seed_used: bool = True


def outpaint_labels(annotation: ImageAnnotation, findings: tuple[Any, ...]) -> tuple[str, ...]:
    """A label per kept region: the category of the dataset finding with the same box, else "Other lesion"."""
    labels = []
    for lesion in annotation.boxes:
        match = next((f for f in findings if f.box is not None and _same_box(f.box, lesion.box)), None)
        labels.append(match.categories[0] if match is not None and match.categories else OUTPAINT_DEFAULT_LABEL)
    return tuple(labels)


def _same_box(a: tuple[float, ...], b: tuple[float, ...], tolerance: float = 1.0) -> bool:
    return all(abs(float(x) - float(y)) <= tolerance for x, y in zip(a, b, strict=True))


def build_tasks(
    annotation: ImageAnnotation,
    seeds: tuple[int, ...],
    options: GenerateOptions,
    *,
    selected: int | None,
    load_brush: Callable[[str], np.ndarray],
    findings: tuple[Any, ...] = (),
    global_labels: tuple[str, ...] = (),
) -> tuple[BoxTask, ...]:
    """The synthesis requests for an image's annotation: one per in-painting box, or one out-painting request."""
    if not annotation.boxes:
        return ()
    if annotation.mode is Task.OUTPAINT:
        request = OutpaintRequest(
            boxes=tuple(b.box for b in annotation.boxes), box_labels=outpaint_labels(annotation, findings),
            seeds=seeds, margin=float(annotation.margin), global_labels=global_labels, feather_px=options.feather_px,
        )
        return (BoxTask(None, request),)
    tasks = []
    for index, lesion in enumerate(annotation.boxes):
        if options.selected_only and selected is not None and index != selected:
            continue
        if lesion.hole is HoleKind.BRUSH:
            if not lesion.brush_file:
                continue
            hole: Any = load_brush(lesion.brush_file)
        else:
            hole = lesion.hole
        tasks.append(BoxTask(index, InpaintRequest(
            box=lesion.box, hole=hole, seeds=seeds, context=options.hole_context, feather_px=options.feather_px,
        )))
    return tuple(tasks)


def run_generation(ctx: JobContext, request: GenerationRequest, session: ReviewSession) -> GenerationResult:
    """Worker side: synthesise every task, store each candidate's pixels, prepare the gallery items."""
    engine = ctx.engine
    if engine is None:
        raise LinopError("no generation engine is loaded; choose a model (or the biharmonic baseline) and press Load")
    n = len(request.seeds)
    total = len(request.tasks) * n
    entries: list[CandidateEntry] = []
    items: list[GalleryItem] = []
    problems: list[str] = []
    source = request.image.pixels
    ctx.progress(0, total)
    for k, task in enumerate(request.tasks):
        def step(done: int, _total: int, k: int = k) -> None:
            ctx.progress(k * n + done, total)

        try:
            candidates = synthesize(request.image, task.request, engine, anatomy_check=request.anatomy_check,
                                    image_name=request.image_id, progress=step)
        except LinopError as exc:
            if len(request.tasks) == 1:
                raise
            label = "the kept regions" if task.box_index is None else f"box {task.box_index + 1}"
            problems.append(f"{label}: {exc}")
            continue
        for candidate in candidates:
            ctx.check()
            entry = session.store_candidate(image_id=request.image_id, box_index=task.box_index, candidate=candidate)
            entries.append(entry)
            items.append(make_gallery_item(entry, source, candidate.image, candidate.generated, candidate.window,
                                           candidate.window_function))
        ctx.progress((k + 1) * n, total)
    if not entries and problems:
        raise LinopError("; ".join(problems))
    seed_used = bool(getattr(engine, "seed_used", True))
    return GenerationResult(request.image_id, entries, items, problems, seed_used)


def load_items_job(ctx: JobContext, session: ReviewSession, entries: list[CandidateEntry], image_id: str,
                   source: np.ndarray, fallback: VoiWindow) -> tuple[str, list[GalleryItem]]:
    snapshot = _EntrySnapshot(session, entries)
    return image_id, load_gallery_items(snapshot, image_id, source, fallback, ctx.progress)  # type: ignore[arg-type]


class _EntrySnapshot:
    """The parts of a session :func:`load_gallery_items` reads, frozen in the GUI thread."""

    def __init__(self, session: ReviewSession, entries: list[CandidateEntry]) -> None:
        self._session = session
        self._entries = entries

    def candidates_for(self, image_id: str) -> list[CandidateEntry]:
        return [e for e in self._entries if e.image_id == image_id]

    def candidate_pixels(self, candidate_id: str) -> tuple[np.ndarray, np.ndarray]:
        return self._session.candidate_pixels(candidate_id)


# ----------------------------------------------------------------------------------------------- widgets


class GeneratePanel(QWidget):
    """Model choice, generation settings, Generate / Cancel and progress."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_panel = ModelPanel(self)
        model_box = QGroupBox("Model and device", self)
        QVBoxLayout(model_box).addWidget(self.model_panel)

        self.candidates_spin = QSpinBox(self)
        self.candidates_spin.setRange(1, 32)
        self.candidates_spin.setValue(4)
        self.candidates_spin.setToolTip("Candidates (seeds) per box")
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, SEED_LIMIT)
        self.seed_spin.setToolTip("First seed; it moves on after each generation so new candidates differ")
        self.context_spin = QDoubleSpinBox(self)
        self.context_spin.setRange(1.0, 8.0)
        self.context_spin.setSingleStep(0.25)
        self.context_spin.setValue(2.0)
        self.context_spin.setToolTip("In-painting: model window side / box side")
        self.feather_spin = QDoubleSpinBox(self)
        self.feather_spin.setRange(0.0, 512.0)
        self.feather_spin.setSpecialValueText("automatic")
        self.feather_spin.setToolTip("Blend ramp width in source pixels (automatic: 15 % of the box)")
        self.selected_only = QCheckBox("Selected box only", self)
        self.anatomy_check = QCheckBox("Boxes must lie in the breast / chest", self)
        self.anatomy_check.setChecked(True)
        settings_box = QGroupBox("Candidates", self)
        form = QFormLayout(settings_box)
        form.addRow("Per box:", self.candidates_spin)
        form.addRow("First seed:", self.seed_spin)
        form.addRow("Context:", self.context_spin)
        form.addRow("Feather (px):", self.feather_spin)
        form.addRow(self.selected_only)
        form.addRow(self.anatomy_check)

        self.generate_button = QPushButton("Generate (G)", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(model_box)
        layout.addWidget(settings_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addStretch(1)

    def options(self) -> GenerateOptions:
        feather = self.feather_spin.value()
        return GenerateOptions(
            candidates=self.candidates_spin.value(), first_seed=self.seed_spin.value(),
            hole_context=self.context_spin.value(), feather_px=feather if feather > 0 else None,
            anatomy_check=self.anatomy_check.isChecked(), selected_only=self.selected_only.isChecked(),
        )

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first progress report
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))


# ----------------------------------------------------------------------------------------------- controller


class GenerationController(QObject):
    """Generation, review and export for one main window (see the module docstring)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.model_worker = BackgroundWorker("linop-model", self)
        self.io_worker = BackgroundWorker("linop-io", self)
        self.gallery = CandidateGallery()
        self.panel = GeneratePanel()
        self.generation_job: int | None = None
        self.gallery_job: int | None = None
        self.last_result: GenerationResult | None = None
        self.errors: list[WorkerError] = []
        self._display_cache: tuple[int, np.ndarray] | None = None
        self._shown_item: GalleryItem | None = None
        self._closed = False
        self._viewer_timer = QTimer(self)
        self._viewer_timer.setSingleShot(True)
        self._viewer_timer.setInterval(0)
        self._viewer_timer.timeout.connect(lambda: self._compare_in_viewer(self.gallery.showing_original))

        window.set_gallery_widget(self.gallery, "Candidates")
        self.dock = QDockWidget("Generate", window)
        self.dock.setObjectName("dock_generate")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        panel_dock = getattr(window, "panel_dock", None)
        if panel_dock is not None:
            window.splitDockWidget(panel_dock, self.dock, Qt.Orientation.Vertical)
        view_menu = getattr(window, "view_menu", None)
        if view_menu is not None:
            view_menu.addAction(self.dock.toggleViewAction())

        menu = window.generate_menu
        self.cancel_action = window.add_action(
            ShortcutSpec("cancel_generation", "&Cancel generation", ("Ctrl+.",), "Generate", None,
                         "Stop the running generation after the current batch"), self.cancel, menu)
        menu.addSeparator()
        self.export_action = window.add_action(
            ShortcutSpec("export_approved", "&Export approved candidates…", ("Ctrl+E",), "Generate", None,
                         "Write the approved candidates to an HDF5 set (and optionally COCO / PNG)"),
            self.show_export_dialog, menu)
        self.batch_action = window.add_action(
            ShortcutSpec("batch_export", "&Batch generate…", ("Ctrl+Shift+E",), "Generate", None,
                         "Apply the current settings to many images: to the gallery or straight to a set"),
            self.show_batch_dialog, menu)
        window.set_generate_handler(self.generate)

        self.panel.generate_button.clicked.connect(self.generate)
        self.panel.cancel_button.clicked.connect(self.cancel)
        self.panel.model_panel.load_requested.connect(self.load_engine)
        self.model_worker.progress.connect(self._on_progress)
        self.model_worker.result.connect(self._on_model_result)
        self.model_worker.failed.connect(self._on_model_failed)
        self.model_worker.cancelled.connect(self._on_cancelled)
        self.model_worker.finished.connect(self._on_finished)
        self.model_worker.engine_changed.connect(self._on_engine_changed)
        self.io_worker.result.connect(self._on_io_result)
        self.io_worker.failed.connect(self._on_io_failed)
        window.dataset_opened.connect(self._on_dataset_opened)
        window.image_changed.connect(self._on_image_changed)
        window.viewer.window_changed.connect(self._sync_gallery_display)
        self.gallery.candidate_selected.connect(self._show_in_viewer)
        self.gallery.compare_original.connect(self._compare_in_viewer)
        self.gallery.reviewed.connect(self._on_reviewed)
        self.gallery.message.connect(lambda text: window.statusBar().showMessage(text, 5000))
        self.gallery.reviewer_edit.setText(str(window.settings.q.value("review/reviewer", "") or ""))
        self.gallery.reviewer_edit.textChanged.connect(lambda t: window.settings.q.setValue("review/reviewer", t))
        window.installEventFilter(self)
        self._engine_job: int | None = None
        self._pending_spec: EngineSpec | None = None
        self._export_dialog: Any = None
        self._batch_dialog: Any = None

        spec = initial_engine_spec(getattr(window, "model_path", None), getattr(window, "device", None),
                                   window.settings.q)
        self.panel.model_panel.show_spec(spec)
        self.load_engine(spec, remember=False)
        if window.session is not None:
            self._on_dataset_opened(window.catalog)
        if window.current_image is not None and window.current_entry is not None:
            self._on_image_changed(window.current_entry, window.current_image)

    # -- engine ---------------------------------------------------------------------------------------------
    def load_engine(self, spec: EngineSpec, remember: bool = True) -> int:
        self._pending_spec = spec
        self.panel.model_panel.show_loading(spec)
        self._engine_job = self.model_worker.load_engine(spec)
        if remember:
            save_choice(self.window.settings.q, spec)
        return self._engine_job

    @property
    def engine_info(self) -> EngineInfo | None:
        return self.model_worker.engine_info

    def _on_engine_changed(self, info: EngineInfo) -> None:
        from linop_gui.main_window import ModelInfo

        self.panel.model_panel.show_info(info)
        name = f"MAT {info.model_name or ''}".strip() if info.engine == "mat" else "biharmonic (no model)"
        version = f"checkpoint sha256 {info.checkpoint_sha256[:12]}" if info.checkpoint_sha256 else "—"
        self.window.set_model_info(ModelInfo(name=name, version=version, path=info.checkpoint,
                                             device=info.device_text()))
        if info.note and info.engine == "biharmonic" and "no model" in info.note:
            self.window.statusBar().showMessage(info.note, 10000)

    # -- generating -------------------------------------------------------------------------------------------
    def generate(self) -> int | None:
        """Generates candidates for the current image's boxes (latest request wins); returns the job id."""
        w = self.window
        if w.session is None or w.current_entry is None or w.current_image is None:
            w.statusBar().showMessage("Open an image first", 4000)
            return None
        if not _same_file(w.current_image.meta.path, w.current_entry.path):
            w.statusBar().showMessage("The image is still loading; press G again in a moment", 4000)
            return None
        annotation = w.current_annotation()
        if not annotation.boxes:
            w.statusBar().showMessage("Draw a box first (N or Ctrl+R), then press G", 5000)
            return None
        options = self.panel.options()
        seeds = tuple((options.first_seed + i) % SEED_LIMIT for i in range(options.candidates))
        entry = w.current_entry
        try:
            tasks = build_tasks(annotation, seeds, options, selected=w.viewer.selected, load_brush=w.session.load_brush,
                                findings=tuple(entry.findings), global_labels=tuple(_global_labels(w, entry)))
        except LinopError as exc:
            self._show_error(WorkerError("input", str(exc)))
            return None
        if not tasks:
            w.statusBar().showMessage("Nothing to generate: paint the brush holes first", 5000)
            return None
        request = GenerationRequest(entry.image_id, w.current_image, tasks, seeds, options.anatomy_check)
        self.generation_job = self.model_worker.submit(partial(run_generation, request=request, session=w.session),
                                                       channel=GENERATE_CHANNEL)
        self.panel.set_running(True)
        self.panel.seed_spin.setValue((options.first_seed + options.candidates) % SEED_LIMIT)
        n = len(tasks) * len(seeds)
        w.statusBar().showMessage(f"Generating {n} candidate(s) for {entry.image_id}…")
        return self.generation_job

    def cancel(self) -> None:
        self.model_worker.cancel(GENERATE_CHANNEL)
        self.window.statusBar().showMessage("Cancelling after the current batch…", 4000)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if job_id == self.generation_job:
            self.panel.show_progress(done, total)

    def _on_model_result(self, job_id: int, payload: object) -> None:
        if job_id == self._engine_job or not isinstance(payload, GenerationResult):
            return
        self._record(payload)

    def _record(self, result: GenerationResult) -> None:
        session = self.window.session
        if session is None or not result.entries:
            return
        session.record_candidates(result.entries)
        self.last_result = result
        if self.gallery.image_id == result.image_id:
            self.gallery.add_items(result.items, select_first=True)
            next_seed = (max(e.seed for e in result.entries) + 1) % SEED_LIMIT
            self.panel.seed_spin.setValue(max(self.panel.seed_spin.value(), next_seed))
        self.window.gallery_dock.show()
        text = f"{len(result.entries)} candidate(s) for {result.image_id}"
        if not result.seed_used:
            text += " (the biharmonic engine ignores seeds: they are identical)"
        if result.problems:
            text += f"; skipped {'; '.join(result.problems)}"
        self.window.statusBar().showMessage(text, 10000)

    def _on_model_failed(self, job_id: int, error: WorkerError) -> None:
        if job_id == self._engine_job:
            self.panel.model_panel.show_error(error, self.engine_info)
            self._show_error(error)
            pending = self._pending_spec
            if self.engine_info is None and pending is not None and pending.kind is EngineKind.MAT:
                # Nothing usable loaded at all: fall back to the baseline so G still works.
                self.load_engine(EngineSpec.biharmonic(note=f"fallback after: {error.message}"), remember=False)
            return
        self._show_error(error)

    def _on_cancelled(self, job_id: int) -> None:
        if job_id == self.generation_job:
            self.window.statusBar().showMessage("Generation cancelled", 4000)

    def _on_finished(self, job_id: int) -> None:
        if job_id == self.generation_job or not self.model_worker.channel_busy(GENERATE_CHANNEL):
            self.panel.set_running(self.model_worker.channel_busy(GENERATE_CHANNEL))

    def _show_error(self, error: WorkerError) -> None:
        self.errors.append(error)
        text = error.message
        if error.kind == "bug":
            QMessageBox.critical(self.window, error.title, text)
        else:
            QMessageBox.warning(self.window, error.title, text)

    # -- gallery -----------------------------------------------------------------------------------------------
    def _on_dataset_opened(self, catalog: object) -> None:
        self.gallery.set_session(self.window.session)
        # A bundled demo model is per modality: follow the dataset while the user has not chosen a model.
        spec = self._pending_spec
        if spec is not None and spec.note == BUNDLED_NOTE:
            bundled = find_bundled_model(getattr(catalog, "kind", "mammo"))
            if bundled is not None and str(bundled) != spec.checkpoint:
                self.load_engine(EngineSpec(checkpoint=str(bundled), device=spec.device, note=BUNDLED_NOTE),
                                 remember=False)

    def _on_image_changed(self, entry: Any, image: DicomImage) -> None:
        session = self.window.session
        self._display_cache = None
        self._sync_gallery_display()
        if session is None or (self.gallery.image_id == entry.image_id and self.gallery.items):
            self._show_in_viewer(self.gallery.current_item())  # the same image shown again (e.g. reloaded)
            return
        self.gallery.clear(entry.image_id)
        entries = list(session.candidates_for(entry.image_id))
        seeds = [e.seed for e in entries]
        self.panel.seed_spin.setValue(max(seeds) + 1 if seeds else 0)
        if not entries:
            return
        fallback = self.window.current_window() or VoiWindow(0.0, 1.0)
        self.gallery_job = self.io_worker.submit(
            partial(load_items_job, session=session, entries=entries, image_id=entry.image_id,
                    source=image.pixels, fallback=fallback), channel=GALLERY_CHANNEL)

    def _on_io_result(self, job_id: int, payload: object) -> None:
        if job_id == self.gallery_job and isinstance(payload, tuple):
            image_id, items = payload
            if image_id == self.gallery.image_id:
                known = {i.candidate_id for i in self.gallery.items}
                self.gallery.add_items([i for i in items if i.candidate_id not in known], select_first=True)
                self.window.gallery_dock.show()

    def _on_io_failed(self, job_id: int, error: WorkerError) -> None:
        if job_id == self.gallery_job:
            self._show_error(error)

    def _sync_gallery_display(self, *args: object) -> None:
        viewer = self.window.viewer
        self.gallery.set_display(viewer.window, viewer.function, viewer.inverted)

    def _on_reviewed(self, entry: CandidateEntry) -> None:
        extra = f" ({entry.reject_reason})" if entry.reject_reason else ""
        score = f", realism {entry.realism_score}/5" if entry.realism_score else ""
        self.window.statusBar().showMessage(f"Candidate {entry.candidate_id[:8]}: {entry.decision}{extra}{score}", 4000)

    def _show_in_viewer(self, item: GalleryItem | None) -> None:
        # Deferred to the next event-loop pass: a new result's recording and the full-image repaint then
        # never add up to one long stall.
        self._shown_item = item
        self._viewer_timer.start()

    def _compare_in_viewer(self, original: bool) -> None:
        w = self.window
        item = self._shown_item
        if (original or item is None or w.current_entry is None or w.current_image is None
                or item.image_id != w.current_entry.image_id):
            w.viewer.set_display_override(None)
            return
        w.viewer.set_display_override(self._pasted(item, w.current_image))

    def _pasted(self, item: GalleryItem, image: DicomImage) -> np.ndarray:
        """The viewer's display array with the candidate's generated pixels in place."""
        from linop_gui.viewer import display_array

        if self._display_cache is None or self._display_cache[0] != id(image):
            self._display_cache = (id(image), display_array(image))
        out = self._display_cache[1].copy()
        y0, x0 = item.origin
        h, w = item.candidate.shape
        region = out[y0 : y0 + h, x0 : x0 + w]
        changed = item.weight > 0
        region[changed] = item.candidate[changed].astype(out.dtype)
        return out

    # -- export --------------------------------------------------------------------------------------------------
    def show_export_dialog(self) -> Any:
        from linop_gui.export_dialog import ExportDialog

        if self.window.session is None:
            self.window.statusBar().showMessage("Open a dataset first", 4000)
            return None
        dialog = ExportDialog(self.window.session, self.window.catalog, self.io_worker, self.window)
        dialog.show()
        self._export_dialog = dialog
        return dialog

    def show_batch_dialog(self) -> Any:
        from linop_gui.export_dialog import BatchDialog

        if self.window.session is None or self.window.catalog is None:
            self.window.statusBar().showMessage("Open a VinDr dataset first", 4000)
            return None
        dialog = BatchDialog(self.window.session, self.window.catalog, self.model_worker, self.panel.options(),
                             self.window)
        dialog.finished_to_session.connect(self._after_batch_to_session)
        dialog.show()
        self._batch_dialog = dialog
        return dialog

    def _after_batch_to_session(self, image_ids: list[str]) -> None:
        entry = self.window.current_entry
        if entry is not None and entry.image_id in image_ids and self.window.current_image is not None:
            self.window.viewer.set_annotation(self.window.current_annotation())
            self._on_image_changed(entry, self.window.current_image)

    # -- lifetime --------------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return super().eventFilter(watched, event)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancels running jobs, releases the model and stops both threads (on window close)."""
        if self._closed:
            return
        self._closed = True
        self.model_worker.shutdown(timeout_ms)
        self.io_worker.shutdown(timeout_ms)


def _same_file(a: Any, b: Any) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return str(a) == str(b)


def _global_labels(window: Any, entry: Any) -> list[str]:
    catalog = window.catalog
    dataset = getattr(catalog, "dataset", None)
    if dataset is None:
        return []
    try:
        record = dataset.by_id(entry.image_id)
    except LinopError:
        return []
    from linop_core.vindr import GLOBAL_LABELS

    return [label for label in record.labels if label in GLOBAL_LABELS]


def attach_generation(window: Any) -> GenerationController:
    """Adds generation, review and export to ``window`` (a MainWindow); returns the controller."""
    return GenerationController(window)


__all__ = [
    "BoxTask",
    "GenerateOptions",
    "GeneratePanel",
    "GenerationController",
    "GenerationRequest",
    "GenerationResult",
    "attach_generation",
    "build_tasks",
    "run_generation",
]
