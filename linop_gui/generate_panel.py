"""The Generate dock: model and device choice, candidates per box, seeds, context and feather, Generate / Cancel
and the progress of the running generation."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from linop_gui.generation_jobs import SEED_LIMIT, GenerateOptions
from linop_gui.model_panel import ModelPanel


class GeneratePanel(QWidget):
    """Model choice, generation settings, Generate / Cancel and progress."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_panel = ModelPanel(self)
        model_box = QGroupBox("Model and device", self)
        QVBoxLayout(model_box).addWidget(self.model_panel)

        self.candidates_spin = QSpinBox(self)
        self.candidates_spin.setRange(1, 32)
        self.candidates_spin.setValue(4)
        self.candidates_spin.setToolTip("Candidates (seeds) per box")
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, SEED_LIMIT)
        self.seed_spin.setToolTip("First seed; it moves on after each generation so new candidates differ")
        self.context_spin = QDoubleSpinBox(self)
        self.context_spin.setRange(1.0, 8.0)
        self.context_spin.setSingleStep(0.25)
        self.context_spin.setValue(2.0)
        self.context_spin.setToolTip("In-painting: model window side / box side")
        self.feather_spin = QDoubleSpinBox(self)
        self.feather_spin.setRange(0.0, 512.0)
        self.feather_spin.setSpecialValueText("automatic")
        self.feather_spin.setToolTip("Blend ramp width in source pixels (automatic: 15 % of the box)")
        self.selected_only = QCheckBox("Selected box only", self)
        self.selected_only.setChecked(True)
        self.selected_only.setToolTip("G generates for the selected box (with none selected: for every box)")
        self.anatomy_check = QCheckBox("Boxes must lie in the breast / chest", self)
        self.anatomy_check.setChecked(True)
        settings_box = QGroupBox("Candidates", self)
        form = QFormLayout(settings_box)
        form.addRow("Per box:", self.candidates_spin)
        form.addRow("First seed:", self.seed_spin)
        form.addRow("Context:", self.context_spin)
        form.addRow("Feather (px):", self.feather_spin)
        form.addRow(self.selected_only)
        form.addRow(self.anatomy_check)

        self.generate_button = QPushButton("Generate (G)", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("No generation yet")
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)

        # Generate, Cancel and the progress first: in sight however short the dock is.
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(settings_box)
        layout.addWidget(model_box)
        layout.addStretch(1)

    def options(self) -> GenerateOptions:
        feather = self.feather_spin.value()
        return GenerateOptions(
            candidates=self.candidates_spin.value(), first_seed=self.seed_spin.value(),
            hole_context=self.context_spin.value(), feather_px=feather if feather > 0 else None,
            anatomy_check=self.anatomy_check.isChecked(), selected_only=self.selected_only.isChecked(),
        )

    def set_running(self, running: bool, total: int = 1) -> None:
        """Starts counting ``total`` candidates, or ends the count (full at 100 %, else where it stopped)."""
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(0)
            self.progress.setFormat("Generating… %v of %m")
        elif self.progress.value() >= self.progress.maximum():
            self.progress.setFormat("%v of %m candidate(s) · %p %")
        else:
            self.progress.setFormat("Stopped at %v of %m")

    def reset_progress(self) -> None:
        """Nothing generated for the image on screen yet (a finished count belongs to the image it was made for)."""
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Ready: G generates for the selected box")

    def show_progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` candidates made (or skipped)."""
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
