"""GUI test fixtures: offscreen Qt, settings and user folders isolated per test, one phantom dataset per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

from PySide6.QtCore import QCoreApplication, QSettings

from linop_gui.settings import Settings


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sessions, caches and QSettings of each test live in its own tmp folder."""
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    QCoreApplication.setOrganizationName("LINOP-test")
    QCoreApplication.setApplicationName(f"gui-test-{os.getpid()}")
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(tmp_path / "qsettings"))
        QSettings.setPath(QSettings.Format.NativeFormat, scope, str(tmp_path / "qsettings"))
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(QSettings(str(tmp_path / "linop-gui.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def make_window(qtbot, settings: Settings, tmp_path: Path) -> Callable[..., object]:
    """``make_window(path=None, **kwargs)``: a shown MainWindow (sessions under tmp), opened on ``path``."""
    from linop_gui.main_window import MainWindow

    def make(path: Path | None = None, **kwargs: object) -> MainWindow:
        window = MainWindow(settings, session_base=tmp_path / "sessions", **kwargs)
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        if path is not None:
            open_and_wait(qtbot, window, path)
        return window

    return make


def open_and_wait(qtbot, window, path: Path) -> None:
    """Open ``path`` and wait until the first readable image is on screen."""
    with qtbot.waitSignal(window.dataset_opened, timeout=30_000):
        window.open_path(path)
    qtbot.waitUntil(lambda: window.workspace.entry is None or not window.workspace.entry.ok
                    or window.workspace.image is not None, timeout=30_000)


@pytest.fixture
def open_dataset(qtbot) -> Callable[[object, Path], None]:
    """``open_dataset(window, path)``: open and wait for the first image."""
    return lambda window, path: open_and_wait(qtbot, window, path)
