"""Review in the main window: the selected candidate in the viewer at full size, the review keys meaning one thing
wherever the focus is, hold-to-compare, the difference map, focus and Esc, and the shortcut table behind H."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from shortcut_checks import listed_and_bound_keys

from linop_gui.display import display_array
from linop_gui.review import ReviewController
from linop_gui.tools import Tool
from linop_gui.worker import BackgroundWorker


def key(qtbot, k: Qt.Key, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key press and release delivered like a real one: to the widget with the keyboard focus."""
    QTest.keyClick(QApplication.focusWidget(), k, modifiers)
    qtbot.wait(5)


def click_image(qtbot, viewer) -> None:
    h, w = viewer.image.pixels.shape
    QTest.mouseClick(viewer.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(*viewer.map_image_to_widget(w * 0.5, h * 0.5)))


@pytest.fixture
def reviewing(qtbot, make_window, mammo_root: Path, settings):
    """A main window on the phantom dataset with three stored candidates of the first image in its gallery."""
    window = make_window(mammo_root)
    io = BackgroundWorker("test-io")
    review = ReviewController(window.workspace, window, window.viewer, io, settings, window)
    ws = window.workspace
    image = ws.image
    h, w = image.pixels.shape
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - h // 2) ** 2 + (xx - w // 3) ** 2 < (min(h, w) // 10) ** 2
    generated = disc.astype(np.float32)
    for seed in range(3):
        pixels = image.pixels.copy()
        pixels[disc] = pixels.max() - 50 * seed
        ws.session.add_candidate(image_id=ws.image_id, box_index=0, seed=seed, engine="biharmonic", pixels=pixels,
                                 generated=generated)
    review.show_image(ws.entry, image)
    qtbot.waitUntil(lambda: len(review.gallery.items) == 3, timeout=20_000)
    qtbot.waitUntil(lambda: window.viewer._override is not None, timeout=5_000)
    yield window, review
    io.shutdown()


def shown_full_size(viewer) -> np.ndarray:
    viewer.one_to_one()
    assert viewer.shown_factor() == 1
    return np.asarray(viewer.image_item.image)


