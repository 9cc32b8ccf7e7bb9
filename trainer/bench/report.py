"""The benchmark report: the paper's table with our numbers, ``results.json`` and PNG plots.

Every table entry is the mean ± sample standard deviation over the training seeds and, in brackets, a
percentile-bootstrap interval over test images of that seed-mean: the test split is the same for every seed
(``data.split_seed``), so each resample of test images is scored for every seed's stored predictions and the
scores averaged. The paper's own values are printed next to ours for comparison, never mixed with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linop_core.fileio import atomic_write_bytes, atomic_write_text
from trainer.bench.metrics import Interval, accuracy, bootstrap_interval

# The paper's Table 1 (mAP@50 by synthetic share at the full real training set) and Table 2 (by real portion).
PAPER_TABLE1: dict[float, float] = {0.0: 0.228, 0.5: 0.2814, 1.0: 0.297}
PAPER_TABLE2: dict[str, dict[str, dict[float, float]]] = {
    "baseline": {
        "accuracy": {1.0: 0.8113, 0.5: 0.7506, 0.25: 0.723, 0.125: 0.661},
        "auroc": {1.0: 0.933, 0.5: 0.8845, 0.25: 0.8387, 0.125: 0.8023},
    },
    "augmented": {
        "accuracy": {1.0: 0.8571, 0.5: 0.8349, 0.25: 0.7912, 0.125: 0.7102},
        "auroc": {1.0: 0.9638, 0.5: 0.9528, 0.25: 0.9255, 0.125: 0.8619},
    },
}
METRIC_NAMES = {"map50": "mAP@50", "accuracy": "Accuracy", "auroc": "AUROC"}


@dataclass(frozen=True)
class Summary:
    """One metric of one (portion, synthetic share) group over its seeds."""

    portion: float
    synthetic: float | str
    metric: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    interval: Interval | None
    n_real_train: int
    n_synthetic_train: int

    @property
    def mean(self) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

    @property
    def std(self) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        return float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


# -- statistics --------------------------------------------------------------------------------------------------


def _seed_mean_metric(records: Sequence[dict[str, Any]], metric: str) -> tuple[Callable[[np.ndarray], float], int]:
    """``f(indices)`` = the metric on those test items, averaged over the seeds' predictions."""
    tests = [r["result"]["test"] for r in records]
    if metric == "map50":
        from trainer.bench.detect import detections_from_json, map50_or_nan

        per_seed = [detections_from_json(t) for t in tests]

        def fn(idx: np.ndarray) -> float:
            return float(np.mean([map50_or_nan([p[i] for i in idx], [g[i] for i in idx]) for p, g in per_seed]))

        return fn, len(tests[0]["ids"])
    from trainer.bench.classify import auroc_or_nan

    probs = [torch.tensor(t["probs"], dtype=torch.float32).reshape(-1, 4) for t in tests]
    labels = torch.tensor(tests[0]["labels"], dtype=torch.int64)
    score = accuracy if metric == "accuracy" else auroc_or_nan

    def fn(idx: np.ndarray) -> float:
        ix = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return float(np.mean([score(p[ix], labels[ix]) for p in probs]))

    return fn, len(labels)


def summarise(
    records: Sequence[dict[str, Any]], metrics: Sequence[str], *, n_boot: int, level: float, boot_seed: int
) -> list[Summary]:
    """Group finished cells by (portion, synthetic share) and summarise each metric over seeds."""
    groups: dict[tuple[float, float | str], list[dict[str, Any]]] = {}
    for record in records:
        cell = record["cell"]
        groups.setdefault((cell["portion"], cell["synthetic"]), []).append(record)
    out = []
    for (portion, synthetic), members in groups.items():
        members = sorted(members, key=lambda r: r["cell"]["seed"])
        ids = members[0]["result"]["test"]["ids"]
        same_test = [m for m in members if m["result"]["test"]["ids"] == ids]
        for metric in metrics:
            interval = None
            if n_boot > 0 and ids:
                fn, n_items = _seed_mean_metric(same_test, metric)
                rng = np.random.default_rng([boot_seed, len(out)])
                interval = bootstrap_interval(fn, n_items, rng=rng, n_boot=n_boot, level=level)
            out.append(
                Summary(
                    portion=portion,
                    synthetic=synthetic,
                    metric=metric,
                    values=tuple(float(m["result"]["metrics"][metric]) for m in members),
                    seeds=tuple(int(m["cell"]["seed"]) for m in members),
                    interval=interval,
                    n_real_train=int(members[0]["result"]["n_real_train"]),
                    n_synthetic_train=int(members[0]["result"]["n_synthetic_train"]),
                )
            )
    return out


