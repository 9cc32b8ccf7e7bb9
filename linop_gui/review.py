"""Reviewing candidates: the gallery of the current image's candidates, the selected one shown in the main viewer
at full resolution (hold Tab / Space for the original, M for the difference map), and the review keys of the
shortcut table bound to the gallery's decisions. Stored candidates are read back off the GUI thread (io worker)
when an image is shown; new ones arrive one by one from the generation.

Several readers: the gallery records and shows the current reader's own decisions (the name in its "Reader"
field, remembered in the settings and shown in the status line); Ctrl+J opens the adjudication view
(:mod:`linop_gui.adjudication`), where the disputed candidates are listed with every reader's decision, shown in
the viewer on request and settled."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

import numpy as np
from PySide6.QtCore import QObject, QPoint, QTimer
from PySide6.QtGui import QAction, QCursor
from PySide6.QtWidgets import QWidget

from linop_core.catalog import Catalog, CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_core.review.session import CandidateEntry, ReviewSession
from linop_gui.adjudication import AdjudicationDialog
from linop_gui.gallery import CandidateGallery
from linop_gui.gallery_items import GalleryItem
from linop_gui.generation_jobs import load_items_job
from linop_gui.settings import Settings
from linop_gui.viewer import ImageViewer
from linop_gui.worker import BackgroundWorker, WorkerError
from linop_gui.workspace import MessageLevel, Workspace

GALLERY_CHANNEL = "gallery"
REVIEW_ACTIONS = ("approve", "reject", "score_1", "score_2", "score_3", "score_4", "score_5", "score_clear",
                  "difference", "prev_candidate", "next_candidate")


class ReviewHost(Protocol):
    """What review needs from the window: its review actions, the hold-key binding and the status bar."""

    def action(self, action_id: str) -> QAction: ...

    def bind_hold(self, action_id: str, handler: Callable[[bool], None], available: Callable[[], bool]) -> None: ...

    def set_gallery_widget(self, widget: CandidateGallery, title: str = "Candidates", *, show: bool = True) -> None: ...

    def show_gallery(self, visible: bool = True) -> None: ...

    def show_status(self, text: str, timeout_ms: int = 4000) -> None: ...

    def show_reader(self, reader: str) -> None: ...

    def select_image(self, image_id: str) -> None: ...


class ReviewController(QObject):
    """The gallery and the candidate on screen for one workspace (see the module docstring)."""

    def __init__(self, workspace: Workspace, host: ReviewHost, viewer: ImageViewer, io_worker: BackgroundWorker,
                 settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.host = host
        self.viewer = viewer
        self.io_worker = io_worker
        self.gallery = CandidateGallery()
        self.gallery_job: int | None = None
        self.showing_original = False
        self._shown_item: GalleryItem | None = None
        self._viewer_timer = QTimer(self)
        self._viewer_timer.setSingleShot(True)
        self._viewer_timer.setInterval(0)
        self._viewer_timer.timeout.connect(self._show_candidate)

        host.set_gallery_widget(self.gallery, "Candidates", show=False)  # shown once there are candidates
        self.gallery.candidate_selected.connect(self._on_selected)
        self.gallery.difference_toggled.connect(lambda on: self._show_candidate())
        self.gallery.reviewed.connect(self._on_reviewed)
        self.gallery.message.connect(lambda text: host.show_status(text, 5000))
        self.gallery.reviewer_edit.setText(settings.reviewer)
        self.gallery.reviewer_edit.textChanged.connect(lambda text: setattr(settings, "reviewer", text))
        self.gallery.reader_changed.connect(host.show_reader)
        host.show_reader(self.gallery.reviewer.strip())
        self.adjudication: AdjudicationDialog | None = None
        self._pending_candidate: str | None = None  # to select once its image's gallery is read (a jump)
        io_worker.result.connect(self._on_io_result)
        io_worker.failed.connect(self._on_io_failed)
        workspace.dataset_opened.connect(self._on_dataset_opened)
        if workspace.session is not None:
            self.gallery.set_session(workspace.session)
        self._bind_keys()

    def _bind_keys(self) -> None:
        gallery, host = self.gallery, self.host
        handlers: dict[str, Callable[[], object]] = {
            "approve": gallery.approve, "reject": self._ask_reject_reason,
            "score_clear": lambda: gallery.set_score(None),
            "prev_candidate": lambda: gallery.step(-1), "next_candidate": lambda: gallery.step(+1),
        }
        for n in range(1, 6):
            handlers[f"score_{n}"] = partial(gallery.set_score, n)
        for action_id, handler in handlers.items():
            host.action(action_id).triggered.connect(lambda _=False, h=handler: h())
        host.action("difference").toggled.connect(gallery.set_difference)
        gallery.difference_toggled.connect(host.action("difference").setChecked)
        host.bind_hold("compare_original", self.set_showing_original, lambda: self._shown_item is not None)
        host.action("adjudicate").triggered.connect(lambda _=False: self.show_adjudication())
        host.action("adjudicate").setEnabled(True)
        self._update_actions()

    # -- content -------------------------------------------------------------------------------------------
    def _on_dataset_opened(self, catalog: Catalog, session: ReviewSession) -> None:
        self.gallery.set_session(session)

    def show_image(self, entry: CatalogEntry, image: DicomImage) -> list[CandidateEntry]:
        """The candidates of a newly shown image go into the gallery (read off the GUI thread); returns their
        entries. The same image shown again keeps its gallery."""
        session = self.workspace.session
        if session is None or (self.gallery.image_id == entry.image_id and self.gallery.items):
            self._on_selected(self.gallery.current_item())
            return [] if session is None else list(session.candidates_for(entry.image_id))
        self.gallery.clear(entry.image_id)
        entries = list(session.candidates_for(entry.image_id))
        self.host.show_gallery(bool(entries))  # the image keeps the height while there is nothing to review
        if entries:
            fallback = self.workspace.display.window or VoiWindow(0.0, 1.0)
            self.gallery_job = self.io_worker.submit(
                partial(load_items_job, session=session, entries=entries, image_id=entry.image_id,
                        source=image.pixels, fallback=fallback), channel=GALLERY_CHANNEL)
        return entries

    def reload(self) -> None:
        """Reads the current image's candidates again (after a batch run added some)."""
        ws = self.workspace
        if ws.entry is not None and ws.image is not None:
            self.gallery.clear(None)
            self.show_image(ws.entry, ws.image)

    def add_made(self, item: GalleryItem, *, select: bool) -> None:
        """A candidate just generated (its entry recorded already)."""
        if self.gallery.image_id == item.image_id:
            self.gallery.add_items([item], select_first=select)
        if select:
            self.host.show_gallery()

    def _on_io_result(self, job_id: int, payload: object) -> None:
        if job_id == self.gallery_job and isinstance(payload, tuple):
            image_id, items = payload
            if image_id == self.gallery.image_id:
                known = {i.candidate_id for i in self.gallery.items}
                self.gallery.add_items([i for i in items if i.candidate_id not in known], select_first=True)
                self.host.show_gallery()
                if self._pending_candidate is not None and self.gallery.select(self._pending_candidate):
                    self._pending_candidate = None

    def _on_io_failed(self, job_id: int, error: WorkerError) -> None:
        if job_id == self.gallery_job:
            self.workspace.tell(f"Cannot read the stored candidates: {error.message}", MessageLevel.ERROR)

    # -- review --------------------------------------------------------------------------------------------
    def _ask_reject_reason(self) -> None:
        at = self.viewer.mapToGlobal(self.viewer.rect().center()) if self.viewer.isVisible() else QCursor.pos()
        self.gallery.ask_reject_reason(QPoint(at))

    def show_adjudication(self) -> AdjudicationDialog | None:
        """The disputed candidates of the session, every reader's decision, and a decision to settle each."""
        session = self.workspace.session
        if session is None:
            self.host.show_status("Open a dataset first", 4000)
            return None
        if self.adjudication is None or self.adjudication.session is not session:
            self.adjudication = AdjudicationDialog(session, QWidget.window(self.viewer))  # viewer.window: its VOI
            self.adjudication.jump_requested.connect(self.jump_to)
            self.adjudication.adjudicated.connect(lambda entry: self.gallery.refresh())
        self.adjudication.refresh()
        self.adjudication.show()
        self.adjudication.raise_()
        return self.adjudication

    def jump_to(self, image_id: str, candidate_id: str) -> None:
        """Shows a candidate in the viewer: its image first when another one is shown."""
        if self.gallery.image_id == image_id and self.gallery.select(candidate_id):
            return
        self._pending_candidate = candidate_id
        self.host.select_image(image_id)

    def _on_reviewed(self, entry: CandidateEntry) -> None:
        if self.adjudication is not None and self.adjudication.isVisible():
            self.adjudication.refresh()
        extra = f" ({entry.reject_reason})" if entry.reject_reason else ""
        score = f", realism {entry.realism_score}/5" if entry.realism_score else ""
        self.host.show_status(f"Candidate {entry.candidate_id[:8]}: {entry.decision}{extra}{score}", 4000)

    def _update_actions(self) -> None:
        has = self.gallery.current_item() is not None
        for action_id in REVIEW_ACTIONS:
            self.host.action(action_id).setEnabled(has)

    # -- the candidate in the viewer -------------------------------------------------------------------------
    def _on_selected(self, item: GalleryItem | None) -> None:
        # Deferred to the next event-loop pass: recording a new candidate and the full-image repaint then never
        # add up to one long stall.
        self._shown_item = item
        self._update_actions()
        self._viewer_timer.start()
        if item is not None:
            y0, x0 = item.origin
            h, w = item.candidate.shape
            self.viewer.reveal((x0, y0, x0 + w, y0 + h))

    def set_showing_original(self, original: bool) -> None:
        """Hold-to-compare: the original image while held, the candidate again when released."""
        self.showing_original = bool(original)
        self._show_candidate()

    def _show_candidate(self) -> None:
        ws = self.workspace
        item = self._shown_item
        if item is None or ws.image is None or item.image_id != ws.image_id:
            self.viewer.set_display_override(None)
            self.viewer.set_difference_overlay(None)
            return
        if self.showing_original:
            self.viewer.set_display_override(None)
            self.viewer.set_difference_overlay(None)
            return
        self.viewer.set_display_override(self.pasted(item))
        diff = item.difference if self.gallery.show_difference else None
        self.viewer.set_difference_overlay(diff, item.origin)

    def pasted(self, item: GalleryItem) -> np.ndarray:
        """The viewer's display array with the candidate's generated pixels in place (full resolution)."""
        source = self.viewer.display_source()
        if source is None:
            raise RuntimeError("the viewer shows no image")
        out = source.copy()
        y0, x0 = item.origin
        h, w = item.candidate.shape
        region = out[y0 : y0 + h, x0 : x0 + w]
        changed = item.weight > 0
        region[changed] = item.candidate[changed].astype(out.dtype)
        return out
