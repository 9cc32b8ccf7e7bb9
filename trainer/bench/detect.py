"""One cell of Table 1: train a Cascade R-CNN on real (+ synthetic) mammograms, then mAP@50 on the test split.

Recipe (configurable in ``train:``): SGD with momentum, linear warm-up, lr x 0.1 at the ``lr_steps`` fractions
of the run (mmdetection's 1x schedule shape), random horizontal flips; every ``eval_every`` iterations the
validation mAP@50 is measured and the best weights are the ones tested. Gray images are replicated to three
channels. The test predictions are kept in the cell result so the report can bootstrap over test images.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from trainer.bench.cascade_rcnn import CascadeConfig, CascadeRCNN, cascade_rcnn_fpn
from trainer.bench.config import DetectTrainSettings
from trainer.bench.data import BenchData, cell_training_set
from trainer.bench.metrics import map50

Progress = Callable[[int, int], None]


def build_detector(settings: DetectTrainSettings, image_size: int) -> tuple[CascadeRCNN, str]:
    """The detector and a sentence naming its backbone initialisation (for the report).

    Images are pre-resized to ``image_size`` on the longer side, so the model's own transform is set to
    keep them as they are (min_size = max_size = image_size).
    """
    fields = {f.name for f in dataclasses.fields(CascadeConfig)}
    unknown = sorted(set(settings.model) - fields)
    if unknown:
        from trainer.bench.config import ConfigError

        raise ConfigError(f"train.model.{unknown[0]}", f"unknown; known keys: {', '.join(sorted(fields))}")
    overrides = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                 for k, v in settings.model.items()}  # fmt: skip
    try:
        cfg = CascadeConfig(**{**overrides, "min_size": image_size, "max_size": image_size})
    except (TypeError, ValueError) as exc:
        from trainer.bench.config import ConfigError

        raise ConfigError("train.model", str(exc)) from None
    weights_path: Path | None = None
    if settings.pretrained:
        from linop_core.weights import resolve_weights_file

        weights_path = resolve_weights_file(
            settings.weights_file, cfg.backbone.imagenet_weights,
            what=f"the Cascade R-CNN {cfg.backbone.title} backbone",
        )  # fmt: skip
    model = cascade_rcnn_fpn(cfg, backbone_weights=weights_path)
    net = f"{cfg.backbone.title} FPN-{cfg.fpn_channels}"
    init = f"ImageNet ({weights_path.name})" if weights_path else "random initialisation (no ImageNet weights)"
    used = f"{net}, {init}"
    return model, used


def _collate(batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(batch)


def _to_model(items: Sequence[dict[str, Any]], device: torch.device) -> tuple[list[torch.Tensor], list[dict]]:
    images = [it["image"].to(device).expand(3, -1, -1) for it in items]
    targets = [{"boxes": it["boxes"].to(device), "labels": it["labels"].to(device)} for it in items]
    return images, targets


def _hflip(item: dict[str, Any]) -> dict[str, Any]:
    width = item["image"].shape[-1]
    boxes = item["boxes"].clone()
    boxes[:, [0, 2]] = width - item["boxes"][:, [2, 0]]
    return {**item, "image": item["image"].flip(-1), "boxes": boxes}


def _lr_factor(settings: DetectTrainSettings) -> Callable[[int], float]:
    steps = [round(f * settings.iterations) for f in settings.lr_steps]

    def factor(it: int) -> float:
        warm = min(1.0, 0.001 + (1 - 0.001) * it / settings.warmup_iters) if settings.warmup_iters > 0 else 1.0
        return warm * 0.1 ** sum(it >= s for s in steps)

    return factor


@torch.no_grad()
def predict(
    model: CascadeRCNN, dataset: Dataset, device: torch.device, batch_size: int
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]], list[str]]:
    """Predictions, targets and ids over ``dataset`` (CPU tensors)."""
    model.eval()
    preds, targets, ids = [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    for items in loader:
        images, _ = _to_model(items, device)
        for out, it in zip(model(images), items, strict=True):
            preds.append({k: v.detach().cpu() for k, v in out.items()})
            targets.append({"boxes": it["boxes"], "labels": it["labels"]})
            ids.append(str(it["id"]))
    return preds, targets, ids


def train_detector(
    model: CascadeRCNN,
    dataset: Dataset,
    settings: DetectTrainSettings,
    device: torch.device,
    generator: torch.Generator,
    *,
    validate: Callable[[CascadeRCNN], float] | None = None,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Train in place for ``settings.iterations``; with ``validate`` the best-scoring weights are loaded back.

    Returns the history: ``{"iteration", "loss"}`` every 10 iterations and ``{"iteration", "val_map50"}``.
    """
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(settings))
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=_collate,
        num_workers=settings.num_workers,
        drop_last=len(dataset) > settings.batch_size,
        persistent_workers=settings.num_workers > 0,
    )
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    it, running = 0, []
    while it < settings.iterations:
        for items in loader:
            if settings.hflip:
                flips = torch.rand(len(items), generator=generator) < 0.5
                items = [_hflip(x) if f else x for x, f in zip(items, flips.tolist(), strict=True)]
            images, targets = _to_model(items, device)
            losses = model(images, targets)
            total = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            scheduler.step()
            running.append(float(total.detach()))
            it += 1
            if it % 10 == 0 or it == settings.iterations:
                history.append({"iteration": it, "loss": sum(running) / len(running)})
                running = []
            if validate is not None and settings.eval_every > 0 and (
                it % settings.eval_every == 0 or it == settings.iterations
            ):
                score = validate(model)
                model.train()
                history.append({"iteration": it, "val_map50": score})
                if best is None or score > best[0]:
                    best = (score, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}))
            if progress is not None:
                progress(it, settings.iterations)
            if it >= settings.iterations:
                break
    if best is not None:
        model.load_state_dict(best[1])
    return history


