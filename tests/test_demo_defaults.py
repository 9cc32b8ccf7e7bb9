"""With no model named, linop-export, linop-bench and the GUI use the bundled demo model of the right task."""

from __future__ import annotations

import pytest

from linop_core.demo_models import demo_model_path
from linop_core.hashing import sha256_file

pytestmark = pytest.mark.skipif(
    demo_model_path("inpaint") is None or demo_model_path("outpaint") is None,
    reason="the bundled demo models (resources/models/) are not installed",
)


@pytest.mark.parametrize(("layout_file", "task"), [("breast-level_annotations.csv", "inpaint"),
                                                   ("annotations/image_labels_train.csv", "outpaint")])
def test_export_without_model_uses_the_demo_model_of_the_dataset(tmp_path, layout_file, task) -> None:
    from linop_core.engines import EngineSpec, make_engine
    from linop_core.vindr import root_task

    (tmp_path / layout_file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / layout_file).write_text("")
    engine = make_engine(EngineSpec(task=root_task(tmp_path), device="cpu", batch_size=2))
    assert engine.checkpoint_sha256 == sha256_file(demo_model_path(task))


def test_gui_default_engine_is_the_bundled_model_per_modality(tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from linop_gui.model_panel import BUNDLED_NOTE, find_bundled_model, initial_engine_spec

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    spec = initial_engine_spec(None, None, settings)
    assert spec.checkpoint == str(demo_model_path("inpaint")) and spec.note == BUNDLED_NOTE
    assert find_bundled_model("cxr") == demo_model_path("outpaint")
