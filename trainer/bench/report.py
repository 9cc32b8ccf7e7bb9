"""The benchmark report: the paper's table with our numbers, ``results.json`` and PNG plots.

Every table entry is the mean ± sample standard deviation over the training seeds and, in brackets, a
percentile-bootstrap interval of that seed-mean over test images and seeds (:mod:`trainer.bench.paired`: the
test split is the same for every seed, ``data.split_seed``, so each resample of test images is scored with
every drawn seed's stored predictions). A second table gives the paired differences between rows
(:mod:`trainer.bench.comparisons`) and whether their intervals exclude 0. The paper's own values are printed
next to ours for comparison, never mixed with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linop_core.fileio import atomic_write_bytes, atomic_write_text
from trainer.bench.comparisons import Comparison, compare_rows, row_interval, row_key
from trainer.bench.metrics import Interval

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
# What each synthetic source of the phantom presets is, per task (a grid with one set has source "").
SOURCE_TITLES: dict[str, dict[str, str]] = {
    "detect": {"mat": "MAT in-painting", "biharmonic": "biharmonic in-painting", "copy-paste": "copy-paste"},
    "classify": {"mat": "MAT out-painting", "biharmonic": "biharmonic out-painting", "copy-paste": "copy-paste"},
}


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
    source: str = ""

    @property
    def mean(self) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

    @property
    def std(self) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        return float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


# -- statistics --------------------------------------------------------------------------------------------------


def summarise(
    records: Sequence[dict[str, Any]], metrics: Sequence[str], *, n_boot: int, level: float, boot_seed: int
) -> list[Summary]:
    """Group finished cells by (portion, synthetic share, source) and summarise each metric over seeds."""
    groups: dict[tuple[float, float | str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(row_key(record), []).append(record)
    out = []
    for (portion, synthetic, source), members in groups.items():
        members = sorted(members, key=lambda r: r["cell"]["seed"])
        ids = members[0]["result"]["test"]["ids"]
        same_test = [m for m in members if m["result"]["test"]["ids"] == ids]
        for metric in metrics:
            interval = row_interval(same_test, metric, n_boot=n_boot, level=level, seed=boot_seed + len(out))
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
                    source=source,
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


def _share_name(share: float | str, task: str, source: str = "") -> str:
    if share == 0:
        return "Baseline"
    if source:
        title = SOURCE_TITLES[task].get(source, source)
        return f"+ {title} (whole set)" if share == "all" else f"+ {100 * float(share):g} % {title}"
    kind = "inpainting" if task == "detect" else "outpainting"
    if share == "all":
        return f"+ {kind} augmentation (whole set)"
    return f"+ {100 * float(share):g} % of {kind} augmentation"


def _share_order(share: float | str) -> float:
    return math.inf if share == "all" else float(share)


def _row_order(s: Summary, sources: Sequence[str]) -> tuple[float, float, int]:
    return (-s.portion, _share_order(s.synthetic), sources.index(s.source) if s.source in sources else -1)


def _table1(summaries: Sequence[Summary], portions: Sequence[float]) -> list[str]:
    lines = [
        "| Dataset | Real portion | Real / synthetic training images | mAP@50 (ours) | Paper |",
        "|---|---|---|---|---|",
    ]
    sources = list(dict.fromkeys(s.source for s in summaries))
    for s in sorted(summaries, key=lambda s: _row_order(s, sources)):
        paper = (PAPER_TABLE1.get(float(s.synthetic)) if s.synthetic != "all" and s.portion == 1.0
                 and s.source in ("", "mat") else None)  # fmt: skip
        lines.append(
            f"| {_share_name(s.synthetic, 'detect', s.source)} | {100 * s.portion:g} % | {s.n_real_train} / "
            f"{s.n_synthetic_train} | {_entry(s)} | {_f(paper, 4) if paper is not None else '–'} |"
        )
    return lines


def _table2(summaries: Sequence[Summary], portions: Sequence[float]) -> list[str]:
    cols = sorted(set(portions), reverse=True)
    head = "| Portion of data | | " + " | ".join(f"{100 * p:g} %" for p in cols) + " |"
    lines = [head, "|---|---|" + "---|" * len(cols)]
    sources = list(dict.fromkeys(s.source for s in summaries))
    rows = sorted({(s.synthetic, s.source) for s in summaries},
                  key=lambda r: (_share_order(r[0]), sources.index(r[1])))  # fmt: skip
    index = {(s.portion, s.synthetic, s.source, s.metric): s for s in summaries}
    for share, source in rows:
        for metric in ("accuracy", "auroc"):
            row = [_share_name(share, "classify", source) if metric == "accuracy" else "", METRIC_NAMES[metric]]
            for p in cols:
                s = index.get((p, share, source, metric))
                row.append(_entry(s) if s is not None else "not run")
            lines.append("| " + " | ".join(row) + " |")
        counts = [index.get((p, share, source, "accuracy")) for p in cols]
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


def _plain(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def _row_name(key: tuple[float, float | str, str], task: str) -> str:
    return _share_name(key[1], task, key[2])


def paired_section(task: str, comparisons: Sequence[Comparison]) -> list[str]:
    """The paired-differences table: each comparison, its interval and whether the interval excludes 0."""
    if not comparisons:
        return []
    first = comparisons[0].result
    lines = [
        "## Paired differences",
        "",
        f"Each row: candidate minus reference, both trained with the same seeds and tested on the same "
        f"{first.n_items} test images; [{100 * first.level:g} % percentile-bootstrap interval, {first.n_boot} "
        "resamples of test images and of seeds, both rows scored on every resample]. \"per seed\": the "
        "difference of each seed on the whole test set. \"P(Δ>0)\": share of resamples where the candidate "
        "scores higher.",
        "",
        "| Metric | Real portion | Candidate | Reference | Δ [interval] | per seed | P(Δ>0) | Interval excludes 0? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        r = c.result
        diff = f"{r.difference.value:+.3f} [{r.difference.low:+.3f}, {r.difference.high:+.3f}]"
        seeds = ", ".join(f"{d:+.3f}" for d in r.per_seed)
        verdict = {"higher": "**yes: higher**", "lower": "**yes: lower**"}.get(r.verdict, f"no ({r.verdict})")
        lines.append(f"| {METRIC_NAMES[c.metric]} | {100 * c.portion:g} % | {_row_name(c.candidate, task)} | "
                     f"{_row_name(c.reference, task)} | {diff} | {seeds} | {_f(r.share_positive, 2)} | "
                     f"{verdict} |")  # fmt: skip
    return [*lines, ""]


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
    comparisons: Sequence[Comparison] = (),
) -> str:
    title = "Mass localisation (Table 1)" if task == "detect" else "4-class CXR classification (Table 2)"
    seeds = sorted({seed for s in summaries for seed in s.seeds})
    lines = [f"# {title}", ""]
    if environment.get("preset") == "study":
        lines += ["**Preset `study`: phantom data, with enough test images and seeds to see an effect of the size "
                  "the paper reports. These numbers measure the augmentation chain on phantoms; they say nothing "
                  "about real mammograms or chest X-rays.**", ""]  # fmt: skip
    elif environment.get("preset"):
        lines += [f"**Preset `{environment['preset']}`: phantom data at a reduced scale. These numbers test the "
                  "pipeline end to end; they say nothing about real mammograms or chest X-rays.**", ""]  # fmt: skip
    lines += [
        f"Entries: mean ± standard deviation over {len(seeds)} training seed(s) ({', '.join(map(str, seeds))}), "
        f"then [{100 * level:g} % percentile-bootstrap interval of the seed-mean, {n_boot} resamples of the test "
        "images and of the seeds]. Every seed is tested on the same test images.",
        "",
    ]
    if missing:
        lines += [f"**{missing} cell(s) of the grid have not finished; their entries are missing.**", ""]
    lines += _table1(summaries, portions) if task == "detect" else _table2(summaries, portions)
    lines += ["", *paired_section(task, comparisons)]
    lines += ["## Protocol", ""]
    for key, value in {**facts, **environment}.items():
        if isinstance(value, dict):  # e.g. one entry per synthetic set
            lines.append(f"- {key.replace('_', ' ')}:")
            for name, sub in value.items():
                shown = "; ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in sub.items()) if isinstance(
                    sub, dict) else _plain(sub)  # fmt: skip
                lines.append(f"  - {name}: {shown}")
            continue
        lines.append(f"- {key.replace('_', ' ')}: {_plain(value)}")
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


def _yerr(line: Sequence[Summary]) -> np.ndarray:
    """Error bars: the bootstrap interval around the seed-mean (the seed standard deviation without one)."""
    low, high = [], []
    for s in line:
        if s.interval is not None and math.isfinite(s.interval.low):
            low.append(max(s.mean - s.interval.low, 0.0))
            high.append(max(s.interval.high - s.mean, 0.0))
        else:
            spread = 0.0 if math.isnan(s.std) else s.std
            low.append(spread)
            high.append(spread)
    return np.array([low, high])


def _plot(task: str, summaries: Sequence[Summary], out_dir: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["map50"] if task == "detect" else ["accuracy", "auroc"]
    portions = sorted({s.portion for s in summaries})
    sources = list(dict.fromkeys(s.source for s in summaries if s.synthetic != 0)) or [""]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        chosen = [s for s in summaries if s.metric == metric]
        if len(portions) > 1 or task == "classify":
            rows = sorted({(s.synthetic, s.source) for s in chosen},
                          key=lambda r: (_share_order(r[0]), sources.index(r[1]) if r[1] in sources else -1))
            for k, (share, source) in enumerate(rows):
                line = sorted((s for s in chosen if (s.synthetic, s.source) == (share, source)),
                              key=lambda s: s.portion)  # fmt: skip
                x = np.array([100 * s.portion for s in line]) * (1.0 + 0.025 * (k - (len(rows) - 1) / 2))
                ax.errorbar(x, [s.mean for s in line], yerr=_yerr(line), marker="o", capsize=3,
                            label=_share_name(share, task, source))  # fmt: skip
            if task == "classify":
                for group, style in (("baseline", "C0"), ("augmented", "C1")):
                    paper = PAPER_TABLE2[group][metric]
                    ax.plot([100 * p for p in paper], list(paper.values()), linestyle="--", color=style, alpha=0.5,
                            label=f"paper: {'baseline' if group == 'baseline' else 'outpainting'}")  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks([100 * p for p in portions], [f"{100 * p:g}" for p in portions])
            ax.set_xlabel("portion of the real training set (%)")
        else:
            baseline = [s for s in chosen if s.synthetic == 0]
            for k, source in enumerate(sources):
                line = baseline + sorted((s for s in chosen if s.synthetic != 0 and s.source == source),
                                         key=lambda s: _share_order(s.synthetic))  # fmt: skip
                x = [0.0 if s.synthetic == 0 else 100 * float(s.synthetic) + 2.0 * (k - (len(sources) - 1) / 2)
                     for s in line]  # fmt: skip
                name = SOURCE_TITLES[task].get(source, source) if source else "inpainting augmentation"
                ax.errorbar(x, [s.mean for s in line], yerr=_yerr(line), marker="o", capsize=3, label=name)
            shares = sorted({float(s.synthetic) for s in chosen if s.synthetic != "all"})
            ax.plot([100 * v for v in shares], [PAPER_TABLE1.get(v, math.nan) for v in shares], linestyle="--",
                    marker="s", color="gray", alpha=0.6, label="paper (real mammograms)")  # fmt: skip
            ax.set_xticks([100 * v for v in shares], [f"+{100 * v:g} %" if v else "baseline" for v in shares])
            ax.set_xlabel("synthetic images added (share of the real training set)")
        ax.set_ylabel(METRIC_NAMES[metric] + " (seed-mean, bootstrap interval)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
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
    comparisons = [c for metric in metrics
                   for c in compare_rows(records, metric, n_boot=ev["n_boot"], level=ev["level"],
                                         seed=ev["boot_seed"] + 1000)]  # fmt: skip
    plots = _plot(task, summaries, out_dir, f"{task}_plot") if summaries else []
    markdown = render_markdown(
        task, summaries, config["grid"]["portions"], facts, environment,
        n_boot=ev["n_boot"], level=ev["level"], plots=plots, missing=n_cells - len(records), comparisons=comparisons,
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
                "source": s.source,
            }
            for s in summaries
        ],
        "comparisons": [
            {
                "metric": c.metric, "portion": c.portion, "reference": list(c.reference),
                "candidate": list(c.candidate),
                "seeds": list(c.seeds), "difference": c.result.difference.value, "ci_low": c.result.difference.low,
                "ci_high": c.result.difference.high, "per_seed": list(c.result.per_seed),
                "share_positive": c.result.share_positive, "excludes_zero": c.result.excludes_zero,
                "reference_value": c.result.reference.value, "candidate_value": c.result.candidate.value,
                "n_test_items": c.result.n_items, "n_boot": c.result.n_boot,
            }
            for c in comparisons
        ],
        "cells": [
            {**r, "result": {k: v for k, v in r["result"].items() if k != "test"}} for r in records
        ],
    }
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, allow_nan=True))
    path = out_dir / "report.md"
    atomic_write_text(path, markdown)
    return path
