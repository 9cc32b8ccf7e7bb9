"""The proof's human-readable outputs: ``proof.md`` and the ``examples.png`` grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from linop_core.fileio import atomic_open
from trainer.proof.results import InpaintExample, OutpaintExample, ProofResult


def save_examples(path: Path, inpaint: InpaintExample | None, outpaint: OutpaintExample | None) -> None:
    """A PNG grid: per task, source, hole / kept region, MAT candidates, biharmonic (and the real mass)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[list[tuple[str, np.ndarray, np.ndarray | None]]] = []
    if inpaint is not None:
        row = [("normal source", inpaint.source, None), ("hole (red)", inpaint.source, inpaint.hole)]
        row += [(f"MAT seed {k}", img, None) for k, img in enumerate(inpaint.candidates.get("mat", []))]
        row += [("biharmonic", img, None) for img in inpaint.candidates.get("biharmonic", [])[:1]]
        row += [("real phantom mass", inpaint.real, None)]
        rows.append(row)
    if outpaint is not None:
        row = [("abnormal source", outpaint.source, None),
               ("red = regenerated", outpaint.source, ~outpaint.kept)]
        row += [(f"MAT seed {k}", img, None) for k, img in enumerate(outpaint.candidates.get("mat", []))]
        row += [("biharmonic", img, None) for img in outpaint.candidates.get("biharmonic", [])[:1]]
        rows.append(row)
    if not rows:
        return
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 2.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(row):
                continue
            title, image, overlay = row[c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            if overlay is not None:
                tint = np.zeros((*overlay.shape, 4), dtype=np.float32)
                tint[overlay] = (1.0, 0.0, 0.0, 0.35)
                ax.imshow(tint)
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render_markdown(result: ProofResult) -> str:
    """The proof as a markdown report (numbers exactly as in proof.json)."""
    lines = ["# Demo models: realism proof", "",
             f"Measured by `python -m trainer.proof` in {result.seconds:.0f} s (CPU). Settings: "
             f"`{json.dumps(result.settings)}`.", "",
             f"- inpainting model: `{Path(result.inpaint_model).name}` (sha256 {result.inpaint_sha256})",
             f"- outpainting model: `{Path(result.outpaint_model).name}` (sha256 {result.outpaint_sha256})", ""]
    inp = result.inpaint
    if inp is not None:
        lines += ["## Inpainting: does a generated lesion look like a mass?", "",
                  f"Mass classifier `{inp.classifier.name}`: {inp.classifier.train_images} training crops, "
                  f"training accuracy {_pct(inp.classifier.train_accuracy)}. Held-out boxes: {inp.boxes} "
                  f"(sides {inp.box_side_px[0]:.0f}-{inp.box_side_px[1]:.0f} px).", "",
                  "| crops at the held-out boxes | share called \"mass\" |", "|---|---|"]
        labels = {"real": "real phantom masses", "normal": "normal tissue (no mass)", "mat": "MAT inpainted",
                  "biharmonic": "biharmonic inpainted",
                  "mat-untrained": "MAT, untrained weights (negative control)"}
        lines += [f"| {labels.get(k, k)} | {_pct(v)} |" for k, v in inp.mass_share.items()]
        lines += ["", f"Targets: MAT >= 80 %: **{'met' if inp.target_mat else 'NOT met'}**; "
                  f"biharmonic <= 20 %: **{'met' if inp.target_biharmonic else 'NOT met'}**.", ""]
        if inp.two_sample_accuracy:
            lines += ["Two-sample test: cross-validated accuracy of a fresh CNN telling real masses from each "
                      "engine's fills at the same boxes (50 % = indistinguishable, 100 % = always told apart):", "",
                      "| engine | real-vs-generated accuracy |", "|---|---|"]
            lines += [f"| {k} | {_pct(v)} |" for k, v in inp.two_sample_accuracy.items()]
            lines += [""]
        lines += _fid_table(inp.fid, "FID against the real phantom masses (lower = closer)")
    out = result.outpaint
    if out is not None:
        lines += ["## Outpainting: is the finding kept, and is the rest new?", "",
                  f"4-class classifier `{out.classifier.name}`: {out.classifier.train_images} training images, "
                  f"training accuracy {_pct(out.classifier.train_accuracy)}, held-out accuracy on real phantoms "
                  f"{_pct(out.real_accuracy)}. Outpainted held-out abnormal images: {out.images}.", "",
                  "| engine | source label kept | mean abs. difference on regenerated pixels |", "|---|---|---|"]
        lines += [f"| {k} | {_pct(v)} | {out.regenerated_mad[k]:.4f} |" for k, v in out.label_kept.items()]
        lines += ["", f"Target: MAT keeps the label on >= 80 %: **{'met' if out.target_label else 'NOT met'}**.", ""]
        lines += _fid_table(out.fid, "FID against the held-out abnormal sources (lower = closer)")
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def _fid_table(fid: dict[str, dict[str, float]], title: str) -> list[str]:
    sources = list(next(iter(fid.values())).keys())
    lines = [f"{title}:", "", "| features | " + " | ".join(sources) + " |", "|---" * (len(sources) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v[s]:.3f}" for s in sources) + " |" for name, v in fid.items()]
    return [*lines, ""]

