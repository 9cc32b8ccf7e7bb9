"""Edits of the current image's annotation that come from commands rather than the mouse: the task mode, the hole
shape, the outpainting margin, undo / redo, and saving / loading boxes and masks as a file. Each goes through the
workspace (one undoable, saved step of the review session)."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from linop_core.errors import LinopError
from linop_core.review.session import ImageAnnotation
from linop_core.vocab import HoleKind, Task
from linop_gui import tools
from linop_gui.settings import Settings
from linop_gui.workspace import Workspace

StatusFn = Callable[[str, int], None]


class AnnotationEditor:
    """Command edits of the workspace's annotation. ``show_image(image_id)`` brings another image on screen (False
    when the browser's filters hide it); ``status(text, ms)`` writes the status bar."""

    def __init__(self, workspace: Workspace, settings: Settings, *, parent: QWidget,
                 show_image: Callable[[str], bool], status: StatusFn) -> None:
        self.workspace = workspace
        self.settings = settings
        self._parent = parent
        self._show_image = show_image
        self._status = status

    def set_mode(self, mode: Task | str) -> None:
        mode = Task(mode)
        annotation = self.workspace.annotation()
        if annotation.mode is mode:
            return
        # A fresh outpainting selection starts from the reader's usual margin.
        fresh = mode is Task.OUTPAINT and not annotation.boxes
        margin = self.settings.outpaint_margin if fresh else annotation.margin
        if self.workspace.commit(ImageAnnotation(mode=mode, boxes=annotation.boxes, margin=margin),
                                 self.workspace.selected):
            self._status(f"{mode.capitalize()}ing mode", 3000)

    def set_hole(self, hole: HoleKind | str) -> None:
        """Hole shape of the selected box, and the default for new boxes."""
        hole = HoleKind(hole)
        self.workspace.set_default_hole(hole)
        self.settings.hole_shape = hole
        ws = self.workspace
        index = ws.selected
        annotation = ws.annotation()
        if ws.session is None or ws.image is None or index is None or annotation.mode is not Task.INPAINT:
            return
        new = tools.set_hole(annotation, index, hole, ws.image.pixels.shape, ws.session.save_brush)
        if new is not annotation:
            ws.commit(new, index)

    def set_margin(self, margin: float) -> None:
        annotation = self.workspace.annotation()
        self.settings.outpaint_margin = margin
        if annotation.margin != margin:
            self.workspace.commit(ImageAnnotation(mode=annotation.mode, boxes=annotation.boxes, margin=float(margin)),
                                  self.workspace.selected)

    # -- history ---------------------------------------------------------------------------------------------
    def undo(self) -> None:
        self._undo_redo(undo=True)

    def redo(self) -> None:
        self._undo_redo(undo=False)

    def _undo_redo(self, *, undo: bool) -> None:
        session = self.workspace.session
        if session is None:
            return
        image_id = session.undo() if undo else session.redo()
        if image_id is None:
            self._status("Nothing to undo" if undo else "Nothing to redo", 3000)
            return
        if image_id == self.workspace.image_id:
            self.workspace.annotation_replaced(image_id)
        elif not self._show_image(image_id):
            verb = "Undid" if undo else "Redid"
            self._status(f"{verb} an edit of {image_id} (hidden by the filters)", 5000)

    # -- files -----------------------------------------------------------------------------------------------
    def save_dialog(self) -> None:
        session = self.workspace.session
        if session is None:
            return
        default = str(tools.default_annotation_file(session))
        path, _ = QFileDialog.getSaveFileName(self._parent, "Save boxes and masks", default, "JSON (*.json)")
        if path:
            n = tools.save_annotations(path, session)
            self._status(f"Saved boxes and masks of {n} image(s) to {path}", 6000)

    def load_dialog(self) -> None:
        session = self.workspace.session
        if session is None or self.workspace.catalog is None:
            return
        default = str(tools.default_annotation_file(session))
        path, _ = QFileDialog.getOpenFileName(self._parent, "Load boxes and masks", default, "JSON (*.json)")
        if path:
            self.load(path)

    def load(self, path: str | os.PathLike[str]) -> list[str]:
        """Applies a boxes-and-masks file to the images of this dataset; returns the image ids it changed."""
        session, catalog = self.workspace.session, self.workspace.catalog
        if session is None or catalog is None:
            return []
        try:
            applied = tools.load_annotations(path, session, (e.image_id for e in catalog.entries))
        except LinopError as exc:
            QMessageBox.warning(self._parent, "Cannot load boxes and masks", str(exc))
            return []
        if self.workspace.image_id in applied:
            self.workspace.annotation_replaced(self.workspace.image_id)  # type: ignore[arg-type]
        self._status(f"Loaded boxes and masks of {len(applied)} image(s)", 6000)
        return applied
