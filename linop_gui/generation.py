"""Generation, review and export for one main window: the controller between the workspace, the two worker threads
and the Generate / Candidates docks.

:class:`GenerationController` adds a "Generate" dock (:class:`~linop_gui.generate_panel.GeneratePanel`), puts the
candidate gallery into the window's "Candidates" dock, hooks G / Generate and adds Generate-menu actions (cancel,
export approved, batch export). It reads and changes the app's state only through the
:class:`~linop_gui.workspace.Workspace` and reaches the window only through :class:`GenerationHost`. Two
long-lived worker threads do the work: the *model* thread owns the engine (generation and batch synthesis), the
*io* thread reads stored candidates for the gallery and writes exports; the job functions are
:mod:`linop_gui.generation_jobs`. The GUI thread only records results in the review session (one small JSON save)
and updates widgets.
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDockWidget, QMenu, QMessageBox, QWidget

from linop_core.catalog import Catalog, CatalogEntry
from linop_core.dicom import DicomImage
from linop_core.engines import EngineKind, EngineSpec
from linop_core.errors import LinopError
from linop_core.review.session import ReviewSession
from linop_core.vindr import GLOBAL_LABELS
from linop_core.vocab import DatasetKind, Task, task_for_dataset
from linop_gui.gallery import CandidateGallery
from linop_gui.generate_panel import GeneratePanel
from linop_gui.generation_jobs import (
    SEED_LIMIT,
    BoxTask,
    CandidateMade,
    GenerateOptions,
    GenerationRequest,
    GenerationResult,
    build_tasks,
    run_generation,
)
from linop_gui.model_panel import BUNDLED_NOTE, find_bundled_model, initial_engine_spec, save_choice
from linop_gui.review import ReviewController, ReviewHost
from linop_gui.settings import Settings
from linop_gui.shortcuts import ShortcutSpec
from linop_gui.viewer import ImageViewer
from linop_gui.window_actions import Menus
from linop_gui.worker import BackgroundWorker, EngineInfo, WorkerError
from linop_gui.workspace import MessageLevel, ModelInfo, Workspace

GENERATE_CHANNEL = "generate"

__all__ = [
    "BoxTask",
    "GenerateOptions",
    "GeneratePanel",
    "GenerationController",
    "GenerationHost",
    "GenerationRequest",
    "GenerationResult",
    "build_tasks",
    "run_generation",
]


class GenerationHost(ReviewHost, Protocol):
    """What the generation side needs from the window it lives in (the main window provides it)."""

    menus: Menus

    def window(self) -> QWidget: ...

    def add_action(self, spec: ShortcutSpec, handler: ..., menu: QMenu | None = None) -> QAction: ...

    def set_generate_handler(self, handler: ...) -> None: ...

    def add_side_dock(self, title: str, name: str, widget: QWidget) -> QDockWidget: ...


class GenerationController(QObject):
    """Generation, review and export for one workspace (see the module docstring)."""

    def __init__(self, workspace: Workspace, host: GenerationHost, viewer: ImageViewer, *, settings: Settings,
                 model_path: str | None = None, device: str | None = None, precision: str | None = None) -> None:
        super().__init__(host.window())
        self.workspace = workspace
        self.host = host
        self.viewer = viewer
        self.settings = settings
        self.model_worker = BackgroundWorker("linop-model", self)
        self.io_worker = BackgroundWorker("linop-io", self)
        self.review = ReviewController(workspace, host, viewer, self.io_worker, settings, self)
        self.panel = GeneratePanel()
        self.generation_job: int | None = None
        self._streamed = 0  # candidates of the running generation received so far
        self._generate_jobs: set[int] = set()  # submitted, not finished
        self.last_result: GenerationResult | None = None
        self.errors: list[WorkerError] = []
        self._closed = False
        self._engine_job: int | None = None
        self._pending_spec: EngineSpec | None = None
        self._export_dialog: QDialog | None = None
        self._batch_dialog: QDialog | None = None
        self.dock = host.add_side_dock("Generate", "generate", self.panel)
        self._add_actions()

        self.panel.generate_button.clicked.connect(self.generate)
        self.panel.cancel_button.clicked.connect(self.cancel)
        self.panel.model_panel.load_requested.connect(self.load_engine)
        self.model_worker.progress.connect(self._on_progress)
        self.model_worker.partial.connect(self._on_candidate_made)
        self.model_worker.result.connect(self._on_model_result)
        self.model_worker.failed.connect(self._on_model_failed)
        self.model_worker.cancelled.connect(self._on_cancelled)
        self.model_worker.finished.connect(self._on_finished)
        self.model_worker.engine_changed.connect(self._on_engine_changed)
        workspace.dataset_opened.connect(self._on_dataset_opened)
        workspace.entry_changed.connect(self._on_entry_changed)
        workspace.image_changed.connect(self._on_image_changed)

        spec = initial_engine_spec(model_path, device, settings.q, precision)
        self.panel.model_panel.show_spec(spec)
        self.load_engine(spec, remember=False)
        if workspace.catalog is not None and workspace.session is not None:
            self._on_dataset_opened(workspace.catalog, workspace.session)
        if workspace.entry is not None:
            self._on_entry_changed(workspace.entry)
        if workspace.image is not None and workspace.entry is not None:
            self._on_image_changed(workspace.entry, workspace.image)

    def _add_actions(self) -> None:
        host = self.host
        menu = host.menus.generate
        self.cancel_action = host.add_action(
            ShortcutSpec("cancel_generation", "&Cancel generation", ("Ctrl+.",), "Generate", None,
                         "Stop the running generation after the current candidate"), self.cancel, menu)
        menu.addSeparator()
        self.export_action = host.add_action(
            ShortcutSpec("export_approved", "&Export approved candidates…", ("Ctrl+E",), "Generate", None,
                         "Write the approved candidates to an HDF5 set (and optionally COCO / PNG)"),
            self.show_export_dialog, menu)
        self.batch_action = host.add_action(
            ShortcutSpec("batch_export", "&Batch generate…", ("Ctrl+Shift+E",), "Generate", None,
                         "Apply the current settings to many images: to the gallery or straight to a set"),
            self.show_batch_dialog, menu)
        menu.addSeparator()
        menu.addAction(host.action("adjudicate"))
        host.set_generate_handler(self.generate)

    # -- engine ---------------------------------------------------------------------------------------------
    def load_engine(self, spec: EngineSpec, remember: bool = True) -> int:
        self._pending_spec = spec
        self.panel.model_panel.show_loading(spec)
        self._engine_job = self.model_worker.load_engine(spec)
        if remember:
            save_choice(self.settings.q, spec)
        return self._engine_job

    @property
    def engine_info(self) -> EngineInfo | None:
        return self.model_worker.engine_info

    def _on_engine_changed(self, info: EngineInfo) -> None:
        self.panel.model_panel.show_info(info)
        name = f"MAT {info.model_name or ''}".strip() if info.engine == EngineKind.MAT else "biharmonic (no model)"
        version = f"checkpoint sha256 {info.checkpoint_sha256[:12]}" if info.checkpoint_sha256 else "—"
        device = f"{info.device_text()} · {info.dtype}" if info.dtype else info.device_text()
        self.workspace.set_model(ModelInfo(name=name, version=version, path=info.checkpoint, device=device,
                                           sha256=info.checkpoint_sha256))
        if info.note and info.engine == EngineKind.BIHARMONIC and "no model" in info.note:
            self.host.show_status(info.note, 10000)

    # -- generating -------------------------------------------------------------------------------------------
    def generate(self) -> int | None:
        """Generates candidates for the current image's boxes (latest request wins); returns the job id."""
        ws = self.workspace
        if ws.session is None or ws.entry is None or ws.image is None:
            ws.tell("Nothing to generate for: open an image first", MessageLevel.WARNING)
            return None
        if not ws.image_ready:
            ws.tell("The image is still loading; press G again in a moment", MessageLevel.INFO)
            return None
        annotation = ws.annotation()
        if not annotation.boxes:
            ws.tell("No box on this image: draw one first (N, then drag), then press G", MessageLevel.WARNING)
            return None
        options = self.panel.options()
        seeds = tuple((options.first_seed + i) % SEED_LIMIT for i in range(options.candidates))
        entry = ws.entry
        try:
            tasks = build_tasks(annotation, seeds, options, selected=ws.selected, load_brush=ws.session.load_brush,
                                findings=tuple(entry.findings), global_labels=_global_labels(ws.catalog, entry))
        except LinopError as exc:
            ws.tell(str(exc), MessageLevel.WARNING)
            return None
        if not tasks:
            ws.tell("Nothing to generate: paint the brush holes first", MessageLevel.WARNING)
            return None
        ws.retract_message()  # "no box on this image" and the like are answered now
        request = GenerationRequest(entry.image_id, ws.image, tasks, seeds, options.anatomy_check)
        self._streamed = 0
        self.generation_job = self.model_worker.submit(partial(run_generation, request=request, session=ws.session),
                                                       channel=GENERATE_CHANNEL)
        self._generate_jobs.add(self.generation_job)
        n = len(tasks) * len(seeds)
        self.panel.set_running(True, n)
        self.dock.show()
        self.dock.raise_()  # the progress in sight (a tab behind the annotation panel on a short screen)
        self.host.show_gallery()  # laid out now, not when the first candidate arrives (the model is busy then)
        self.panel.seed_spin.setValue((options.first_seed + options.candidates) % SEED_LIMIT)
        which = ", ".join(t.label for t in tasks)
        self.host.show_status(f"Generating {n} candidate(s) for {which} of {entry.image_id}…", 0)
        return self.generation_job

    def cancel(self) -> None:
        self.model_worker.cancel(GENERATE_CHANNEL)
        self.host.show_status("Cancelling after the current candidate…", 4000)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if job_id == self.generation_job:
            self.panel.show_progress(done, total)

    def _on_candidate_made(self, job_id: int, payload: object) -> None:
        """One candidate of the running generation exists: record it and show it now (the first one selected)."""
        session = self.workspace.session
        if job_id != self.generation_job or not isinstance(payload, CandidateMade) or session is None:
            return
        session.record_candidates([payload.entry])
        first = self._streamed == 0
        self._streamed += 1
        self.review.add_made(payload.item, select=first)
        if payload.image_id == self.workspace.image_id:
            next_seed = (payload.entry.seed + 1) % SEED_LIMIT
            self.panel.seed_spin.setValue(max(self.panel.seed_spin.value(), next_seed))

    def _on_model_result(self, job_id: int, payload: object) -> None:
        if job_id == self._engine_job or not isinstance(payload, GenerationResult):
            return
        self.last_result = payload
        text = f"{len(payload.entries)} candidate(s) for {payload.image_id}"
        if not payload.seed_used:
            text += " (the biharmonic engine ignores seeds: they are identical)"
        self.host.show_status(text, 10000)
        if payload.problems:
            self.workspace.tell("Skipped " + "; ".join(payload.problems), MessageLevel.WARNING)

    def _on_model_failed(self, job_id: int, error: WorkerError) -> None:
        if job_id == self._engine_job:
            self.panel.model_panel.show_error(error, self.engine_info)
            self._show_error(error)
            pending = self._pending_spec
            if self.engine_info is None and pending is not None and pending.kind is EngineKind.MAT:
                # Nothing usable loaded at all: fall back to the baseline so G still works.
                self.load_engine(EngineSpec.biharmonic(note=f"fallback after: {error.message}"), remember=False)
            return
        if job_id == self.generation_job and error.kind == "input":
            self.errors.append(error)
            self.workspace.tell(error.message, MessageLevel.WARNING)  # refused: said where the user looks
            self.host.show_status("Nothing generated: the reason is over the image", 6000)
            return
        self._show_error(error)

    def _on_cancelled(self, job_id: int) -> None:
        if job_id == self.generation_job:
            self.host.show_status(f"Generation cancelled; {self._streamed} candidate(s) kept", 4000)

    def _on_finished(self, job_id: int) -> None:
        if job_id not in self._generate_jobs:
            return  # an engine load or a batch run
        self._generate_jobs.discard(job_id)
        if not self.model_worker.channel_busy(GENERATE_CHANNEL):
            self.panel.set_running(False)
            if not self.gallery.items:
                self.host.show_gallery(False)  # nothing came: the image gets its height back

    def _show_error(self, error: WorkerError) -> None:
        self.errors.append(error)
        parent = self.host.window()
        if error.kind == "bug":
            QMessageBox.critical(parent, error.title, error.message)
        else:
            QMessageBox.warning(parent, error.title, error.message)

    # -- dataset and image ---------------------------------------------------------------------------------
    def _on_dataset_opened(self, catalog: Catalog, session: ReviewSession) -> None:
        if catalog.kind is not DatasetKind.FOLDER:
            self.follow_task(task_for_dataset(catalog.kind))

    def _on_entry_changed(self, entry: CatalogEntry) -> None:
        catalog = self.workspace.catalog
        if catalog is not None and catalog.kind is DatasetKind.FOLDER:
            self.follow_task(catalog.task_of(entry))  # a plain folder: each image's header decides

    def follow_task(self, task: Task | None) -> None:
        """The bundled demo models are per task: switch to the one of ``task`` while the user has not chosen a
        model of their own (mammography: inpainting, chest X-ray: outpainting)."""
        spec = self._pending_spec
        if task is None or spec is None or spec.note != BUNDLED_NOTE:
            return
        bundled = find_bundled_model(task)
        if bundled is not None and str(bundled) != spec.checkpoint:
            self.load_engine(EngineSpec(checkpoint=str(bundled), device=spec.device, precision=spec.precision,
                                        note=BUNDLED_NOTE),
                             remember=False)

    def _on_image_changed(self, entry: CatalogEntry, image: DicomImage) -> None:
        if not self.model_worker.channel_busy(GENERATE_CHANNEL) and self.gallery.image_id != entry.image_id:
            self.panel.reset_progress()
        entries = self.review.show_image(entry, image)
        seeds = [e.seed for e in entries]
        self.panel.seed_spin.setValue(max(seeds) + 1 if seeds else 0)

    # -- export --------------------------------------------------------------------------------------------------
    def show_export_dialog(self) -> QDialog | None:
        from linop_gui.export_dialog import ExportDialog

        ws = self.workspace
        if ws.session is None:
            self.host.show_status("Open a dataset first", 4000)
            return None
        dialog = ExportDialog(ws.session, ws.catalog, self.io_worker, self.host.window())
        dialog.show()
        self._export_dialog = dialog
        return dialog

    def show_batch_dialog(self) -> QDialog | None:
        from linop_gui.export_dialog import BatchDialog

        ws = self.workspace
        if ws.session is None or ws.catalog is None:
            self.host.show_status("Open a VinDr dataset first", 4000)
            return None
        dialog = BatchDialog(ws.session, ws.catalog, self.model_worker, self.panel.options(), self.host.window())
        dialog.finished_to_session.connect(self._after_batch_to_session)
        dialog.show()
        self._batch_dialog = dialog
        return dialog

    def _after_batch_to_session(self, image_ids: list[str]) -> None:
        ws = self.workspace
        if ws.entry is not None and ws.entry.image_id in image_ids and ws.image is not None:
            ws.annotation_replaced(ws.entry.image_id)
            self.review.reload()

    @property
    def gallery(self) -> CandidateGallery:
        return self.review.gallery

    # -- lifetime --------------------------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancels running jobs, releases the model and stops both threads (on window close)."""
        if self._closed:
            return
        self._closed = True
        self.model_worker.shutdown(timeout_ms)
        self.io_worker.shutdown(timeout_ms)


def _global_labels(catalog: Catalog | None, entry: CatalogEntry) -> tuple[str, ...]:
    dataset = catalog.dataset if catalog is not None else None
    if dataset is None:
        return ()
    try:
        record = dataset.by_id(entry.image_id)
    except LinopError:
        return ()
    return tuple(label for label in record.labels if label in GLOBAL_LABELS)