def test_the_viewer_has_the_keyboard_and_esc_leaves_text_fields(qtbot, make_window, mammo_root: Path) -> None:
    window = make_window(mammo_root)
    viewer, search = window.viewer, window.browser.search
    assert QApplication.focusWidget() is viewer  # at start: not the filter
    first = window.workspace.entry
    with qtbot.waitSignal(window.image_changed, timeout=20_000):
        key(qtbot, Qt.Key.Key_D)
    assert search.text() == "" and window.workspace.entry is not first
    key(qtbot, Qt.Key.Key_N)
    assert viewer.tool == Tool.BOX and search.text() == ""
    # Ctrl+F: the filter takes typed text; Esc hands the keyboard back to the image, the text stays.
    key(qtbot, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is search
    for k in (Qt.Key.Key_Z, Qt.Key.Key_Z):
        key(qtbot, k)
    assert search.text() == "zz"
    key(qtbot, Qt.Key.Key_Escape)
    assert QApplication.focusWidget() is viewer and search.text() == "zz" and viewer.tool == Tool.BOX
    key(qtbot, Qt.Key.Key_Escape)  # now Esc is the Cancel command: back to Pan
    assert viewer.tool == Tool.PAN
    window.browser.clear_filters()
    # A click on the image takes the keyboard from any field.
    search.setFocus()
    qtbot.waitUntil(search.hasFocus)
    click_image(qtbot, viewer)
    assert QApplication.focusWidget() is viewer
    # A number field has no use for letters: N still picks the box tool, the value does not change.
    window.panel.brush.setFocus()
    qtbot.waitUntil(window.panel.brush.hasFocus)
    value = window.panel.brush.value()
    key(qtbot, Qt.Key.Key_N)
    assert viewer.tool == Tool.BOX and window.panel.brush.value() == value
    # Enter after typing a value hands the keyboard back to the image.
    key(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is viewer, timeout=2000)


def test_the_selected_candidate_is_shown_full_size_and_tab_holds_the_original(qtbot, reviewing) -> None:
    window, review = reviewing
    viewer = window.viewer
    item = review.gallery.current_item()
    y0, x0 = item.origin
    h, w = item.candidate.shape
    changed = item.weight > 0
    np.testing.assert_array_equal(shown_full_size(viewer)[y0 : y0 + h, x0 : x0 + w][changed],
                                  item.candidate[changed])
    original = display_array(window.workspace.image)
    click_image(qtbot, viewer)
    for hold in (Qt.Key.Key_Tab, Qt.Key.Key_Space):
        QTest.keyPress(viewer, hold)
        np.testing.assert_array_equal(np.asarray(viewer.image_item.image), original)
        assert QApplication.focusWidget() is viewer  # Tab did not move the keyboard focus
        QTest.keyRelease(viewer, hold)
        np.testing.assert_array_equal(np.asarray(viewer.image_item.image)[y0 : y0 + h, x0 : x0 + w][changed],
                                      item.candidate[changed])
    # Without a candidate Tab moves between fields as usual.
    review.gallery.clear(None)
    qtbot.wait(10)
    QTest.keyClick(viewer, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is not viewer


def test_review_keys_mean_one_thing_in_the_viewer_and_the_gallery(qtbot, reviewing) -> None:
    window, review = reviewing
    viewer, gallery, session = window.viewer, review.gallery, window.workspace.session
    first, second, third = (i.candidate_id for i in gallery.items)
    click_image(qtbot, viewer)
    key(qtbot, Qt.Key.Key_2)  # a window preset, not a realism score
    assert viewer.preset_index == 1 and session.candidates[first].realism_score is None
    key(qtbot, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)
    assert session.candidates[first].realism_score == 3
    key(qtbot, Qt.Key.Key_Y)
    assert session.candidates[first].decision == "approved" and gallery.current_item().candidate_id == second
    key(qtbot, Qt.Key.Key_X)
    assert gallery.reason_menu.isVisible()
    QTest.keyClick(gallery.reason_menu, Qt.Key.Key_S)  # the menu's "&Seam"
    assert session.candidates[second].decision == "rejected" and session.candidates[second].reject_reason == "seam"
    assert gallery.current_item().candidate_id == third and not gallery.reason_menu.isVisible()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is viewer, timeout=2000)
    key(qtbot, Qt.Key.Key_Left)
    assert gallery.current_item().candidate_id == second
    # The same keys with the gallery's list focused.
    gallery.list.setFocus()
    qtbot.waitUntil(gallery.list.hasFocus)
    key(qtbot, Qt.Key.Key_1)
    assert viewer.preset_index == 0 and session.candidates[second].realism_score is None
    key(qtbot, Qt.Key.Key_5, Qt.KeyboardModifier.AltModifier)
    assert session.candidates[second].realism_score == 5 and session.candidates[second].decision == "rejected"
    key(qtbot, Qt.Key.Key_0, Qt.KeyboardModifier.AltModifier)
    assert session.candidates[second].realism_score is None
    key(qtbot, Qt.Key.Key_Right)
    assert gallery.current_item().candidate_id == third


def test_the_difference_map_lies_over_the_image_at_full_size(qtbot, reviewing) -> None:
    window, review = reviewing
    viewer = window.viewer
    item = review.gallery.current_item()
    click_image(qtbot, viewer)
    key(qtbot, Qt.Key.Key_M)
    qtbot.waitUntil(viewer.difference_item.isVisible, timeout=2000)
    np.testing.assert_allclose(viewer.difference_item.image, item.difference)
    rect = viewer.difference_item.mapRectToParent(viewer.difference_item.boundingRect())
    y0, x0 = item.origin
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (x0, y0, item.candidate.shape[1],
                                                                item.candidate.shape[0])
    assert window.action("difference").isChecked() and review.gallery.diff_button.isChecked()
    QTest.keyPress(viewer, Qt.Key.Key_Tab)  # the original: no difference map over it
    assert not viewer.difference_item.isVisible()
    QTest.keyRelease(viewer, Qt.Key.Key_Tab)
    assert viewer.difference_item.isVisible()
    key(qtbot, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: not viewer.difference_item.isVisible(), timeout=2000)


def test_review_keys_are_off_without_a_candidate(qtbot, make_window, mammo_root: Path, settings) -> None:
    window = make_window(mammo_root)
    io = BackgroundWorker("test-io")
    ReviewController(window.workspace, window, window.viewer, io, settings, window)
    for action_id in ("approve", "reject", "score_3", "difference", "next_candidate"):
        assert not window.action(action_id).isEnabled()
    io.shutdown()


def test_h_lists_every_key_the_window_binds_and_finds_reject(qtbot, reviewing) -> None:
    from linop_gui.shortcuts import ShortcutDialog, duplicate_keys, key_text

    window, _ = reviewing
    window.enable_generation()  # its actions (cancel, export, batch) are listed too
    assert duplicate_keys(window.specs) == {}
    dialog = ShortcutDialog(window.specs, window)
    qtbot.addWidget(dialog)
    listed, bound = listed_and_bound_keys(dialog, window)
    assert bound and bound <= listed, bound - listed
    assert {"Tab (hold)", "Space (hold)", "Y", "X", "M", "Alt+3"} <= listed
    dialog.search.setText("reject")
    assert dialog.visible_actions() == ["Reject candidate"]
    dialog.search.setText("original")
    assert "Show the original (hold)" in dialog.visible_actions()
    hold = next(s for s in window.specs if s.hold)
    assert key_text(hold) == "Tab (hold), Space (hold)"
