"""Bundle a trained generator as a small inference checkpoint with its config and training metrics.

``python -m trainer.bundle RUN_DIR/snapshots/snapshot-000012.000kimg.pt --config trainer/configs/demo-mammo.yaml
--out resources/models/mammo-inpaint-demo.pt`` writes, atomically:

- ``<name>.pt``: G_ema only, float16 storage (``save_checkpoint(half=True)``), the run's metadata kept;
- ``<name>.yaml``: a byte copy of ``--config`` (it must describe the same model as the checkpoint);
- ``<name>.metrics.json``: the FID history and the losses logged up to the checkpoint, read from the run's
  ``metrics.jsonl`` (the folder above ``snapshots/``, or the checkpoint's own folder for ``best.pt``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from linop_core.errors import LinopError
from linop_core.fileio import atomic_write_bytes, atomic_write_text
from linop_core.hashing import sha256_file
from linop_core.model.checkpoint import load_checkpoint, save_checkpoint
from linop_core.model.presets import config_to_dict
from trainer.config import load_config
from trainer.metrics_log import read_metrics
from trainer.networks import resolve_model_config


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder of ``best.pt``/``last.pt`` (its folder) or of a snapshot (the folder above)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "snapshots" else checkpoint.parent


def training_metrics(records: list[dict[str, Any]], nimg: int) -> dict[str, Any]:
    """FID history (whole run) and the last training tick at or before ``nimg`` images."""
    fids = [r for r in records if r.get("kind") == "fid"]
    ticks = [r for r in records if r.get("kind") == "train"]
    upto = [r for r in ticks if r["nimg"] <= nimg]
    at_checkpoint = [r for r in fids if r["nimg"] == nimg]
    best = min(fids, key=lambda r: r["fid"]) if fids else None
    last_tick = upto[-1] if upto else None
    return {
        "trained_kimg_total": ticks[-1]["kimg"] if ticks else None,
        "sec_per_kimg_last_tick": round(last_tick["time/sec_per_kimg"], 1) if last_tick else None,
        "fid_feature": fids[-1]["fid_feature"] if fids else None,
        "fid_num_images": fids[-1]["num_images"] if fids else None,
        "fid_at_checkpoint": at_checkpoint[-1]["fid"] if at_checkpoint else None,
        "best_fid": best["fid"] if best else None,
        "best_fid_kimg": best["kimg"] if best else None,
        "fid_history": [{"kimg": r["kimg"], "fid": round(r["fid"], 4)} for r in fids],
        "last_tick_losses": (
            {k: round(v, 4) for k, v in last_tick.items() if k.startswith(("G/", "D/"))} if last_tick else {}
        ),
    }


def bundle(checkpoint_path: Path, config_path: Path, out: Path, *, machine: str, selected_by: str) -> dict[str, Any]:
    """Write ``out`` (.pt), its .yaml and .metrics.json; returns the metrics written."""
    checkpoint = load_checkpoint(checkpoint_path)
    train_config = load_config(config_path)
    expected = resolve_model_config(train_config.model.preset, train_config.model.overrides)
    if config_to_dict(checkpoint.config) != config_to_dict(expected) or checkpoint.preset != train_config.model.preset:
        raise LinopError(f"{config_path}: describes a different model than {checkpoint_path}; pass the config the "
                         "run was trained with")
    # save_checkpoint writes these itself (storage dtype, date, versions of this bundling)
    metadata = {k: v for k, v in checkpoint.metadata.items()
                if k not in ("storage_dtype", "created", "app_version", "torch_version")}
    kimg = metadata.get("training_kimg")
    if kimg is None:
        raise LinopError(f"{checkpoint_path}: no training_kimg in its metadata; bundle a checkpoint of linop-train")
    run_dir = run_dir_of(checkpoint_path)
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.is_file():
        raise LinopError(f"{metrics_file}: not found; bundle a checkpoint that sits in its run folder")
    metadata["notes"] = (f"LINOP demo model ({train_config.model.preset}), trained on phantoms only; from "
                         f"{checkpoint_path.name}. Not for clinical use.")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, config=checkpoint.config, preset=checkpoint.preset, G_ema=checkpoint.G_ema,
                    extra=metadata, half=True)
    yaml_out = out.with_suffix(".yaml")
    if config_path.resolve() != yaml_out.resolve():
        atomic_write_bytes(yaml_out, config_path.read_bytes())
    metrics = {
        "model": out.name,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "task": train_config.data.task,
        "preset": checkpoint.preset,
        "config": yaml_out.name,
        "checkpoint_from": f"{run_dir.name}/{checkpoint_path.relative_to(run_dir).as_posix()}",
        "kimg": kimg,
        "selected_by": selected_by,
        **training_metrics(read_metrics(metrics_file), round(kimg * 1000)),
        "machine": machine,
    }
    atomic_write_text(out.with_suffix(".metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="best.pt or a snapshot of a linop-train run (last.pt holds the "
                        "training state: take a snapshot)")
    parser.add_argument("--config", type=Path, required=True, help="the YAML config the run was trained with")
    parser.add_argument("--out", type=Path, required=True, help="the bundled .pt (its .yaml/.metrics.json go beside)")
    parser.add_argument("--machine", required=True, help="where it was trained, for the metrics file")
    parser.add_argument("--selected-by", default="", help="why this checkpoint (e.g. the proof's numbers)")
    args = parser.parse_args(argv)
    try:
        metrics = bundle(args.checkpoint, args.config, args.out, machine=args.machine, selected_by=args.selected_by)
    except LinopError as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {metrics['bytes'] / 2**20:.1f} MiB, {metrics['kimg']} kimg, sha256 {metrics['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
