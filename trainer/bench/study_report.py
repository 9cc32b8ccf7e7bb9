"""The phantom study's report: what was found, both tables with their paired comparisons, every cell.

Written by ``linop-bench phantom --preset study`` after both grids, from their ``results.json`` files, the
cells' records (counts, times, machine load) and the two task reports (tables, plots, protocol), so a
reader sees in one file: the headline comparisons in plain words, how the setting differs from the paper's,
and for each cell its synthetic sample count, training time and the command that recomputes it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from linop_core.fileio import atomic_write_text
from trainer.bench.report import METRIC_NAMES, SOURCE_TITLES

PROG = "linop-bench"
TITLES = {"detect": "Table 1: mass detection (Cascade R-CNN)", "classify": "Table 2: 4-class CXR classification"}


def _row(key: Sequence[Any], task: str) -> str:
    share, source = key[1], str(key[2])
    if share == 0:
        return "baseline"
    title = SOURCE_TITLES[task].get(source, source or ("in-painting" if task == "detect" else "out-painting"))
    return f"{title} (whole set)" if share == "all" else f"+{100 * float(share):g} % {title}"


def _diff(c: dict[str, Any]) -> str:
    return f"{c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"


def _verdict(c: dict[str, Any]) -> str:
    low, high = c["ci_low"], c["ci_high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return "undetermined"
    if low > 0:
        return "**higher** (interval above 0)"
    if high < 0:
        return "**lower** (interval below 0)"
    return "no difference shown (interval includes 0)"


def _kind(c: dict[str, Any]) -> str:
    return "higher" if c["ci_low"] > 0 else "lower" if c["ci_high"] < 0 else "no difference shown"


def tally(task: str, results: dict[str, Any]) -> list[str]:
    """One line per (candidate source, reference) pairing of the main metric: how many rows came out higher,
    lower, or without a difference shown."""
    metric = "map50" if task == "detect" else "auroc"
    groups: dict[tuple[str, str], list[str]] = {}
    for c in results.get("comparisons", []):
        if c["metric"] != metric:
            continue
        cand = SOURCE_TITLES[task].get(c["candidate"][2], c["candidate"][2])
        ref = "baseline" if c["reference"][1] == 0 else SOURCE_TITLES[task].get(c["reference"][2], "")
        groups.setdefault((cand, ref), []).append(_kind(c))
    lines = []
    for (cand, ref), kinds in groups.items():
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("higher", "lower", "no difference shown") if k in kinds)
        lines.append(f"- **{cand} vs {ref}** ({METRIC_NAMES[metric]}, {len(kinds)} row(s)): {counts}.")
    return lines


def findings(task: str, results: dict[str, Any]) -> list[str]:
    """Plain sentences, one per comparison, from a task's ``results.json``."""
    lines = []
    metrics = ("map50",) if task == "detect" else ("auroc", "accuracy")
    for metric in metrics:
        for c in (c for c in results.get("comparisons", []) if c["metric"] == metric):
            portion = f" at {100 * c['portion']:g} % of the real data" if task == "classify" else ""
            lines.append(
                f"- {METRIC_NAMES[metric]}{portion}: {_row(c['candidate'], task)} {c['candidate_value']:.3f} vs "
                f"{_row(c['reference'], task)} {c['reference_value']:.3f}; Δ {_diff(c)}: {_verdict(c)}."
            )
    return lines


