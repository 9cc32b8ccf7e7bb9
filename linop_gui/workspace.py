"""The desktop app's state in one plain object, without Qt: what is open, what is shown, what is selected.

A :class:`Workspace` holds the dataset (:class:`~linop_core.catalog.Catalog`), its review session (boxes, masks,
candidates, decisions: :class:`~linop_core.review.session.ReviewSession`), the current catalog entry and its decoded
image, the selected box, the display state (VOI window, VOI function, inversion), the tool and the default hole
shape, the generator in use and the messages for the user. Widgets *observe* it through typed callback lists
(:class:`Observers`); controllers receive it with its type and change it through its methods, which notify the
observers. Nothing here imports Qt, so the state and its rules are tested without a screen.

Rules kept here, not in widgets: the selection always names an existing box of the current image (or nothing);
a new image starts with nothing selected; an edit of the annotation is one undoable step of the session and
saved at once; observers are notified only when a value really changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Generic, ParamSpec

from linop_core.catalog import Catalog, CatalogEntry
from linop_core.dicom import DicomImage, VoiWindow
from linop_core.errors import LinopError
from linop_core.review.session import ImageAnnotation, ReviewSession
from linop_core.vocab import HoleKind, Task
from linop_gui.tools import Tool

P = ParamSpec("P")
NO_MODEL = "biharmonic (no model)"


class Observers(Generic[P]):
    """A typed list of callbacks: ``connect(fn)``; ``notify(*args)`` calls each, in the order connected."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[P, None]] = []

    def connect(self, callback: Callable[P, None]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[P, None]) -> None:
        self._callbacks.remove(callback)

    def notify(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self._callbacks):  # a callback may disconnect itself
            callback(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._callbacks)


@dataclass(frozen=True)
class DisplayState:
    """How the current image is mapped to grey levels: the VOI window, the VOI LUT function, inversion."""

    window: VoiWindow | None = None
    function: str = "LINEAR"
    inverted: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """The generator in use, as the status bar, the model panel and the about box name it."""

    name: str = NO_MODEL
    version: str = "—"
    licence: str = "—"
    path: str | None = None
    device: str | None = None
    sha256: str | None = None

    @property
    def label(self) -> str:
        sha = f" {self.sha256[:8]}" if self.sha256 else ""
        return self.name + sha + (f" · {self.device}" if self.device else "")