def run_detect_cell(
    data: BenchData,
    *,
    portion: float,
    synthetic_share: float | str,
    seed: int,
    source: str = "",
    settings: DetectTrainSettings,
    image_size: int,
    device: torch.device,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train and test one (portion, synthetic share, seed) cell on synthetic set ``source``; returns its
    JSON-ready result."""
    cell = cell_training_set(data, portion, synthetic_share, seed, source)
    generator = torch.Generator().manual_seed(seed)
    started = time.monotonic()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # model init and the RoI samplers draw from torch's global generator
        model, weights = build_detector(settings, image_size)

        def validate(m: CascadeRCNN) -> float:
            preds, targets, _ = predict(m, data.val, device, settings.batch_size)
            score = map50_or_nan(preds, targets)
            return score if math.isfinite(score) else -1.0  # no mass in validation: nothing to choose by

        history = train_detector(
            model, cell.dataset, settings, device, generator,
            validate=validate if len(data.val) else None, progress=progress,
        )  # fmt: skip
    train_seconds = time.monotonic() - started
    preds, targets, ids = predict(model, data.test, device, settings.batch_size)
    return {
        "metrics": {"map50": map50_or_nan(preds, targets)},
        "n_real_train": cell.n_real,
        "n_synthetic_train": cell.n_synthetic,
        "synthetic_available": cell.synthetic_available,
        "backbone": weights,
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "test": {
            "ids": ids,
            "targets": [{"boxes": _round(t["boxes"], 2)} for t in targets],
            "predictions": [
                {"boxes": _round(p["boxes"], 2), "scores": _round(p["scores"], 5)} for p in preds
            ],
        },
    }


def map50_or_nan(preds: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]]) -> float:
    """mAP@50, NaN when the images hold no ground-truth box (torchmetrics then reports -1: undefined)."""
    if not any(len(t["boxes"]) for t in targets):
        return float("nan")
    return map50(preds, targets)


def _round(t: torch.Tensor, digits: int) -> list[Any]:
    return torch.round(t.float(), decimals=digits).tolist()


def detections_from_json(test: dict[str, Any]) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """The stored test predictions and targets as torchmetrics inputs (one class: label 1)."""
    preds, targets = [], []
    for p, t in zip(test["predictions"], test["targets"], strict=True):
        pb = torch.tensor(p["boxes"], dtype=torch.float32).reshape(-1, 4)
        tb = torch.tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4)
        preds.append({"boxes": pb, "scores": torch.tensor(p["scores"], dtype=torch.float32).reshape(-1),
                      "labels": torch.ones(len(pb), dtype=torch.int64)})  # fmt: skip
        targets.append({"boxes": tb, "labels": torch.ones(len(tb), dtype=torch.int64)})
    return preds, targets
