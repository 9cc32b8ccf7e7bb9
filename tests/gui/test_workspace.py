"""The Qt-free workspace: what it holds, the rules it keeps, and who hears about changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from linop_core.catalog import Catalog
from linop_core.dicom import VoiWindow, read_dicom
from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession
from linop_core.vocab import HoleKind, Task
from linop_gui.tools import Tool
from linop_gui.workspace import DisplayState, Message, MessageLevel, ModelInfo, Observers, Workspace


def test_the_workspace_imports_no_qt() -> None:
    code = ("import sys, linop_gui.workspace; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_observers_are_called_in_order_and_can_leave() -> None:
    calls: list[tuple[str, int]] = []
    observers: Observers[[int]] = Observers()

    def first(n: int) -> None:
        calls.append(("first", n))
        observers.disconnect(first)  # leaving while being notified is fine

    observers.connect(first)
    observers.connect(lambda n: calls.append(("second", n)))
    observers.notify(1)
    observers.notify(2)
    assert calls == [("first", 1), ("second", 1), ("second", 2)] and len(observers) == 1


@pytest.fixture
def opened(mammo_root: Path, tmp_path: Path) -> tuple[Workspace, list[tuple]]:
    workspace = Workspace()
    heard: list[tuple] = []
    workspace.dataset_opened.connect(lambda catalog, session: heard.append(("dataset", catalog.kind)))
    workspace.entry_changed.connect(lambda entry: heard.append(("entry", entry.image_id)))
    workspace.image_changed.connect(lambda entry, image: heard.append(("image", entry.image_id)))
    workspace.annotation_changed.connect(lambda image_id, ann: heard.append(("annotation", image_id, len(ann.boxes))))
    workspace.selection_changed.connect(lambda index: heard.append(("selection", index)))
    workspace.display_changed.connect(lambda state: heard.append(("display", state)))
    workspace.tool_changed.connect(lambda tool: heard.append(("tool", tool)))
    workspace.hole_changed.connect(lambda hole: heard.append(("hole", hole)))
    workspace.model_changed.connect(lambda info: heard.append(("model", info.name)))
    workspace.message.connect(lambda message: heard.append(("message", message)))
    catalog = Catalog.open(mammo_root)
    workspace.open_dataset(catalog, ReviewSession.open(mammo_root, tmp_path / "session"))
    return workspace, heard


def test_dataset_image_and_annotation_live_in_the_workspace(opened) -> None:
    workspace, heard = opened
    assert heard == [("dataset", "mammo")] and workspace.entry is None and workspace.annotation().boxes == []
    first, second = workspace.catalog.entries[:2]
    workspace.choose_entry(first)
    assert workspace.image is None and not workspace.image_ready  # chosen, still loading
    workspace.show_image(first, read_dicom(first.path))
    assert workspace.image_ready and workspace.image_id == first.image_id

    box = LesionBox((10.0, 10.0, 50.0, 50.0), HoleKind.RECTANGLE)
    assert workspace.commit(ImageAnnotation(boxes=[box]), selected=0)
    assert workspace.selected == 0 and workspace.session.annotation(first.image_id).boxes == [box]
    assert heard[-2:] == [("annotation", first.image_id, 1), ("selection", 0)]
    # The next image is chosen while its pixels load: the old image stays, the selection does not.
    workspace.choose_entry(second)
    assert workspace.selected is None and workspace.image is not None and not workspace.image_ready
    assert heard[-2:] == [("selection", None), ("entry", second.image_id)]
    assert workspace.annotation(first.image_id).boxes == [box] and workspace.annotation().boxes == []


def test_the_selection_names_a_box_or_nothing(opened) -> None:
    workspace, heard = opened
    entry = workspace.catalog.entries[0]
    workspace.show_image(entry, read_dicom(entry.path))
    boxes = [LesionBox((10.0, 10.0, 50.0, 50.0)), LesionBox((60.0, 60.0, 90.0, 90.0))]
    workspace.commit(ImageAnnotation(boxes=boxes), selected=1)
    heard.clear()
    workspace.select(1)
    assert heard == []  # unchanged: nobody is told
    workspace.select(5)
    assert workspace.selected is None and heard == [("selection", None)]
    workspace.select(0)
    # Undo in the session: the workspace clamps the selection to the boxes that are left.
    workspace.commit(ImageAnnotation(boxes=boxes[:1]), selected=0)
    workspace.session.undo()
    workspace.annotation_replaced(entry.image_id)
    assert workspace.selected == 0 and len(workspace.annotation().boxes) == 2
    workspace.session.undo()
    workspace.session.undo()
    workspace.annotation_replaced(entry.image_id)
    assert workspace.selected is None and heard[-1] == ("selection", None)


def test_display_tool_hole_model_and_messages(opened) -> None:
    workspace, heard = opened
    heard.clear()
    state = DisplayState(VoiWindow(2000.0, 500.0, "manual"), "SIGMOID", True)
    workspace.set_display(state)
    workspace.set_display(state)
    workspace.set_tool("box")
    workspace.set_default_hole("brush")
    workspace.set_model(ModelInfo(name="MAT mat-small", path="/m.pt", sha256="abcdef0123456789"))
    workspace.tell("box 2 lies outside the breast", MessageLevel.WARNING)
    assert heard == [("display", state), ("tool", Tool.BOX), ("hole", HoleKind.BRUSH), ("model", "MAT mat-small"),
                     ("message", Message("box 2 lies outside the breast", MessageLevel.WARNING))]
    assert workspace.display.inverted and workspace.tool is Tool.BOX and workspace.default_hole is HoleKind.BRUSH
    assert workspace.model.label.startswith("MAT mat-small abcdef01")
    with pytest.raises(ValueError):
        workspace.set_tool("lasso")


def test_commit_needs_an_image(opened) -> None:
    workspace, _ = opened
    assert not workspace.commit(ImageAnnotation(mode=Task.OUTPAINT))
    assert workspace.session.annotations == {}