# -- text --------------------------------------------------------------------------------------------------------


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"


def _entry(s: Summary) -> str:
    text = _f(s.mean)
    if len(s.values) > 1:
        text += f" ± {_f(s.std)}"
    if s.interval is not None:
        text += f" [{_f(s.interval.low)}, {_f(s.interval.high)}]"
    return text


def _share_name(share: float | str, task: str) -> str:
    kind = "inpainting" if task == "detect" else "outpainting"
    if share == 0:
        return "Baseline"
    if share == "all":
        return f"+ {kind} augmentation (whole set)"
    return f"+ {100 * float(share):g} % of {kind} augmentation"


def _share_order(share: float | str) -> float:
    return math.inf if share == "all" else float(share)


def _table1(summaries: Sequence[Summary], portions: Sequence[float]) -> list[str]:
    lines = [
        "| Dataset | Real portion | Real / synthetic training images | mAP@50 (ours) | Paper |",
        "|---|---|---|---|---|",
    ]
    for s in sorted(summaries, key=lambda s: (-s.portion, _share_order(s.synthetic))):
        paper = PAPER_TABLE1.get(float(s.synthetic)) if s.synthetic != "all" and s.portion == 1.0 else None
        lines.append(
            f"| {_share_name(s.synthetic, 'detect')} | {100 * s.portion:g} % | {s.n_real_train} / "
            f"{s.n_synthetic_train} | {_entry(s)} | {_f(paper, 4) if paper is not None else '–'} |"
        )
    return lines


