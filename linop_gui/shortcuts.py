"""Every keyboard shortcut in one table, and the reference dialog (H) generated from it.

Bindings follow what radiologists and annotators already know: OHIF (1-4 window presets, I invert,
B brush, E eraser, Esc cancel), 3D Slicer (R reset) and labelme (A/D previous/next image, Ctrl+R box).
The main window builds its QActions from this table (and binds the *hold* keys, which act while held, from
it too), so the dialog can never disagree with the keys. A key means one thing everywhere in the window: the
review keys (Y approve, X reject, Alt+1-5 realism, M difference, Left/Right candidates, hold Tab/Space for the
original) work in the viewer and in the gallery alike and clash with nothing (:func:`duplicate_keys`). Text
fields get typed keys only while the user is typing in them (Esc or Enter returns to the image).

Each spec belongs to a :class:`ShortcutContext`: the main window, or the reading view of a reader study (where
1-5 are the answers, so the window presets move to Ctrl+1-4). A key means one thing per context; each window
builds its actions and its H reference from its own context (:func:`for_context`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)


class ShortcutContext(StrEnum):
    """Where a key acts: the main window, or the reading view of a reader study."""

    MAIN = "Main window"
    READER = "Reader study"


@dataclass(frozen=True)
class ShortcutSpec:
    """One action: a stable id, its menu text, keys (first is shown in menus), group, icon and tip."""

    action_id: str
    text: str
    keys: tuple[str, ...] = ()
    group: str = "General"
    icon: str | None = None
    tip: str = ""
    checkable: bool = False
    hold: bool = False  # acts while the key is held (pressed: on, released: off), not as a QAction
    context: ShortcutContext = ShortcutContext.MAIN


_R = ShortcutContext.READER
# The reading view of ``linop-gui --study``: digits answer (1 certainly real ... 5 certainly synthetic, as
# linop_core.study.Confidence), R / S give the forced choice after 3, the view keys are the main window's where
# they do not clash (presets move to Ctrl+1-4).
READER_SHORTCUTS: tuple[ShortcutSpec, ...] = (
    *(ShortcutSpec(f"answer_{n}", f"Answer {n}: {text}", (str(n),), "Answer", None, tip, context=_R)
      for n, text, tip in (
          (1, "certainly real", "Certainly real; saved at once, then the next case"),
          (2, "probably real", "Probably real; saved at once, then the next case"),
          (3, "unsure", "Unsure; then R or S says which way you lean (the forced choice)"),
          (4, "probably synthetic", "Probably synthetic; saved at once, then the next case"),
          (5, "certainly synthetic", "Certainly synthetic; saved at once, then the next case"))),
    ShortcutSpec("choose_real", "Unsure, leaning &real", ("R",), "Answer", None,
                 "After 3 (unsure): the forced choice is real", context=_R),
    ShortcutSpec("choose_synthetic", "Unsure, leaning &synthetic", ("S",), "Answer", None,
                 "After 3 (unsure): the forced choice is synthetic", context=_R),
    ShortcutSpec("cancel_choice", "Cancel the unsure answer", ("Esc",), "Answer", None,
                 "Leave the forced choice without answering", context=_R),
    ShortcutSpec("clear_mark", "Clear the &mark", ("Del", "Backspace"), "Answer", None,
                 "Remove the lesion mark (a click on the image places it, a drag moves it)", context=_R),
    ShortcutSpec("case_back", "&Back", ("Left", "PgUp"), "Cases", "prev",
                 "The previous case (its earlier answer is shown; answering again replaces it)", context=_R),
    ShortcutSpec("case_forward", "&Forward", ("Right", "PgDown"), "Cases", "next",
                 "The next case in your order, answered or not", context=_R),
    ShortcutSpec("case_skip", "S&kip for now", ("K",), "Cases", None,
                 "Leave this case unanswered and go to the next unanswered one; it comes round again", context=_R),
    ShortcutSpec("pause", "&Pause and close", ("Ctrl+Q",), "Cases", None,
                 "Every answer is saved already; opening the study again resumes here", context=_R),
    *(ShortcutSpec(f"read_preset_{n}", f"Window preset {n}", (f"Ctrl+{n}",), "View", None, context=_R)
      for n in range(1, 5)),
    ShortcutSpec("read_invert", "&Invert", ("I",), "View", "invert", "Invert the grey scale", True, context=_R),
    ShortcutSpec("read_fit", "&Fit to window", ("F",), "View", "fit", "Zoom the image to fit the view", context=_R),
    ShortcutSpec("read_one_to_one", "Actual pixels (1:1)", ("Ctrl+0", "Z"), "View", "one_to_one",
                 "One image pixel per screen pixel", context=_R),
    ShortcutSpec("read_zoom_in", "Zoom in", ("=", "+"), "View", "zoom", context=_R),
    ShortcutSpec("read_zoom_out", "Zoom out", ("-",), "View", context=_R),
    ShortcutSpec("read_reset_view", "Reset window and zoom", ("Home",), "View", "reset",
                 "The case's own window and fit", context=_R),
    ShortcutSpec("read_full_screen", "Full screen", ("F11",), "View", None, "", True, context=_R),
    ShortcutSpec("read_shortcuts", "&Keyboard shortcuts", ("H", "F1"), "Help", "keyboard", context=_R),
)

SHORTCUTS: tuple[ShortcutSpec, ...] = (
    # File
    ShortcutSpec("open", "&Open dataset or folder…", ("Ctrl+O",), "File", "open",
                 "Open a VinDr-Mammo / VinDr-CXR root or a folder of DICOM files"),
    ShortcutSpec("open_file", "Open DICOM &file…", ("Ctrl+Shift+O",), "File", None, "Open one DICOM file"),
    ShortcutSpec("save_annotations", "&Save boxes and masks…", ("Ctrl+S",), "File", "save",
                 "Save this dataset's boxes and hole masks as JSON next to the session"),
    ShortcutSpec("load_annotations", "&Load boxes and masks…", ("Ctrl+L",), "File", "load",
                 "Load boxes and hole masks from a JSON file"),
    ShortcutSpec("quit", "&Quit", ("Ctrl+Q",), "File"),
    # Navigation
    ShortcutSpec("prev_image", "&Previous image", ("A", "PgUp"), "Navigate", "prev", "Previous image in the list"),
    ShortcutSpec("next_image", "&Next image", ("D", "PgDown"), "Navigate", "next", "Next image in the list"),
    ShortcutSpec("first_image", "First image", ("Home",), "Navigate"),
    ShortcutSpec("last_image", "Last image", ("End",), "Navigate"),
    ShortcutSpec("hanging", "&Four-view hanging", ("Ctrl+G",), "Navigate", "hanging",
                 "Mammography: RCC/LCC over RMLO/LMLO, back to back", True),
    ShortcutSpec("focus_filter", "Find image…", ("Ctrl+F",), "Navigate", None, "Jump to the id filter"),
    # View
    ShortcutSpec("preset_1", "Window preset 1", ("1",), "View"),
    ShortcutSpec("preset_2", "Window preset 2", ("2",), "View"),
    ShortcutSpec("preset_3", "Window preset 3", ("3",), "View"),
    ShortcutSpec("preset_4", "Window preset 4", ("4",), "View"),
    ShortcutSpec("invert", "&Invert", ("I",), "View", "invert", "Invert the grey scale", True),
    ShortcutSpec("fit", "&Fit to window", ("F",), "View", "fit", "Zoom the image to fit the view"),
    ShortcutSpec("one_to_one", "Actual pixels (1:1)", ("Ctrl+0", "Z"), "View", "one_to_one",
                 "One image pixel per screen pixel"),
    ShortcutSpec("zoom_in", "Zoom in", ("=", "+"), "View", "zoom"),
    ShortcutSpec("zoom_out", "Zoom out", ("-",), "View"),
    ShortcutSpec("reset_view", "&Reset window and zoom", ("R",), "View", "reset",
                 "Default window of the file and fit"),
    ShortcutSpec("findings", "Show &findings", ("L",), "View", "findings", "Show the dataset's labelled boxes", True),
    ShortcutSpec("overlays", "Show corner &overlays", ("O",), "View", None, "Laterality, view, window, zoom", True),
    ShortcutSpec("tags", "DICOM &tags…", ("T",), "View", "tags", "Browse every DICOM tag of this image"),
    ShortcutSpec("theme", "Dark theme", ("Ctrl+Shift+T",), "View", "theme", "Switch light / dark theme", True),
    # Tools
    ShortcutSpec("tool_pan", "&Pan / select", ("P",), "Tools", "cursor",
                 "Left-drag pans, click selects a box; right-drag always sets window/level", True),
    ShortcutSpec("tool_wl", "&Window/level", ("W",), "Tools", "wl",
                 "Left-drag: horizontal = width, vertical = level", True),
    ShortcutSpec("tool_box", "&Box", ("Ctrl+R", "N"), "Tools", "box", "Drag to draw a box", True),
    ShortcutSpec("tool_brush", "&Brush", ("B",), "Tools", "brush", "Paint the hole of the selected box", True),
    ShortcutSpec("tool_eraser", "&Eraser", ("E",), "Tools", "eraser", "Erase the painted hole", True),
    ShortcutSpec("brush_smaller", "Smaller brush", ("[",), "Tools"),
    ShortcutSpec("brush_larger", "Larger brush", ("]",), "Tools"),
    ShortcutSpec("cancel", "Cancel tool", ("Esc",), "Tools", None, "Cancel the current drag and go back to Pan"),
    # Annotate
    ShortcutSpec("mode_inpaint", "&Inpainting mode", ("Ctrl+1",), "Annotate", "inpaint",
                 "Draw mass boxes; a lesion is generated inside", True),
    ShortcutSpec("mode_outpaint", "&Outpainting mode", ("Ctrl+2",), "Annotate", "outpaint",
                 "Select abnormal regions; new anatomy is generated around them", True),
    ShortcutSpec("hole_ellipse", "Hole: ellipse", ("Shift+E",), "Annotate", "ellipse", "", True),
    ShortcutSpec("hole_rectangle", "Hole: rectangle", ("Shift+R",), "Annotate", "rectangle", "", True),
    ShortcutSpec("hole_brush", "Hole: brush", ("Shift+B",), "Annotate", "brush", "", True),
    ShortcutSpec("delete_box", "&Delete box", ("Del", "Backspace"), "Annotate", "delete"),
    ShortcutSpec("undo", "&Undo", ("Ctrl+Z",), "Annotate", "undo"),
    ShortcutSpec("redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Annotate", "redo"),
    # Generate (handlers come from the generation panel)
    ShortcutSpec("generate", "&Generate", ("G",), "Generate", "generate",
                 "Generate candidates for the boxes of this image"),
    # Review (handlers come from the generation panel; enabled while a candidate is selected)
    ShortcutSpec("approve", "&Approve candidate", ("Y",), "Review", None,
                 "Approve the selected candidate (exports take it) and move on to the next pending one"),
    ShortcutSpec("reject", "&Reject candidate…", ("X",), "Review", None,
                 "Reject the selected candidate; a menu asks for the reason"),
    *(ShortcutSpec(f"score_{n}", f"Realism score {n}", (f"Alt+{n}",), "Review", None,
                   "How real the candidate looks, 1 (obviously synthetic) to 5 (indistinguishable)")
      for n in range(1, 6)),
    ShortcutSpec("score_clear", "Clear the realism score", ("Alt+0",), "Review"),
    ShortcutSpec("difference", "&Difference map", ("M",), "Review", None,
                 "Show |candidate − original| over the image, full size", True),
    ShortcutSpec("prev_candidate", "Previous candidate", ("Left",), "Review"),
    ShortcutSpec("next_candidate", "Next candidate", ("Right",), "Review"),
    ShortcutSpec("adjudicate", "A&djudicate disagreements…", ("Ctrl+J",), "Review", None,
                 "The candidates readers decided differently on, every reader's decision, and a decision to settle "
                 "them"),
    ShortcutSpec("compare_original", "Show the original (hold)", ("Tab", "Space"), "Review", None,
                 "While the key is held the viewer shows the original image instead of the candidate", hold=True),
    # Help
    ShortcutSpec("shortcuts", "&Keyboard shortcuts", ("H", "F1"), "Help", "keyboard"),
    ShortcutSpec("about", "&About LINOP Studio", (), "Help", "about"),
    *READER_SHORTCUTS,
)


def for_context(context: ShortcutContext, specs: Iterable[ShortcutSpec] = SHORTCUTS) -> tuple[ShortcutSpec, ...]:
    """The specs of one window: its actions and its H reference."""
    return tuple(spec for spec in specs if spec.context is context)


MAIN_SHORTCUTS = for_context(ShortcutContext.MAIN)


def find(action_id: str, specs: Iterable[ShortcutSpec] = MAIN_SHORTCUTS) -> ShortcutSpec:
    for spec in specs:
        if spec.action_id == action_id:
            return spec
    raise KeyError(f"no shortcut spec {action_id!r}")


def key_sequences(spec: ShortcutSpec) -> list[QKeySequence]:
    return [QKeySequence(k) for k in spec.keys]


def key_text(spec: ShortcutSpec) -> str:
    """The keys as the user reads them (native names), e.g. ``"Tab (hold), Space (hold)"``."""
    names = [QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in spec.keys]
    return ", ".join(f"{n} (hold)" if spec.hold else n for n in names)


def duplicate_keys(specs: Iterable[ShortcutSpec] = SHORTCUTS) -> dict[str, list[str]]:
    """Keys bound to more than one action of one context (normalised through QKeySequence), as
    ``{"Reader study: 1": [ids]}`` (no prefix for the main window); empty when the table is sound."""
    seen: dict[str, list[str]] = {}
    for spec in specs:
        for key in spec.keys:
            text = QKeySequence(key).toString(QKeySequence.SequenceFormat.PortableText)
            where = "" if spec.context is ShortcutContext.MAIN else f"{spec.context}: "
            seen.setdefault(where + text, []).append(spec.action_id)
    return {k: v for k, v in seen.items() if len(v) > 1}


MOUSE_BINDINGS: tuple[tuple[str, str], ...] = (
    ("Right-drag", "Window / level (horizontal = width, vertical = level), in every tool"),
    ("Middle-drag", "Pan, in every tool"),
    ("Wheel", "Zoom around the pointer"),
    ("Left-drag", "Depends on the tool: pan, window/level, draw a box, paint or erase"),
    ("Click a box", "Select it; drag its edges or corner handles to resize"),
    ("Click a finding", "Outpainting: select / deselect that abnormal region"),
    ("Double-click (four-view)", "Open that view alone"),
)


READER_MOUSE_BINDINGS: tuple[tuple[str, str], ...] = (
    ("Click", "Mark where the lesion is (optional); drag the mark to move it"),
    ("Right-drag", "Window / level (horizontal = width, vertical = level)"),
    ("Left-drag, middle-drag", "Pan"),
    ("Wheel", "Zoom around the pointer"),
)


class ShortcutDialog(QDialog):
    """Searchable reference of every key and mouse binding."""

    def __init__(self, specs: Iterable[ShortcutSpec] = MAIN_SHORTCUTS, parent: QWidget | None = None,
                 mouse_bindings: Iterable[tuple[str, str]] = MOUSE_BINDINGS) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 620)
        layout = QVBoxLayout(self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search actions or keys…")
        self.search.setClearButtonEnabled(True)
        layout.addWidget(self.search)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Action", "Keys"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.tree)
        groups: dict[str, QTreeWidgetItem] = {}
        for spec in specs:
            if not spec.keys:
                continue
            group = groups.get(spec.group)
            if group is None:
                group = QTreeWidgetItem(self.tree, [spec.group])
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                group.setFirstColumnSpanned(True)
                groups[spec.group] = group
            item = QTreeWidgetItem(group, [spec.text.replace("&", "").rstrip("…"), key_text(spec)])
            item.setToolTip(0, spec.tip)
            item.setData(0, Qt.ItemDataRole.UserRole, f"{spec.group} {spec.tip}".lower())
        mouse = QTreeWidgetItem(self.tree, ["Mouse"])
        font = mouse.font(0)
        font.setBold(True)
        mouse.setFont(0, font)
        for gesture, meaning in mouse_bindings:
            QTreeWidgetItem(mouse, [meaning, gesture])
        self.tree.expandAll()
        self.tree.setIndentation(12)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.search.textChanged.connect(self._filter)

    def _filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            visible = 0
            for j in range(group.childCount()):
                child = group.child(j)
                extra = str(child.data(0, Qt.ItemDataRole.UserRole) or "")
                match = not needle or any(needle in t for t in (child.text(0).lower(), child.text(1).lower(), extra))
                child.setHidden(not match)
                visible += match
            group.setHidden(visible == 0)

    def visible_actions(self) -> list[str]:
        """Texts of the rows currently shown (for tests)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            if group.isHidden():
                continue
            out.extend(group.child(j).text(0) for j in range(group.childCount()) if not group.child(j).isHidden())
        return out

