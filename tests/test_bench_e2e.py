"""`linop-bench` end to end on tiny phantom data: real + synthetic datasets, both grids, resume, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from linop_core.cli import export
from linop_core.phantom import make_cxr_dataset, make_mammo_dataset
from trainer.bench import cli
from trainer.bench.config import load_config
from trainer.bench.data import classification_data, detection_data


@pytest.fixture(scope="module")
def phantom_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bench")
    roots = {"mammo": base / "mammo", "cxr": base / "cxr"}
    make_mammo_dataset(roots["mammo"], 6, 1)
    make_cxr_dataset(roots["cxr"], 20, 1)
    for kind in ("mammo", "cxr"):
        out = base / f"{kind}.h5"
        argv = ["generate", str(roots[kind]), str(out), "--n", "3", "--engine", "biharmonic", "--resolution", "64",
                "--no-progress"]  # fmt: skip
        assert export.main(argv) == 0
        roots[f"{kind}_synthetic"] = out
    return roots


@pytest.mark.slow
def test_datasets_scale_boxes_and_drop_held_out_synthetic_sources(phantom_roots: dict[str, Path]) -> None:
    config = load_config("phantom-detect", [f"data.root={phantom_roots['mammo']}", "data.image_size=64",
                                            f"data.synthetic={phantom_roots['mammo_synthetic']}",
                                            "data.split_level=image", "data.fractions=[0.5, 0.25, 0.25]"])  # fmt: skip
    data = detection_data(config.data)
    records = data.train.records + data.val.records + data.test.records
    assert len({r.image_id for r in records}) == len(records) == data.facts["n_mass_images"] * 2
    mass_items = [data.train[i] for i, r in enumerate(data.train.records) if r.findings]
    assert mass_items, "the phantom training split should hold a mass image"
    for item in mass_items:
        assert item["image"].shape[0] == 1 and max(item["image"].shape[1:]) == 64
        assert item["boxes"].shape[1] == 4 and (item["boxes"][:, 2:] <= torch.tensor(item["image"].shape[:0:-1])).all()
    assert data.synthetic is not None
    assert data.facts["synthetic_usable"] + data.facts["synthetic_excluded_held_out"] == 3
    held = {r.study_id for r in data.val.records + data.test.records}
    base = data.synthetic.base
    assert all(str(base.meta["source_study_id"][row]) not in held for row in data.synthetic.rows)

    cxr = load_config("phantom-classify", [f"data.root={phantom_roots['cxr']}", "data.image_size=32",
                                           f"data.synthetic={phantom_roots['cxr_synthetic']}"])  # fmt: skip
    cdata = classification_data(cxr.data)
    item = cdata.train[0]
    assert item["image"].shape == (1, 32, 32) and 0 <= int(item["label"]) < 4
    assert float(item["image"].min()) >= 0 and float(item["image"].max()) <= 1


@pytest.mark.slow
def test_tiny_grids_run_resume_and_report(phantom_roots: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    common = ["--no-progress", "--device", "cpu", "--set", "grid.seeds=[0]", "--set", "eval.n_boot=5"]
    detect_out = tmp_path / "detect"
    detect_args = ["detect", "--config", "phantom-detect", "--out", str(detect_out), *common,
                   "--set", f"data.root={phantom_roots['mammo']}",
                   "--set", f"data.synthetic={phantom_roots['mammo_synthetic']}",
                   "--set", "data.split_level=image", "--set", "data.fractions=[0.5, 0.25, 0.25]",
                   "--set", "data.image_size=64", "--set", "grid.synthetic=[0, 1.0]",
                   "--set", "train.iterations=1", "--set", "train.eval_every=0"]  # fmt: skip
    assert cli.main(detect_args) == 0
    text = (detect_out / "report.md").read_text()
    assert "| Baseline | 100 % |" in text and "+ 100 % of inpainting augmentation" in text
    assert "Normal test images are **included**" in text and "random initialisation" in text
    cells = sorted(p.name for p in (detect_out / "cells").glob("*.json"))
    assert cells == ["real100_syn0_seed0.json", "real100_syn100_seed0.json"]
    record = json.loads((detect_out / "cells" / cells[1]).read_text())
    assert record["result"]["n_synthetic_train"] > 0
    assert len(record["result"]["test"]["predictions"]) == len(record["result"]["test"]["ids"])

    # A second run finds every cell finished: no training happens, the report is rewritten.
    import trainer.bench.detect as detect_module

    def no_training(*args: object, **kwargs: object) -> dict:
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(detect_module, "run_detect_cell", no_training)
    assert cli.main(detect_args) == 0

    classify_out = tmp_path / "classify"
    assert cli.main(["classify", "--config", "phantom-classify", "--out", str(classify_out), *common,
                     "--set", f"data.root={phantom_roots['cxr']}",
                     "--set", f"data.synthetic={phantom_roots['cxr_synthetic']}",
                     "--set", "data.image_size=32", "--set", "grid.portions=[1.0, 0.5]",
                     "--set", "train.epochs=1", "--set", "train.batch_size=4"]) == 0  # fmt: skip
    results = json.loads((classify_out / "results.json").read_text())
    assert {(s["portion"], s["synthetic"], s["metric"]) for s in results["summary"]} == {
        (p, s, m) for p in (1.0, 0.5) for s in (0.0, "all") for m in ("accuracy", "auroc")
    }
    assert (classify_out / "classify_plot.png").is_file()
    assert "| Portion of data | | 100 % | 50 % |" in (classify_out / "report.md").read_text()


def test_missing_root_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["detect", "--config", "detect", "--out", str(tmp_path)]) == 1
    assert "data.root" in capsys.readouterr().err