def _table2(summaries: Sequence[Summary], portions: Sequence[float]) -> list[str]:
    cols = sorted(set(portions), reverse=True)
    head = "| Portion of data | | " + " | ".join(f"{100 * p:g} %" for p in cols) + " |"
    lines = [head, "|---|---|" + "---|" * len(cols)]
    shares = sorted({s.synthetic for s in summaries}, key=_share_order)
    index = {(s.portion, s.synthetic, s.metric): s for s in summaries}
    for share in shares:
        for metric in ("accuracy", "auroc"):
            row = [_share_name(share, "classify") if metric == "accuracy" else "", METRIC_NAMES[metric]]
            for p in cols:
                s = index.get((p, share, metric))
                row.append(_entry(s) if s is not None else "not run")
            lines.append("| " + " | ".join(row) + " |")
        counts = [index.get((p, share, "accuracy")) for p in cols]
        lines.append("| | real / synthetic images | " + " | ".join(
            f"{c.n_real_train} / {c.n_synthetic_train}" if c else "–" for c in counts) + " |")  # fmt: skip
    lines += ["", "The paper's Table 2, for comparison:", "",
              "| Portion of data | | " + " | ".join(f"{100 * p:g} %" for p in (1.0, 0.5, 0.25, 0.125)) + " |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for group, name in (("baseline", "Baseline"), ("augmented", "Outpainting augmentation")):
        for metric in ("accuracy", "auroc"):
            values = PAPER_TABLE2[group][metric]
            label = name if metric == "accuracy" else ""
            lines.append(f"| {label} | {METRIC_NAMES[metric]} | "
                         + " | ".join(f"{values[p]:.4g}" for p in (1.0, 0.5, 0.25, 0.125)) + " |")  # fmt: skip
    return lines


def render_markdown(
    task: str,
    summaries: Sequence[Summary],
    portions: Sequence[float],
    facts: dict[str, Any],
    environment: dict[str, Any],
    *,
    n_boot: int,
    level: float,
    plots: Sequence[str],
    missing: int,
) -> str:
    title = "Mass localisation (Table 1)" if task == "detect" else "4-class CXR classification (Table 2)"
    seeds = sorted({seed for s in summaries for seed in s.seeds})
    lines = [f"# {title}", ""]
    if environment.get("preset"):
        lines += [f"**Preset `{environment['preset']}`: phantom data at a reduced scale. These numbers test the "
                  "pipeline end to end; they say nothing about real mammograms or chest X-rays.**", ""]  # fmt: skip
    lines += [
        f"Entries: mean ± standard deviation over {len(seeds)} training seed(s) ({', '.join(map(str, seeds))}), "
        f"then [{100 * level:g} % percentile-bootstrap interval over test images, {n_boot} resamples, of the "
        "seed-mean]. Every seed is tested on the same test images.",
        "",
    ]
    if missing:
        lines += [f"**{missing} cell(s) of the grid have not finished; their entries are missing.**", ""]
    lines += _table1(summaries, portions) if task == "detect" else _table2(summaries, portions)
    lines += ["", "## Protocol", ""]
    for key, value in {**facts, **environment}.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else value
        lines.append(f"- {key.replace('_', ' ')}: {shown}")
    if task == "detect":
        included = "included" if facts.get("include_normal_test") else "NOT included"
        lines += [
            "",
            f"Normal test images are **{included}** in the mAP@50 (with them, any detection on a normal image "
            "is a false positive). mAP@50: torchmetrics MeanAveragePrecision, pycocotools backend, IoU 0.5 "
            "(COCO 101-point interpolated AP, one class: Mass).",
        ]
    else:
        lines += ["", "Accuracy: top-1 over test images; AUROC: macro average of the one-vs-rest AUROCs "
                  "(torchmetrics); n/a where a test (re)sample lacks a class."]  # fmt: skip
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


# -- plots -------------------------------------------------------------------------------------------------------


def _plot(task: str, summaries: Sequence[Summary], out_dir: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["map50"] if task == "detect" else ["accuracy", "auroc"]
    portions = sorted({s.portion for s in summaries})
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        chosen = [s for s in summaries if s.metric == metric]
        if len(portions) > 1 or task == "classify":
            for share in sorted({s.synthetic for s in chosen}, key=_share_order):
                line = sorted((s for s in chosen if s.synthetic == share), key=lambda s: s.portion)
                x = [100 * s.portion for s in line]
                ax.errorbar(x, [s.mean for s in line], yerr=[0 if math.isnan(s.std) else s.std for s in line],
                            marker="o", capsize=3, label=_share_name(share, task))  # fmt: skip
            if task == "classify":
                for group, style in (("baseline", "C0"), ("augmented", "C1")):
                    paper = PAPER_TABLE2[group][metric]
                    ax.plot([100 * p for p in paper], list(paper.values()), linestyle="--", color=style, alpha=0.5,
                            label=f"paper: {'baseline' if group == 'baseline' else 'outpainting'}")  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks([100 * p for p in portions], [f"{100 * p:g}" for p in portions])
            ax.set_xlabel("portion of the real training set (%)")
        else:
            line = sorted(chosen, key=lambda s: _share_order(s.synthetic))
            labels = [_share_name(s.synthetic, task).replace(" augmentation", "") for s in line]
            x = np.arange(len(line))
            ax.errorbar(x, [s.mean for s in line], yerr=[0 if math.isnan(s.std) else s.std for s in line],
                        marker="o", capsize=3, label="ours (mean ± std over seeds)")  # fmt: skip
            paper = [PAPER_TABLE1.get(float(s.synthetic), math.nan) if s.synthetic != "all" else math.nan for s in line]
            ax.plot(x, paper, linestyle="--", marker="s", alpha=0.6, label="paper")
            ax.set_xticks(x, labels, rotation=15)
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    name = f"{stem}.png"
    atomic_write_bytes(out_dir / name, buffer.getvalue())
    return [name]


# -- files -------------------------------------------------------------------------------------------------------


def write_report(
    out_dir: Path,
    task: str,
    records: Sequence[dict[str, Any]],
    *,
    config: dict[str, Any],
    facts: dict[str, Any],
    environment: dict[str, Any],
    n_cells: int,
) -> Path:
    """Write ``report.md``, ``results.json`` and the plot(s) into ``out_dir``; returns the report's path."""
    metrics = ["map50"] if task == "detect" else ["accuracy", "auroc"]
    ev = config["eval"]
    summaries = summarise(records, metrics, n_boot=ev["n_boot"], level=ev["level"], boot_seed=ev["boot_seed"])
    plots = _plot(task, summaries, out_dir, f"{task}_plot") if summaries else []
    markdown = render_markdown(
        task, summaries, config["grid"]["portions"], facts, environment,
        n_boot=ev["n_boot"], level=ev["level"], plots=plots, missing=n_cells - len(records),
    )  # fmt: skip
    results = {
        "task": task,
        "config": config,
        "facts": facts,
        "environment": environment,
        "summary": [
            {
                "portion": s.portion,
                "synthetic": s.synthetic,
                "metric": s.metric,
                "values": list(s.values),
                "seeds": list(s.seeds),
                "mean": s.mean,
                "std": s.std,
                "ci_low": s.interval.low if s.interval else None,
                "ci_high": s.interval.high if s.interval else None,
                "n_real_train": s.n_real_train,
                "n_synthetic_train": s.n_synthetic_train,
            }
            for s in summaries
        ],
        "cells": [
            {**r, "result": {k: v for k, v in r["result"].items() if k != "test"}} for r in records
        ],
    }
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, allow_nan=True))
    path = out_dir / "report.md"
    atomic_write_text(path, markdown)
    return path
