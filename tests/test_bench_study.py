"""The study preset end to end at a tiny scale: three matched synthetic sets per table, the paired comparisons,
and the study report with its per-cell counts, times and commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainer.bench import cli
from trainer.bench.study_report import write_study_report

TINY = {
    "detect": ["--set", "phantom.n=6", "--set", "phantom.synth_units=10", "--set", "data.image_size=64",
               "--set", "train.iterations=1", "--set", "train.eval_every=0",
               "--set", "data.fractions=[0.5, 0.2, 0.3]", "--set", "grid.synthetic=[0, 1.0]"],
    "classify": ["--set", "phantom.n=20", "--set", "phantom.synth_units=8", "--set", "data.image_size=32",
                 "--set", "train.epochs=1", "--set", "train.samples_per_epoch=8", "--set", "grid.portions=[0.25]"],
}  # fmt: skip


@pytest.mark.slow
def test_study_preset_compares_three_matched_sets_and_reports_every_cell(tmp_path: Path) -> None:
    runs = {}
    for task, tiny in TINY.items():
        argv = [task, "--preset", "study", "--out", str(tmp_path / task), "--no-progress", "--device", "cpu",
                "--set", "grid.seeds=[1]", "--set", "eval.n_boot=20", *tiny]  # fmt: skip
        assert cli.main(argv) == 0
        runs[task] = {"wall_seconds": 1.0, "load_start": os.getloadavg(), "load_end": os.getloadavg()}
        results = json.loads((tmp_path / task / "results.json").read_text())
        sets = results["facts"]["synthetic_sets"]
        assert set(sets) == {"mat", "biharmonic", "copy-paste"}
        # the copy-paste set keeps exactly the units the painting sets keep after the held-out filter
        assert sets["copy-paste"]["usable"] == sets["mat"]["usable"] == sets["biharmonic"]["usable"]
        sources = {c["cell"].get("source", "") for c in results["cells"]}
        assert sources == {"", "mat", "biharmonic", "copy-paste"}
        pairs = {(tuple(c["reference"]), tuple(c["candidate"])) for c in results["comparisons"]}
        portion = 1.0 if task == "detect" else 0.25
        share = 1.0 if task == "detect" else "all"
        assert ((portion, 0.0, ""), (portion, share, "mat")) in pairs
        assert ((portion, share, "copy-paste"), (portion, share, "mat")) in pairs
        assert all("cpu_seconds" in c and "load_average" in c for c in results["cells"])
    path = write_study_report(tmp_path, runs, total_seconds=2.0, command="linop-bench phantom --preset study")
    text = path.read_text()
    assert "## What was found" in text and "## How this differs from the paper's setting" in text
    assert "copy-paste" in text and "biharmonic" in text and "Δ" in text
    assert "--only real100_syn100-copy-paste_seed1" in text and "--only real25_synall-mat_seed1" in text
    assert "ResNet-18" in text or "resnet18" in text
    n_cells = sum(len(json.loads((tmp_path / t / "results.json").read_text())["cells"]) for t in runs)
    fresh = write_study_report(tmp_path, runs, total_seconds=1e6, command="c").read_text()
    assert "earlier invocation" not in fresh
    resumed = write_study_report(tmp_path, runs, total_seconds=0.0, command="c").read_text()
    assert f"{n_cells} of the {n_cells} cells were finished by an earlier invocation" in resumed


def test_a_kept_set_is_reused_only_at_the_precision_asked_for(tmp_path: Path) -> None:
    from linop_core.demo_models import demo_model_path
    from linop_core.engines import EngineSpec, make_engine
    from linop_core.errors import LinopError
    from linop_core.phantom import make_mammo_dataset
    from linop_core.synthset.batch import BatchOptions, vindr_job, write_set
    from linop_core.vocab import Task
    from trainer.bench.phantom_prep import _check_set_dtype

    if demo_model_path(Task.INPAINT) is None:
        pytest.skip("no bundled demo inpainting model")
    make_mammo_dataset(tmp_path / "mammo", 4, 0)
    engine = make_engine(EngineSpec(task=Task.INPAINT, precision="fp32", device="cpu"))
    path = tmp_path / "set.h5"
    write_set(vindr_job(tmp_path / "mammo", BatchOptions(seed=0), engine), path, n=1)
    _check_set_dtype(path, "float32")
    with pytest.raises(LinopError, match=r"set\.h5: this synthetic set was made in float32, not bfloat16"):
        _check_set_dtype(path, "bfloat16")


def test_precision_reaches_the_study_command_line() -> None:
    args = cli.build_parser().parse_args(["phantom", "--preset", "study", "--precision", "fp32"])
    assert cli._command_line(args, Path("out")).endswith("--precision fp32 --out out")
    auto = cli.build_parser().parse_args(["phantom", "--preset", "study"])
    assert "--precision" not in cli._command_line(auto, Path("out"))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["phantom", "--precision", "fp8"])
