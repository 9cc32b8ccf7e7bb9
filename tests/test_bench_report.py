"""The benchmark report: seed statistics, the bootstrap of the seed-mean, the paper-shaped tables and files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainer.bench.config import from_dict, to_dict
from trainer.bench.report import summarise, write_report


def _classify_record(portion: float, synthetic: Any, seed: int, probs: list[list[float]], labels: list[int],
                     accuracy: float, auroc: float) -> dict[str, Any]:  # fmt: skip
    return {
        "cell": {"portion": portion, "synthetic": synthetic, "seed": seed},
        "key": f"p{portion}_s{synthetic}_{seed}",
        "config_sha256": "x",
        "result": {
            "metrics": {"accuracy": accuracy, "auroc": auroc},
            "n_real_train": int(100 * portion),
            "n_synthetic_train": 0 if synthetic == 0 else 30,
            "synthetic_available": 30,
            "backbone": "random initialisation (no ImageNet weights)",
            "train_seconds": 1.0,
            "history": [],
            "test": {"ids": [str(i) for i in range(len(labels))], "labels": labels, "probs": probs},
        },
    }


def _onehot(pred: list[int], confidence: float = 0.7) -> list[list[float]]:
    rest = (1 - confidence) / 3
    return [[confidence if k == p else rest for k in range(4)] for p in pred]


LABELS = [0, 1, 2, 3, 0, 1, 2, 3]


def test_seed_statistics_and_bootstrap_of_the_seed_mean() -> None:
    seed0 = _onehot([0, 1, 2, 3, 0, 1, 2, 3])  # all right: accuracy 1
    seed1 = _onehot([0, 1, 2, 3, 1, 0, 3, 2])  # half right: accuracy 0.5
    records = [
        _classify_record(1.0, 0.0, 0, seed0, LABELS, 1.0, 1.0),
        _classify_record(1.0, 0.0, 1, seed1, LABELS, 0.5, 0.75),
    ]
    summaries = summarise(records, ["accuracy"], n_boot=100, level=0.9, boot_seed=0)
    assert len(summaries) == 1
    s = summaries[0]
    assert s.values == (1.0, 0.5) and s.seeds == (0, 1)
    assert s.mean == pytest.approx(0.75)
    assert s.std == pytest.approx(np.std([1.0, 0.5], ddof=1))
    # The interval's point value is the seed-mean recomputed from the stored probabilities.
    assert s.interval is not None and s.interval.value == pytest.approx(0.75)
    # Test images and seeds are both resampled: a resample drawing the half-right seed twice scores below its
    # whole-set 0.5, so the interval reaches under 0.5 (an images-only bootstrap could not).
    assert 0.0 <= s.interval.low < 0.5 < 0.75 <= s.interval.high <= 1.0


def test_report_files_have_the_paper_layout(tmp_path: Path) -> None:
    config = from_dict({"task": "classify", "grid": {"portions": [1.0, 0.5], "synthetic": [0.0, "all"],
                                                     "seeds": [0]}, "eval": {"n_boot": 20}})  # fmt: skip
    probs = _onehot([0, 1, 2, 3, 0, 1, 2, 0])
    records = [
        _classify_record(p, s, 0, probs, LABELS, 0.875, math.nan if p == 0.5 and s == "all" else 0.9)
        for p in (1.0, 0.5) for s in (0.0, "all")
    ][:3]  # one cell not finished
    path = write_report(tmp_path, "classify", records, config=to_dict(config), facts={"dataset": "phantom"},
                        environment={"device": "cpu"}, n_cells=4)  # fmt: skip
    text = path.read_text()
    assert "| Portion of data | | 100 % | 50 % |" in text
    assert "Baseline | Accuracy | 0.875" in text
    assert "+ outpainting augmentation (whole set) | Accuracy | 0.875" in text and "not run" in text
    assert "1 cell(s) of the grid have not finished" in text
    assert "0.8113" in text  # the paper's table is printed for comparison
    assert (tmp_path / "classify_plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["summary"]) == 6 and all("test" not in c["result"] for c in results["cells"])
