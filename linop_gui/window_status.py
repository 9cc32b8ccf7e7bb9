"""The main window's status line and help texts: the pixel under the pointer, the window and zoom, the model in
use (name, hash, device), the reader whose decisions are recorded, and the about box that says the same about
the model."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from linop_gui.viewer import ImageViewer
from linop_gui.workspace import ModelInfo, Workspace

APP_NAME = "LINOP Studio"


def app_version() -> str:
    try:
        from importlib.metadata import version

        return version("linop")
    except Exception:  # not installed as a distribution (running from a source tree)
        return "0+unknown"


def about_text(info: ModelInfo) -> str:
    """The about box: the app, and the generator in use (name, version, licence, checkpoint, device)."""
    rows = [
        f"<h3>{APP_NAME} {app_version()}</h3>",
        "<p>Lesion in- and out-painting of mammograms and chest X-rays with a Mask-Aware Transformer.</p>",
        "<table>",
        f"<tr><td><b>Model</b>&nbsp;</td><td>{info.name}</td></tr>",
        f"<tr><td><b>Version</b>&nbsp;</td><td>{info.version}</td></tr>",
        f"<tr><td><b>Weights licence</b>&nbsp;</td><td>{info.licence}</td></tr>",
    ]
    if info.path:
        rows.append(f"<tr><td><b>Checkpoint</b>&nbsp;</td><td>{info.path}</td></tr>")
    if info.sha256:
        rows.append(f"<tr><td><b>SHA-256</b>&nbsp;</td><td>{info.sha256}</td></tr>")
    if info.device:
        rows.append(f"<tr><td><b>Device</b>&nbsp;</td><td>{info.device}</td></tr>")
    rows.append("</table><p>Synthetic images are for research and training data only, never for diagnosis.</p>")
    return "".join(rows)


class StatusLine:
    """Permanent labels of ``status``: pixel value, window / zoom, model; they follow the viewer and workspace."""

    def __init__(self, status: QStatusBar, parent: QWidget, workspace: Workspace, viewer: ImageViewer) -> None:
        self.status = status
        self.viewer = viewer
        self.pixel_label = QLabel("", parent)
        self.window_label = QLabel("", parent)
        self.model_label = QLabel("", parent)
        self.model_label.setToolTip("Generator used for previews (Help > About)")
        self.reader_label = QLabel("", parent)
        self.reader_label.setToolTip("Review decisions are recorded under this reader (the Reader field of the "
                                     "Candidates panel); each reader's are kept apart")
        for label in (self.pixel_label, self.window_label, self.model_label, self.reader_label):
            status.addPermanentWidget(label)
        viewer.window_changed.connect(self._on_window_changed)
        viewer.view_changed.connect(self._on_window_changed)
        viewer.pixel_hovered.connect(self._on_pixel)
        workspace.model_changed.connect(self.show_model)
        workspace.entry_changed.connect(lambda entry: self.pixel_label.setText(""))  # that pixel was another image's
        self.show_model(workspace.model)

    def show(self, text: str, timeout_ms: int = 4000) -> None:
        self.status.showMessage(text, timeout_ms)

    def show_reader(self, reader: str) -> None:
        self.reader_label.setText(f"Reader: {reader}" if reader else "Reader: unnamed")

    def show_model(self, info: ModelInfo) -> None:
        self.model_label.setText(f"Model: {info.label}")
        self.model_label.setToolTip(f"{info.path or info.name}\nsha256 {info.sha256}" if info.sha256 else info.name)

    def _on_window_changed(self, *args: object) -> None:
        window = self.viewer.window
        if window is None:
            self.window_label.setText("")
            return
        zoom = self.viewer.zoom() * 100
        self.window_label.setText(f"W {window.width:.0f} / L {window.center:.0f} · zoom {zoom:.0f} %")

    def _on_pixel(self, x: int, y: int, value: float) -> None:
        shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
        self.pixel_label.setText(f"({x}, {y}) = {shown}")
