"""`linop-model`: inspect model presets and checkpoints, import the official MAT weights.

    linop-model info PRESET|CHECKPOINT|OFFICIAL.pkl
    linop-model import OFFICIAL.pkl|CONVERTED.pth --out OURS.pt [--preset mat-512|mat-512-gray|mat-256]
                       [--generator-only] [--half] [--notes TEXT]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from linop_core.cli import run_subcommand
from linop_core.errors import ModelError


def _part_of(network: str, key: str) -> str:
    if network == "D":
        return "stage-1 D" if key.split(".", 1)[0].endswith("_stg1") else "main D"
    if key.startswith("mapping."):
        return "mapping"
    if key.startswith("synthesis.first_stage."):
        return "stage 1"
    return "stage 2"


def parameter_counts(network: str, parameters: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Parameter counts per part ("G": mapping / stage 1 / stage 2; "D": main D / stage-1 D) and "total"."""
    counts: dict[str, int] = {}
    for key, numel in parameters:
        part = _part_of(network, key)
        counts[part] = counts.get(part, 0) + numel
    counts["total"] = sum(counts.values())
    return counts


def _parameter_names(config: Any, network: str) -> set[str]:
    import torch

    from linop_core.model.presets import build_discriminator, build_generator

    build = build_generator if network == "G" else build_discriminator
    with torch.device("meta"):
        return {name for name, _ in build(config).named_parameters()}


def _format_counts(title: str, counts: Mapping[str, int]) -> list[str]:
    lines = [f"{title}: {counts['total']:,} parameters"]
    lines += [f"  {part:<10} {n:>13,}" for part, n in counts.items() if part != "total"]
    return lines


def _config_line(config: Any) -> str:
    return (
        f"{config.resolution}px, {config.img_channels} channel(s), z/w {config.z_dim}/{config.w_dim}, "
        f"{config.mapping_layers} mapping layers, stage 1 width {config.stage1_dim}, "
        f"depths {list(config.depths)}, windows {list(config.windows)}"
    )


def _info_preset(name: str) -> list[str]:
    import torch

    from linop_core.model.presets import build_discriminator, build_generator, get_config

    config = get_config(name)
    lines = [f"preset {name}: {_config_line(config)}"]
    with torch.device("meta"):
        g = build_generator(config)
        d = build_discriminator(config)
    lines += _format_counts("G", parameter_counts("G", ((k, p.numel()) for k, p in g.named_parameters())))
    lines += _format_counts("D", parameter_counts("D", ((k, p.numel()) for k, p in d.named_parameters())))
    return lines


def _info_checkpoint(path: Path) -> list[str]:
    from linop_core.hashing import sha256_file
    from linop_core.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    config = ckpt.config
    lines = [f"checkpoint {path}", f"  format version {ckpt.format_version}, sha256 {sha256_file(path)}",
             f"preset {ckpt.preset}: {_config_line(config)}"]
    for network, state in (("G_ema", ckpt.G_ema), ("G", ckpt.G), ("D", ckpt.D)):
        if state is None:
            lines.append(f"{network}: not stored")
            continue
        names = _parameter_names(config, "D" if network == "D" else "G")
        counts = parameter_counts("D" if network == "D" else "G",
                                  ((k, v.numel()) for k, v in state.items() if k in names))
        lines += _format_counts(network, counts)
    lines.append("metadata:")
    lines += [f"  {key}: {value}" for key, value in ckpt.metadata.items()]
    return lines


def _info_official(path: Path) -> list[str]:
    from linop_core.model.official import detect_generator_layout, matching_preset, read_official

    weights = read_official(path)
    g_ema = weights.networks["G_ema"]
    layout = detect_generator_layout(g_ema, path)
    preset = matching_preset(layout, g_ema, path)
    lines = [f"official MAT weights {path} ({weights.layout}), sha256 {weights.sha256}",
             f"  networks: {', '.join(weights.networks)}; matches preset {preset}"]
    from linop_core.model.presets import get_config

    config = get_config(preset)
    for network, state in weights.networks.items():
        kind = "D" if network == "D" else "G"
        names = _parameter_names(config, kind)
        lines += _format_counts(network, parameter_counts(kind, ((k, v.numel()) for k, v in state.items()
                                                                 if k in names)))
    lines.append(f"convert it with: linop-model import {path} --out {path.stem}.pt")
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    from linop_core.model.checkpoint import is_checkpoint
    from linop_core.model.presets import PRESETS

    target = args.target
    path = Path(target)
    if target in PRESETS and not path.is_file():
        lines = _info_preset(target)
    elif not path.is_file():
        raise ModelError(path, f"neither a preset ({', '.join(PRESETS)}) nor an existing file")
    elif is_checkpoint(path):
        lines = _info_checkpoint(path)
    else:
        lines = _info_official(path)
    print("\n".join(lines))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from linop_core.model.official import import_official

    report = import_official(args.source, args.out, preset=args.preset, generator_only=args.generator_only,
                             half=args.half, notes=args.notes)
    print(f"wrote {report.out} (preset {report.preset}; networks {', '.join(report.networks)})")
    print(f"  {report.source}")
    if report.converted_to_gray:
        print("  RGB weights converted to one channel: fine-tune before use on gray images")
    if "D" not in report.networks:
        print("  no discriminator stored: fine-tuning will start D from scratch")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from linop_core.model.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="linop-model", description="Inspect MAT presets and checkpoints; import the official MAT weights."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameter counts per part and checkpoint metadata")
    info.add_argument("target", help="a preset name (mat-512, mat-512-gray, mat-256, mat-small), a LINOP "
                                     "checkpoint, or an official .pkl / converted .pth")
    info.set_defaults(func=_cmd_info)

    imp = sub.add_parser(
        "import", help="convert official MAT weights into a LINOP checkpoint (the pickle's code is never run)"
    )
    imp.add_argument("source", help="official snapshot (e.g. Places_512_FullData.pkl) or converted generator .pth")
    imp.add_argument("--out", required=True, help="the LINOP checkpoint to write (.pt)")
    imp.add_argument("--preset", default=None, choices=list(PRESETS),
                     help="target preset; default: the weights' own; mat-512-gray converts 3-channel 512 weights")
    imp.add_argument("--generator-only", action="store_true", help="store only G_ema (inference bundle)")
    imp.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    imp.add_argument("--notes", default="", help="free text kept in the checkpoint's metadata")
    imp.set_defaults(func=_cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_subcommand("linop-model", args)


if __name__ == "__main__":
    raise SystemExit(main())
