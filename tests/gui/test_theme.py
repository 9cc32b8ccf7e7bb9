"""Both themes draw every check and radio indicator, ticked or not, enabled or not, where it can be seen."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QRadioButton,
    QStyle,
    QStyleOptionButton,
    QVBoxLayout,
    QWidget,
)

from linop_gui.theme import apply_theme


def _indicator(widget) -> tuple[list[int], int]:
    """Lightness of the indicator's pixels, and of the widget's background far right of it."""
    option = QStyleOptionButton()
    widget.initStyleOption(option)
    element = (QStyle.SubElement.SE_CheckBoxIndicator if isinstance(widget, QCheckBox)
               else QStyle.SubElement.SE_RadioButtonIndicator)
    rect = widget.style().subElementRect(element, option, widget)
    image = widget.grab().toImage()
    pixels = [image.pixelColor(x, y).lightness() for x in range(rect.left(), rect.right() + 1)
              for y in range(rect.top(), rect.bottom() + 1)]
    background = image.pixelColor(image.width() - 2, image.height() // 2).lightness()
    return pixels, background


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_indicators_are_visible_on_and_off(qtbot, theme: str) -> None:
    app = QApplication.instance()
    apply_theme(app, theme)
    try:
        host = QWidget()
        qtbot.addWidget(host)
        layout = QVBoxLayout(host)
        widgets = {}
        for kind in (QCheckBox, QRadioButton):
            for checked in (False, True):
                for enabled in (True, False):
                    widget = kind("Allow test-split sources")
                    widget.setAutoExclusive(False)
                    widget.setChecked(checked)
                    widget.setEnabled(enabled)
                    layout.addWidget(widget)
                    widgets[(kind, checked, enabled)] = widget
        host.resize(300, 260)
        host.show()
        qtbot.waitExposed(host)
        shown = {}
        for (kind, checked, enabled), widget in widgets.items():
            pixels, background = _indicator(widget)
            contrast = max(abs(p - background) for p in pixels)
            # An outline (or fill) that stands out from the background, even unticked and disabled.
            assert contrast >= (40 if enabled else 20), (theme, kind.__name__, checked, enabled, contrast)
            shown[(kind, checked, enabled)] = sorted(pixels)
        for kind in (QCheckBox, QRadioButton):
            assert shown[(kind, True, True)] != shown[(kind, False, True)]  # ticked and unticked look different
    finally:
        apply_theme(app, "dark")