def _paper_differences(task: str, config: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    train, data = config["train"], config["data"]
    if task == "detect":
        model = train.get("model", {})
        return [
            f"- Detector: Cascade R-CNN heads as in mmdetection's reference, on {model.get('backbone', 'resnet50')} "
            f"FPN-{model.get('fpn_channels', 256)} (paper: ResNet-50 FPN-256), "
            f"{'ImageNet' if train['pretrained'] else 'random'} initialisation, {train['iterations']} iterations "
            f"of batch {train['batch_size']} (paper: mmdetection's schedule on a GPU), images {data['image_size']} "
            "px on the longer side (VinDr-Mammo: ~3500 px; mmdetection resizes to 1333), RoIAlign sampling "
            f"ratio {model.get('roi_sampling_ratio', 0)}, anchors {model.get('anchor_sizes', '32-512')} px.",
            f"- Data: procedural phantom mammograms, {facts.get('n_train')} training images "
            f"({facts.get('n_mass_images')} mass and {facts.get('n_normal_images')} normal images in the pool), "
            f"split {data['fractions']} at {data['split_level']} level so that {facts.get('n_test')} images are "
            f"tested ({facts.get('n_test_mass_images')} with masses); the paper split VinDr-Mammo 80/10/10.",
            "- Synthetic sets: the bundled demo MAT model (mat-small at 128 px, ~27 kimg on a CPU; the paper: "
            "~1,000 kimg) was trained on phantom data from the same generator, not on this study's training "
            "split: it has seen far more phantom masses than the scarce real training images hold.",
        ]
    return [
        f"- Classifier: DenseNet121, {'ImageNet' if train['pretrained'] else 'random'} initialisation, "
        f"{data['image_size']} px images (paper: 224 px, CheXNet recipe), {train['epochs']} epochs of "
        f"{train.get('samples_per_epoch') or 'one pass over'} images each (a fixed number of steps per cell, so "
        "a larger training set means more variety, not more steps; the paper trained to a plateau).",
        f"- Data: procedural phantom chest X-rays, {facts.get('n_train')} training images at 100 %, split "
        f"{data['fractions']} so that {facts.get('n_test')} images are tested (class counts "
        f"{facts.get('test_class_counts')}); the paper split VinDr-CXR 80/10/10.",
        "- Synthetic sets: the bundled demo MAT out-painting model (mat-small at 128 px, ~12 kimg on a CPU), "
        "trained on phantom chest X-rays from the same generator.",
    ]


def _cell_rows(task: str, out: Path, results: dict[str, Any]) -> list[str]:
    config_file = out / task / "config.yaml"
    metric = "map50" if task == "detect" else "auroc"
    lines = [f"| Cell | Real / synthetic images | {METRIC_NAMES[metric]} | Train s | Cell s (CPU s) | Load (1 min) "
             "| Command |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for record in results["cells"]:
        r = record["result"]
        load = record.get("load_average")
        command = f"`{PROG} {task} --config {config_file} --out {out / task} --only {record['key']}`"
        lines.append(
            f"| {record['key']} | {r['n_real_train']} / {r['n_synthetic_train']} | {r['metrics'][metric]:.3f} | "
            f"{r['train_seconds']:.0f} | {record.get('cell_seconds', math.nan):.0f} "
            f"({record.get('cpu_seconds', math.nan):.0f}) | {load[0] if load else 'n/a'} | {command} |"
        )
    return lines


def write_study_report(out: Path, runs: dict[str, dict[str, Any]], *, total_seconds: float, command: str) -> Path:
    """``out/report.md`` of the study from ``out/{detect,classify}/`` (their reports, results and cells)."""
    results = {task: json.loads((out / task / "results.json").read_text(encoding="utf-8")) for task in runs}
    seed = results["detect"]["config"]["phantom"]["seed"] if "detect" in results else "?"
    cpu = sum(c.get("cpu_seconds", 0.0) for r in results.values() for c in r["cells"])
    loads = [c["load_average"][0] for r in results.values() for c in r["cells"] if c.get("load_average")]
    cells = [c for r in results.values() for c in r["cells"]]
    started = datetime.now(UTC) - timedelta(seconds=total_seconds)
    earlier = sum(1 for c in cells if c.get("finished_utc") and datetime.fromisoformat(c["finished_utc"]) < started)
    resumed = (f" ({earlier} of the {len(cells)} cells were finished by an earlier invocation of the same command, "
               "which this one resumed)") if earlier else ""  # fmt: skip
    lines = [
        f"# LINOP phantom study (data seed {seed}): Tables 1 and 2 with power, controls and paired comparisons",
        "",
        f"Command: `{command}`. Wall time of this invocation: {total_seconds / 60:.1f} min for both tables on "
        f"{os.cpu_count()} CPU core(s){resumed}; the cells took {cpu / 60:.1f} CPU-minutes (about "
        f"{cpu / 60 / max(os.cpu_count() or 1, 1):.0f} min of wall time on the same cores idle, data preparation "
        f"not counted). Load average (1 min) at the cells' ends: "
        f"{min(loads):.1f}-{max(loads):.1f}, median {sorted(loads)[len(loads) // 2]:.1f}." if loads else "",
        "",
        "**Phantom images are procedural. These numbers measure the augmentation chain on phantoms, with enough "
        "test images and seeds to see an effect of the size the paper reports; they say nothing about real "
        "mammograms or chest X-rays.**",
        "",
        "## What was found",
        "",
        "Every comparison is paired: same training seeds, same test images; the interval is a 95 % percentile "
        "bootstrap over test images and seeds. \"No difference shown\" means the interval includes 0.",
        "",
    ]
    for task in runs:
        lines += [f"### {TITLES[task]}", "", *tally(task, results[task]), "", *findings(task, results[task]), ""]
    lines += ["## How this differs from the paper's setting", ""]
    for task in runs:
        lines += _paper_differences(task, results[task]["config"], results[task]["facts"])
    lines += [""]
    for task, run in runs.items():
        text = (out / task / "report.md").read_text(encoding="utf-8")
        text = text.replace("](", f"]({task}/").replace("\n## ", "\n### ").replace("# ", "## ", 1)
        lines += [text, f"Wall time of the {task} chain (data, synthesis, grid, report): "
                  f"{run['wall_seconds'] / 60:.1f} min; load average (1, 5, 15 min) at its start "
                  f"{', '.join(f'{x:.1f}' for x in run['load_start'])}, at its end "
                  f"{', '.join(f'{x:.1f}' for x in run['load_end'])}.", ""]  # fmt: skip
    lines += ["## Every cell", "",
              "Training seconds (train s) cover the training loop; cell seconds add validation and the test "
              "pass. Each command recomputes that one cell (delete its file under cells/ first; the data and "
              "synthetic sets are reused).", ""]  # fmt: skip
    for task in runs:
        lines += [f"### {TITLES[task]}", "", *_cell_rows(task, out, results[task]), ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
