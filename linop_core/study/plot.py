"""The ROC plot of a reader study (matplotlib, Agg backend, no screen needed): PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from linop_core.study.answers import SYNTHETIC_AT

Curve = tuple[np.ndarray, np.ndarray]  # (truth 1 = synthetic, score 1-5)


def roc_png(readers: Mapping[str, Curve], pooled: Curve | None, *, title: str, dpi: int = 120) -> bytes:
    """ROC curves per reader (thin) and pooled (thick), the chance diagonal, and each "3"-threshold point."""
    from matplotlib.figure import Figure  # a bare Figure draws with Agg and touches no GUI backend

    figure = Figure(figsize=(5.5, 5.5), dpi=dpi)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance (AUC 0.5)")
    curves = [(name, curve, 1.2) for name, curve in readers.items()]
    if pooled is not None:
        curves.append(("pooled", pooled, 2.8))
    for name, (truth, score), width in curves:
        if np.unique(truth).size < 2:
            continue  # a curve needs both classes
        fpr, tpr, _ = roc_curve(truth, score, pos_label=1)
        label = f"{name} (AUC {roc_auc_score(truth, score):.2f})"
        (line,) = ax.plot(fpr, tpr, linewidth=width, label=label)
        called = score >= int(SYNTHETIC_AT)
        ax.plot([called[truth == 0].mean()], [called[truth == 1].mean()], marker="o", color=line.get_color())
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity (real called synthetic)")
    ax.set_ylabel("sensitivity (synthetic called synthetic)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
