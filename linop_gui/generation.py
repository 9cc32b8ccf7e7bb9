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

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDockWidget, QMenu, QMessageBox, QWidget

from linop_core.catalog import Catalog, CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_core.engines import EngineKind, EngineSpec
from linop_core.errors import LinopError
from linop_core.review.session import CandidateEntry, ReviewSession
from linop_core.vindr import GLOBAL_LABELS
from linop_gui.gallery import CandidateGallery
from linop_gui.gallery_items import GalleryItem
from linop_gui.generate_panel import GeneratePanel
from linop_gui.generation_jobs import (
    SEED_LIMIT,
    BoxTask,
    GenerateOptions,
    GenerationRequest,
    GenerationResult,
    build_tasks,
    load_items_job,
    run_generation,
)
from linop_gui.model_panel import BUNDLED_NOTE, find_bundled_model, initial_engine_spec, save_choice
from linop_gui.settings import Settings
from linop_gui.shortcuts import ShortcutSpec
from linop_gui.viewer import ImageViewer
from linop_gui.window_actions import Menus
from linop_gui.worker import BackgroundWorker, EngineInfo, WorkerError
from linop_gui.workspace import DisplayState, ModelInfo, Workspace

GENERATE_CHANNEL = "generate"
GALLERY_CHANNEL = "gallery"

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


class GenerationHost(Protocol):
    """What the generation side needs from the window it lives in (the main window provides it)."""

    menus: Menus

    def window(self) -> QWidget: ...

    def add_action(self, spec: ShortcutSpec, handler: ..., menu: QMenu | None = None) -> QAction: ...

    def set_generate_handler(self, handler: ...) -> None: ...

    def set_gallery_widget(self, widget: QWidget, title: str = "Candidates") -> None: ...

    def show_gallery(self) -> None: ...

    def add_side_dock(self, dock: QDockWidget) -> None: ...

    def show_status(self, text: str, timeout_ms: int = 4000) -> None: ...