class MessageLevel(StrEnum):
    """How much a message to the user matters: information, something skipped or refused, a failure."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Message:
    text: str
    level: MessageLevel = MessageLevel.INFO


class Workspace:
    """The state of one main window (see the module docstring). Observers, each a typed callback list:

    - ``dataset_opened(catalog, session)``;
    - ``entry_changed(entry)``: a new current entry (its image may still be loading, or unreadable);
    - ``image_changed(entry, image)``: the current entry's pixels are shown;
    - ``annotation_changed(image_id, annotation)``: boxes / masks / mode of an image changed (edit, undo, load);
    - ``selection_changed(index)``: the selected box of the current image (None: none);
    - ``display_changed(state)``, ``tool_changed(tool)``, ``hole_changed(hole)``, ``model_changed(info)``;
    - ``message(message)``: something the user should read where they look (skipped, refused, failed).
    """

    def __init__(self, *, default_hole: HoleKind = HoleKind.ELLIPSE, model: ModelInfo | None = None) -> None:
        self.catalog: Catalog | None = None
        self.session: ReviewSession | None = None
        self.entry: CatalogEntry | None = None
        self.image: DicomImage | None = None
        self.selected: int | None = None
        self.display = DisplayState()
        self.tool = Tool.PAN
        self.default_hole = HoleKind(default_hole)
        self.model = model or ModelInfo()

        self.dataset_opened: Observers[[Catalog, ReviewSession]] = Observers()
        self.entry_changed: Observers[[CatalogEntry]] = Observers()
        self.image_changed: Observers[[CatalogEntry, DicomImage]] = Observers()
        self.annotation_changed: Observers[[str, ImageAnnotation]] = Observers()
        self.selection_changed: Observers[[int | None]] = Observers()
        self.display_changed: Observers[[DisplayState]] = Observers()
        self.tool_changed: Observers[[Tool]] = Observers()
        self.hole_changed: Observers[[HoleKind]] = Observers()
        self.model_changed: Observers[[ModelInfo]] = Observers()
        self.message: Observers[[Message]] = Observers()

    # -- dataset ---------------------------------------------------------------------------------------------
    def open_dataset(self, catalog: Catalog, session: ReviewSession) -> None:
        """A newly opened dataset and its session; nothing is shown until an entry is chosen."""
        self.catalog, self.session = catalog, session
        self.entry, self.image, self.selected = None, None, None
        self.dataset_opened.notify(catalog, session)

    # -- image -----------------------------------------------------------------------------------------------
    @property
    def image_id(self) -> str | None:
        return self.entry.image_id if self.entry is not None else None

    def choose_entry(self, entry: CatalogEntry) -> None:
        """The entry to show next. An unreadable entry has no image; a readable one keeps the previous image on
        screen until its own pixels arrive (:meth:`show_image`)."""
        changed = self.entry is None or self.entry.image_id != entry.image_id
        self.entry = entry
        if not entry.ok:
            self.image = None
        if changed:
            self._set_selected(None)
        self.entry_changed.notify(entry)

    def show_image(self, entry: CatalogEntry, image: DicomImage) -> None:
        """``image`` (the decoded pixels of ``entry``) is the current image now."""
        if self.entry is None or self.entry.image_id != entry.image_id:
            self._set_selected(None)
        self.entry, self.image = entry, image
        self.image_changed.notify(entry, image)

    def drop_image(self) -> None:
        """The current entry's pixels could not be decoded: no image is shown."""
        self.image = None
        self._set_selected(None)

    @property
    def image_ready(self) -> bool:
        """True when the image on screen is the current entry's (not the previous one while the next loads)."""
        if self.image is None or self.entry is None:
            return False
        return _same_file(self.image.meta.path, self.entry.path)

    # -- annotation ------------------------------------------------------------------------------------------
    def annotation(self, image_id: str | None = None) -> ImageAnnotation:
        """The annotation of ``image_id`` (default: the current image) from the session, as a copy; empty
        without a session or an image."""
        image_id = image_id if image_id is not None else self.image_id
        if self.session is None or image_id is None:
            return ImageAnnotation()
        if image_id not in self.session.annotations:
            return ImageAnnotation(mode=self.task_of(image_id))  # nothing drawn yet: the image's own task
        return self.session.annotation(image_id)

    def task_of(self, image_id: str) -> Task:
        """The synthesis an image is for (a chest X-ray: outpainting), inpainting when nothing says otherwise."""
        if self.catalog is None:
            return Task.INPAINT
        try:
            entry = self.catalog.by_id(image_id)
        except LinopError:
            return Task.INPAINT
        return self.catalog.task_of(entry) or Task.INPAINT

    def commit(self, annotation: ImageAnnotation, selected: int | None = None) -> bool:
        """Replaces the current image's annotation (one undoable, saved step) and selects box ``selected``;
        False (nothing changed) without a session or an image."""
        if self.session is None or self.entry is None or self.image is None:
            return False
        image_id = self.entry.image_id
        self.session.apply(image_id, annotation)
        previous, self.selected = self.selected, _valid_index(selected, annotation)
        self.annotation_changed.notify(image_id, self.session.annotation(image_id))
        if self.selected != previous:
            self.selection_changed.notify(self.selected)
        return True

    def annotation_replaced(self, image_id: str) -> None:
        """The session changed ``image_id``'s annotation itself (undo, redo, a loaded file, a batch run)."""
        annotation = self.annotation(image_id)
        previous = self.selected
        if image_id == self.image_id:
            self.selected = _valid_index(self.selected, annotation)
        self.annotation_changed.notify(image_id, annotation)
        if self.selected != previous:
            self.selection_changed.notify(self.selected)

    # -- selection -------------------------------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        """Selects box ``index`` of the current image; an index that names no box selects nothing."""
        self._set_selected(_valid_index(index, self.annotation()))

    def _set_selected(self, index: int | None) -> None:
        if index != self.selected:
            self.selected = index
            self.selection_changed.notify(index)

    # -- display, tools, model -------------------------------------------------------------------------------
    def set_display(self, state: DisplayState) -> None:
        if state != self.display:
            self.display = state
            self.display_changed.notify(state)

    def set_tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)
        if tool != self.tool:
            self.tool = tool
            self.tool_changed.notify(tool)

    def set_default_hole(self, hole: HoleKind | str) -> None:
        hole = HoleKind(hole)
        if hole != self.default_hole:
            self.default_hole = hole
            self.hole_changed.notify(hole)

    def set_model(self, info: ModelInfo) -> None:
        if info != self.model:
            self.model = info
            self.model_changed.notify(info)

    # -- messages --------------------------------------------------------------------------------------------
    def tell(self, text: str, level: MessageLevel = MessageLevel.INFO) -> None:
        """A message for the user (shown in the viewer's message bar)."""
        self.message.notify(Message(text, MessageLevel(level)))

    def retract_message(self) -> None:
        """The last hint or warning no longer applies (an empty message; errors stay until closed)."""
        self.message.notify(Message(""))


def _valid_index(index: int | None, annotation: ImageAnnotation) -> int | None:
    return index if index is not None and 0 <= index < len(annotation.boxes) else None


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return str(a) == str(b)
