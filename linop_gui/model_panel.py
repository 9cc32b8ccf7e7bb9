"""Model and device choice: a checkpoint (ours or an imported official one) or the biharmonic baseline, and
CUDA / MPS / CPU. The choice is remembered in QSettings; ``--model`` / ``--device`` override it.

Which engine starts (:func:`initial_engine_spec`): ``--model``, else the last choice saved in the settings,
else the bundled demo model in ``resources/models``, else the biharmonic baseline (the status bar says so).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from linop_core.engines import EngineKind, EngineSpec
from linop_core.precision import Precision
from linop_core.vocab import DatasetKind, Task, task_for_dataset
from linop_gui.worker import EngineInfo, WorkerError

KEY_ENGINE = "model/engine"  # "mat" | "biharmonic"
KEY_CHECKPOINT = "model/checkpoint"
KEY_DEVICE = "model/device"
KEY_PRECISION = "model/precision"
PRECISION_LABELS = {
    Precision.AUTO: "Auto (bf16 where the hardware has it)",
    Precision.FP32: "fp32 (exact)",
    Precision.BF16: "bf16 (faster; CPUs with AVX512-BF16/AMX, recent GPUs)",
    Precision.FP16: "fp16 (GPU only)",
}


def available_devices() -> list[tuple[str, str, bool]]:
    """``(device name, label, available)`` for the device menu: auto, CPU, each CUDA GPU, MPS."""
    import torch

    devices: list[tuple[str, str, bool]] = [("auto", "Auto (best available)", True), ("cpu", "CPU", True)]
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_count:
        for i in range(cuda_count):
            devices.append((f"cuda:{i}", f"CUDA {i}: {torch.cuda.get_device_name(i)}", True))
    else:
        devices.append(("cuda", "CUDA (no GPU visible)", False))
    mps = bool(torch.backends.mps.is_available())
    devices.append(("mps", "Apple MPS" if mps else "Apple MPS (not available)", mps))
    return devices


BUNDLED_NOTE = "bundled demo model"


def find_bundled_model(task: Task | DatasetKind | str = Task.INPAINT) -> Path | None:
    """The bundled demo checkpoint for a task, or for a VinDr dataset kind's task ("mammo": inpainting, "cxr":
    outpainting); None for a plain folder (its images decide, see ``Catalog.task_of``) or when not installed."""
    from linop_core.demo_models import demo_model_path

    value = str(task)
    if value in tuple(DatasetKind):
        if value == DatasetKind.FOLDER:
            return None
        value = task_for_dataset(value)
    return demo_model_path(Task(value))


def initial_engine_spec(cli_model: str | None, cli_device: str | None, settings: QSettings,
                        cli_precision: str | None = None) -> EngineSpec:
    """The engine to start with (see the module docstring)."""
    device = cli_device or _text(settings.value(KEY_DEVICE)) or None
    if device == "auto":
        device = None
    saved_precision = _text(settings.value(KEY_PRECISION))
    precision = cli_precision or (saved_precision if saved_precision in set(Precision) else Precision.AUTO)
    if cli_model:
        return EngineSpec(checkpoint=str(cli_model), device=device, precision=precision, note="from --model")
    engine = _text(settings.value(KEY_ENGINE))
    saved = _text(settings.value(KEY_CHECKPOINT))
    if engine == "biharmonic":
        return EngineSpec.biharmonic(device=device, note="chosen in the Model panel")
    if engine == "mat" and saved and Path(saved).is_file():
        return EngineSpec(checkpoint=saved, device=device, precision=precision, note="last used")
    bundled = find_bundled_model()
    if bundled is not None:
        return EngineSpec(checkpoint=str(bundled), device=device, precision=precision, note=BUNDLED_NOTE)
    return EngineSpec.biharmonic(
        device=device, note="no model given or bundled: using the biharmonic baseline (choose a checkpoint to use MAT)")


def save_choice(settings: QSettings, spec: EngineSpec) -> None:
    settings.setValue(KEY_ENGINE, str(spec.kind))
    if spec.kind is EngineKind.MAT and spec.checkpoint:
        settings.setValue(KEY_CHECKPOINT, spec.checkpoint)
    settings.setValue(KEY_DEVICE, spec.device or "auto")
    if spec.kind is EngineKind.MAT:
        settings.setValue(KEY_PRECISION, str(spec.precision))


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


class ModelPanel(QWidget):
    """Engine, checkpoint and device pickers plus what is loaded now; emits ``load_requested`` on Apply."""

    load_requested = Signal(object)  # EngineSpec

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mat_radio = QRadioButton("MAT checkpoint", self)
        self.biharmonic_radio = QRadioButton("Biharmonic baseline (no model)", self)
        self.mat_radio.setChecked(True)
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText("LINOP or imported official MAT checkpoint (.pt)")
        self.browse_button = QToolButton(self)
        self.browse_button.setText("…")
        self.browse_button.setToolTip("Choose a checkpoint file")
        self.browse_button.clicked.connect(self.browse)
        self.precision_combo = QComboBox(self)
        for precision, label in PRECISION_LABELS.items():
            self.precision_combo.addItem(label, str(precision))
        self.precision_combo.setToolTip("MAT arithmetic; the choice is recorded with every candidate")
        self.device_combo = QComboBox(self)
        for name, label, ok in available_devices():
            self.device_combo.addItem(label, name)
            index = self.device_combo.count() - 1
            if not ok:
                item = self.device_combo.model().item(index)  # type: ignore[attr-defined]
                item.setEnabled(False)
        for combo in (self.precision_combo, self.device_combo):
            # Sized by a short label, not the longest one ("Auto (bf16 where ...)"): the dock keeps its width and
            # never scrolls sideways; the drop-down list still shows every label in full.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.apply_button = QPushButton("Load", self)
        self.apply_button.setToolTip("Load this engine in the model thread (the current one stays until it works)")
        self.apply_button.clicked.connect(self._apply)
        self.info_label = QLabel("No engine loaded yet", self)
        self.info_label.setWordWrap(True)
        self.mat_radio.toggled.connect(self._sync_enabled)

        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow(self.mat_radio)
        form.addRow(path_row)
        form.addRow(self.biharmonic_radio)
        form.addRow("Device:", self.device_combo)
        form.addRow("Precision:", self.precision_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        button_row = QHBoxLayout()
        button_row.addStretch(1)
        button_row.addWidget(self.apply_button)
        layout.addLayout(button_row)
        layout.addWidget(self.info_label)
        self._sync_enabled()

    def show_spec(self, spec: EngineSpec) -> None:
        """Reflects ``spec`` in the pickers (without loading anything)."""
        (self.mat_radio if spec.kind is EngineKind.MAT else self.biharmonic_radio).setChecked(True)
        if spec.checkpoint:
            self.path_edit.setText(spec.checkpoint)
        index = self.device_combo.findData(spec.device or "auto")
        if index < 0:  # e.g. "cuda" while the list has "cuda:0"
            index = next((i for i in range(self.device_combo.count())
                          if str(self.device_combo.itemData(i)).startswith(spec.device or "auto")), 0)
        self.device_combo.setCurrentIndex(index)
        self.precision_combo.setCurrentIndex(max(self.precision_combo.findData(str(spec.precision)), 0))
        self._sync_enabled()

    def spec(self) -> EngineSpec:
        device = str(self.device_combo.currentData() or "auto")
        device_name = None if device == "auto" else device
        note = "chosen in the Model panel"
        if not self.mat_radio.isChecked():
            return EngineSpec.biharmonic(device=device_name, note=note)
        return EngineSpec(checkpoint=self.path_edit.text().strip() or None, device=device_name,
                          precision=str(self.precision_combo.currentData() or Precision.AUTO), note=note)

    def browse(self) -> None:
        start = self.path_edit.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a MAT checkpoint", start,
                                              "Checkpoints (*.pt *.pth *.pkl);;All files (*)")
        if path:
            self.path_edit.setText(path)
            self.mat_radio.setChecked(True)

    def show_loading(self, spec: EngineSpec) -> None:
        what = Path(spec.checkpoint).name if spec.checkpoint else "biharmonic baseline"
        self.info_label.setText(f"Loading {what} on {spec.device or 'auto'}…")
        self.apply_button.setEnabled(False)

    def show_info(self, info: EngineInfo) -> None:
        """What is loaded now, and the pickers set to it (a model the app switched to by itself included)."""
        mat = info.engine == EngineKind.MAT
        (self.mat_radio if mat else self.biharmonic_radio).setChecked(True)
        if mat and info.checkpoint:
            self.path_edit.setText(info.checkpoint)
            self.path_edit.setToolTip(info.checkpoint)
        text = f"Loaded: {info.status_text()}"
        if mat and info.checkpoint:
            text += f"\n{Path(info.checkpoint).name}"
            if info.checkpoint_sha256:
                text += f" · sha256 {info.checkpoint_sha256[:12]}"
        if info.note:
            text += f"\n({info.note})"
        self.info_label.setText(text)
        self.info_label.setToolTip(info.checkpoint or "")
        self.apply_button.setEnabled(True)
        self._sync_enabled()

    def show_error(self, error: WorkerError, current: EngineInfo | None) -> None:
        still = f" Still using: {current.status_text()}." if current is not None else ""
        self.info_label.setText(f"Not loaded: {error.message}.{still}")
        self.apply_button.setEnabled(True)

    def _apply(self) -> None:
        spec = self.spec()
        if self.mat_radio.isChecked() and not spec.checkpoint:
            self.info_label.setText("Choose a checkpoint file first (… button), or pick the biharmonic baseline")
            return
        self.load_requested.emit(spec)

    def _sync_enabled(self) -> None:
        mat = self.mat_radio.isChecked()
        self.path_edit.setEnabled(mat)
        self.browse_button.setEnabled(mat)
        self.precision_combo.setEnabled(mat)