class GenerationController(QObject):
    """Generation, review and export for one workspace (see the module docstring)."""

    def __init__(self, workspace: Workspace, host: GenerationHost, viewer: ImageViewer, *, settings: Settings,
                 model_path: str | None = None, device: str | None = None) -> None:
        super().__init__(host.window())
        self.workspace = workspace
        self.host = host
        self.viewer = viewer
        self.settings = settings
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
        self._engine_job: int | None = None
        self._pending_spec: EngineSpec | None = None
        self._export_dialog: QDialog | None = None
        self._batch_dialog: QDialog | None = None
        self._viewer_timer = QTimer(self)
        self._viewer_timer.setSingleShot(True)
        self._viewer_timer.setInterval(0)
        self._viewer_timer.timeout.connect(lambda: self._compare_in_viewer(self.gallery.showing_original))

        host.set_gallery_widget(self.gallery, "Candidates")
        self.dock = QDockWidget("Generate", host.window())
        self.dock.setObjectName("dock_generate")
        self.dock.setWidget(self.panel)
        host.add_side_dock(self.dock)
        self._add_actions()

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
        workspace.dataset_opened.connect(self._on_dataset_opened)
        workspace.image_changed.connect(self._on_image_changed)
        workspace.display_changed.connect(self._sync_gallery_display)
        self.gallery.candidate_selected.connect(self._show_in_viewer)
        self.gallery.compare_original.connect(self._compare_in_viewer)
        self.gallery.reviewed.connect(self._on_reviewed)
        self.gallery.message.connect(lambda text: host.show_status(text, 5000))
        self.gallery.reviewer_edit.setText(settings.reviewer)
        self.gallery.reviewer_edit.textChanged.connect(lambda text: setattr(settings, "reviewer", text))

        spec = initial_engine_spec(model_path, device, settings.q)
        self.panel.model_panel.show_spec(spec)
        self.load_engine(spec, remember=False)
        if workspace.catalog is not None and workspace.session is not None:
            self._on_dataset_opened(workspace.catalog, workspace.session)
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
        self.workspace.set_model(ModelInfo(name=name, version=version, path=info.checkpoint,
                                           device=info.device_text()))
        if info.note and info.engine == EngineKind.BIHARMONIC and "no model" in info.note:
            self.host.show_status(info.note, 10000)

    # -- generating -------------------------------------------------------------------------------------------
    def generate(self) -> int | None:
        """Generates candidates for the current image's boxes (latest request wins); returns the job id."""
        ws = self.workspace
        if ws.session is None or ws.entry is None or ws.image is None:
            self.host.show_status("Open an image first", 4000)
            return None
        if not ws.image_ready:
            self.host.show_status("The image is still loading; press G again in a moment", 4000)
            return None
        annotation = ws.annotation()
        if not annotation.boxes:
            self.host.show_status("Draw a box first (N or Ctrl+R), then press G", 5000)
            return None
        options = self.panel.options()
        seeds = tuple((options.first_seed + i) % SEED_LIMIT for i in range(options.candidates))
        entry = ws.entry
        try:
            tasks = build_tasks(annotation, seeds, options, selected=ws.selected, load_brush=ws.session.load_brush,
                                findings=tuple(entry.findings), global_labels=_global_labels(ws.catalog, entry))
        except LinopError as exc:
            self._show_error(WorkerError("input", str(exc)))
            return None
        if not tasks:
            self.host.show_status("Nothing to generate: paint the brush holes first", 5000)
            return None
        request = GenerationRequest(entry.image_id, ws.image, tasks, seeds, options.anatomy_check)
        self.generation_job = self.model_worker.submit(partial(run_generation, request=request, session=ws.session),
                                                       channel=GENERATE_CHANNEL)
        self.panel.set_running(True)
        self.panel.seed_spin.setValue((options.first_seed + options.candidates) % SEED_LIMIT)
        n = len(tasks) * len(seeds)
        self.host.show_status(f"Generating {n} candidate(s) for {entry.image_id}…", 0)
        return self.generation_job

    def cancel(self) -> None:
        self.model_worker.cancel(GENERATE_CHANNEL)
        self.host.show_status("Cancelling after the current candidate…", 4000)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if job_id == self.generation_job:
            self.panel.show_progress(done, total)

    def _on_model_result(self, job_id: int, payload: object) -> None:
        if job_id == self._engine_job or not isinstance(payload, GenerationResult):
            return
        self._record(payload)

    def _record(self, result: GenerationResult) -> None:
        session = self.workspace.session
        if session is None or not result.entries:
            return
        session.record_candidates(result.entries)
        self.last_result = result
        if self.gallery.image_id == result.image_id:
            self.gallery.add_items(result.items, select_first=True)
            next_seed = (max(e.seed for e in result.entries) + 1) % SEED_LIMIT
            self.panel.seed_spin.setValue(max(self.panel.seed_spin.value(), next_seed))
        self.host.show_gallery()
        text = f"{len(result.entries)} candidate(s) for {result.image_id}"
        if not result.seed_used:
            text += " (the biharmonic engine ignores seeds: they are identical)"
        if result.problems:
            text += f"; skipped {'; '.join(result.problems)}"
        self.host.show_status(text, 10000)

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
            self.host.show_status("Generation cancelled", 4000)

    def _on_finished(self, job_id: int) -> None:
        if job_id == self.generation_job or not self.model_worker.channel_busy(GENERATE_CHANNEL):
            self.panel.set_running(self.model_worker.channel_busy(GENERATE_CHANNEL))

    def _show_error(self, error: WorkerError) -> None:
        self.errors.append(error)
        parent = self.host.window()
        if error.kind == "bug":
            QMessageBox.critical(parent, error.title, error.message)
        else:
            QMessageBox.warning(parent, error.title, error.message)

    # -- gallery -----------------------------------------------------------------------------------------------
    def _on_dataset_opened(self, catalog: Catalog, session: ReviewSession) -> None:
        self.gallery.set_session(session)
        # A bundled demo model is per modality: follow the dataset while the user has not chosen a model.
        spec = self._pending_spec
        if spec is not None and spec.note == BUNDLED_NOTE:
            bundled = find_bundled_model(catalog.kind)
            if bundled is not None and str(bundled) != spec.checkpoint:
                self.load_engine(EngineSpec(checkpoint=str(bundled), device=spec.device, note=BUNDLED_NOTE),
                                 remember=False)

    def _on_image_changed(self, entry: CatalogEntry, image: DicomImage) -> None:
        session = self.workspace.session
        self._display_cache = None
        self._sync_gallery_display(self.workspace.display)
        if session is None or (self.gallery.image_id == entry.image_id and self.gallery.items):
            self._show_in_viewer(self.gallery.current_item())  # the same image shown again (e.g. reloaded)
            return
        self.gallery.clear(entry.image_id)
        entries = list(session.candidates_for(entry.image_id))
        seeds = [e.seed for e in entries]
        self.panel.seed_spin.setValue(max(seeds) + 1 if seeds else 0)
        if not entries:
            return
        fallback = self.workspace.display.window or VoiWindow(0.0, 1.0)
        self.gallery_job = self.io_worker.submit(
            partial(load_items_job, session=session, entries=entries, image_id=entry.image_id,
                    source=image.pixels, fallback=fallback), channel=GALLERY_CHANNEL)

    def _on_io_result(self, job_id: int, payload: object) -> None:
        if job_id == self.gallery_job and isinstance(payload, tuple):
            image_id, items = payload
            if image_id == self.gallery.image_id:
                known = {i.candidate_id for i in self.gallery.items}
                self.gallery.add_items([i for i in items if i.candidate_id not in known], select_first=True)
                self.host.show_gallery()

    def _on_io_failed(self, job_id: int, error: WorkerError) -> None:
        if job_id == self.gallery_job:
            self._show_error(error)

    def _sync_gallery_display(self, state: DisplayState) -> None:
        self.gallery.set_display(state.window, state.function, state.inverted)

    def _on_reviewed(self, entry: CandidateEntry) -> None:
        extra = f" ({entry.reject_reason})" if entry.reject_reason else ""
        score = f", realism {entry.realism_score}/5" if entry.realism_score else ""
        self.host.show_status(f"Candidate {entry.candidate_id[:8]}: {entry.decision}{extra}{score}", 4000)

    def _show_in_viewer(self, item: GalleryItem | None) -> None:
        # Deferred to the next event-loop pass: a new result's recording and the full-image repaint then
        # never add up to one long stall.
        self._shown_item = item
        self._viewer_timer.start()

    def _compare_in_viewer(self, original: bool) -> None:
        ws = self.workspace
        item = self._shown_item
        if original or item is None or ws.image is None or item.image_id != ws.image_id:
            self.viewer.set_display_override(None)
            return
        self.viewer.set_display_override(self._pasted(item, ws.image))

    def _pasted(self, item: GalleryItem, image: DicomImage) -> np.ndarray:
        """The viewer's display array with the candidate's generated pixels in place."""
        source = self.viewer.display_source()
        if self._display_cache is None or self._display_cache[0] != id(image):
            if source is None:
                raise RuntimeError("the viewer shows no image")
            self._display_cache = (id(image), source)
        out = self._display_cache[1].copy()
        y0, x0 = item.origin
        h, w = item.candidate.shape
        region = out[y0 : y0 + h, x0 : x0 + w]
        changed = item.weight > 0
        region[changed] = item.candidate[changed].astype(out.dtype)
        return out

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
            self.gallery.clear(None)
            self._on_image_changed(ws.entry, ws.image)

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
