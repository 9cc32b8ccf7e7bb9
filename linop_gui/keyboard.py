"""Keyboard rules of the main window that no single widget can keep.

- The image is where keys go: text fields hold the keyboard only while the user types in them. Esc in a text
  field, or Enter after typing, hands the focus back to the image (``home``); in a number field a letter key is
  a shortcut, never swallowed.
- *Hold* keys from the shortcut table (Tab / Space: show the original) act while held: pressed on, released off.
  They act only when their handler says it can (a candidate is shown) and the focus is on the image or a list,
  so Tab still moves between fields and Space still presses a focused button elsewhere.

One application event filter per window does this; it only touches key events whose focus widget lies in its
window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from linop_gui.shortcuts import ShortcutSpec

_LEAVE_KEYS = (Qt.Key.Key_Escape,)
_DONE_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


@dataclass
class _Hold:
    spec: ShortcutSpec
    keys: tuple[int, ...]
    handler: Callable[[bool], None] | None = None
    available: Callable[[], bool] | None = None
    held: bool = False


def is_text_input(widget: QWidget | None) -> bool:
    """A widget the user types text or numbers into."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, QLineEdit | QAbstractSpinBox | QTextEdit | QPlainTextEdit)


def _plain_key(event: QKeyEvent) -> bool:
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)


class KeyboardGuard(QObject):
    """The rules above for ``window``; ``home`` takes the focus back (the image viewer)."""

    def __init__(self, window: QWidget, home: QWidget, specs: list[ShortcutSpec]) -> None:
        super().__init__(window)
        self.window = window
        self.home = home
        self._holds: dict[str, _Hold] = {}
        for spec in specs:
            if spec.hold:
                keys = tuple(QKeySequence(k)[0].key() for k in spec.keys)
                self._holds[spec.action_id] = _Hold(spec, keys)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def bind_hold(self, action_id: str, handler: Callable[[bool], None], available: Callable[[], bool]) -> None:
        """``handler(True)`` when the hold key of ``action_id`` goes down (while ``available()``), ``False`` when
        it comes up."""
        hold = self._holds[action_id]
        hold.handler, hold.available = handler, available

    # -- events ----------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if not isinstance(event, QKeyEvent):
            return False
        focus = QApplication.focusWidget()
        # Keys go to the focus widget; synthetic ones (tests, accessibility tools) may name the window instead.
        if (watched is not focus and watched is not self.window) or not self._in_window(focus):
            return False
        key = event.key()
        if is_text_input(focus):
            return self._text_key(kind, event, focus)
        hold = self._hold_for(key) if _plain_key(event) else None
        if hold is None or hold.handler is None:
            return False
        if kind == QEvent.Type.ShortcutOverride:
            if self._hold_usable(hold, focus):
                event.accept()
                return True
            return False
        if kind == QEvent.Type.KeyPress:
            if not (hold.held or self._hold_usable(hold, focus)):
                return False
            if not event.isAutoRepeat() and not hold.held:
                hold.held = True
                hold.handler(True)
            return True  # Tab must not move the focus while it is held for a compare
        if hold.held:  # KeyRelease
            if not event.isAutoRepeat():
                hold.held = False
                hold.handler(False)
            return True
        return False

    def _text_key(self, kind: QEvent.Type, event: QKeyEvent, focus: QWidget) -> bool:
        key = event.key()
        if key in _LEAVE_KEYS:
            if kind == QEvent.Type.ShortcutOverride:
                event.accept()  # not the Cancel shortcut: leaving the field is what Esc means here
                return True
            if kind == QEvent.Type.KeyPress:
                self.home.setFocus(Qt.FocusReason.ShortcutFocusReason)
                return True
            return False
        if kind == QEvent.Type.KeyPress and key in _DONE_KEYS:
            QTimer.singleShot(0, self._go_home)  # after the field has taken the Enter (filter, value committed)
            return False
        if (kind == QEvent.Type.ShortcutOverride and isinstance(focus, QAbstractSpinBox) and _plain_key(event)
                and Qt.Key.Key_A <= key <= Qt.Key.Key_Z):
            event.ignore()  # a number field has no use for letters: let the shortcut have them
            return True
        return False

    def _go_home(self) -> None:
        if is_text_input(QApplication.focusWidget()) and self._in_window(QApplication.focusWidget()):
            self.home.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _in_window(self, widget: QWidget | None) -> bool:
        return widget is not None and (widget is self.window or self.window.isAncestorOf(widget))

    def _hold_for(self, key: int) -> _Hold | None:
        return next((h for h in self._holds.values() if key in h.keys), None)

    def _hold_usable(self, hold: _Hold, focus: QWidget) -> bool:
        on_surface = (focus is self.window or focus is self.home or self.home.isAncestorOf(focus)
                      or isinstance(focus, QAbstractItemView))
        return on_surface and hold.available is not None and hold.available()
