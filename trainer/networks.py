"""The networks a run trains: the preset's model configuration (``model.overrides``), G, D and G_ema built from
the run's seed, and ``--init`` weights."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from linop_core.errors import LinopError, ModelError
from trainer.config import ModelConfig
from trainer.run_files import STATE_FORMAT
from trainer.step import derive_seed

_log = logging.getLogger("trainer.networks")


def resolve_model_config(preset: str, overrides: dict[str, Any] | None) -> Any:
    """The MatConfig of ``preset`` with ``model.overrides`` applied (lists become tuples)."""
    from linop_core.model.presets import MatConfig, get_config

    base = get_config(preset)
    if not overrides:
        return base
    known = {f.name for f in dataclasses.fields(MatConfig)}
    for key in overrides:
        if key not in known:
            raise LinopError(f"model.overrides.{key}: unknown MatConfig field; known: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    try:
        return dataclasses.replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise LinopError(f"model.overrides: {exc}") from None


def run_model_config(model: ModelConfig, data_resolution: int) -> Any:
    """The MatConfig a run trains (see :func:`resolve_model_config`), checked against ``data.resolution``."""
    from linop_core.model.presets import PRESETS

    if model.preset not in PRESETS:
        raise LinopError(f"model.preset {model.preset!r} is not one of {', '.join(sorted(PRESETS))}")
    mat_config = resolve_model_config(model.preset, model.overrides)
    if data_resolution != mat_config.resolution:
        raise LinopError(
            f"data.resolution={data_resolution} but preset {model.preset} is built for {mat_config.resolution}; "
            f"set data.resolution={mat_config.resolution}"
        )
    return mat_config


def build_networks(mat_config: Any, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(G, D, G_ema) in training mode (G_ema frozen), the same on every process for one ``seed``."""
    from linop_core.model.presets import build_discriminator, build_generator

    G = build_generator(mat_config, seed=derive_seed(seed, 1)).to(device).train()
    D = build_discriminator(mat_config, seed=derive_seed(seed, 2)).to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    return G, D, G_ema


def _load_weights(module: nn.Module, weights: dict[str, Tensor], what: str, path: Path) -> None:
    from linop_core.model.official import match_state_dict

    matched = match_state_dict(module.state_dict(), weights, what, path)
    module.load_state_dict(matched, strict=False)


def load_initial_weights(path: Path, G: nn.Module, D: nn.Module, G_ema: nn.Module, mat_config: Any) -> str:
    """Initialise the networks from ``path`` (``--init``) and return a one-line description.

    Accepted: a linop-train ``last.pt``, a LINOP checkpoint (``best.pt``, a snapshot, ``linop-model import``
    output) or an official MAT ``.pkl`` / converted ``.pth`` (read without running its code; 3-channel
    weights are folded to 1 channel for gray presets). A file without D (or G) initialises only what it holds:
    D then starts fresh and G starts from G_ema.

    Raises:
        ModelError: the file is missing, unreadable, or built for another model configuration.
    """
    import zipfile

    from linop_core.model.presets import config_to_dict as model_config_to_dict

    if not path.is_file():
        raise ModelError(path, "--init checkpoint not found")
    wanted = model_config_to_dict(mat_config)
    networks: dict[str, dict[str, Tensor] | None]
    payload = None
    if zipfile.is_zipfile(path):
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            payload = None
    if isinstance(payload, dict) and payload.get("format") == STATE_FORMAT:
        if payload.get("model_config") != wanted:
            raise ModelError(
                path, f"training state of preset {payload.get('preset')!r} does not match this run's model "
                "(model.preset / model.overrides); use a matching preset"
            )
        networks = {"G": payload["G"], "G_ema": payload["G_ema"], "D": payload["D"]}
        source = f"linop-train state at {payload.get('cur_nimg', 0) / 1000:.1f} kimg"
    elif isinstance(payload, dict) and payload.get("format") == "linop-mat":
        from linop_core.model.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path)
        if model_config_to_dict(checkpoint.config) != wanted:
            raise ModelError(
                path, f"checkpoint is for preset {checkpoint.preset!r}, a different model from this run's "
                f"model.preset / model.overrides; set model.preset={checkpoint.preset}"
            )
        networks = {"G": checkpoint.G, "G_ema": checkpoint.G_ema, "D": checkpoint.D}
        source = f"LINOP checkpoint (preset {checkpoint.preset})"
    else:
        from linop_core.model import official

        weights = official.read_official(path)
        converted: dict[str, dict[str, Tensor] | None] = {}
        for name in ("G", "G_ema", "D"):
            state = weights.networks.get(name)
            if state is None:
                converted[name] = None
                continue
            state = official.official_to_linop(state)
            if name == "D":
                channels = int(state["Dis.0.conv.weight"].shape[1]) - 1 if "Dis.0.conv.weight" in state else 0
                if channels == 3 and mat_config.img_channels == 1:
                    state = official.rgb_to_gray_discriminator(state, 3)
            else:
                layout = official.detect_generator_layout(state, path)
                if layout.img_channels == 3 and mat_config.img_channels == 1:
                    state = official.rgb_to_gray_generator(state, 3)
            converted[name] = state
        networks = converted
        source = f"official MAT weights ({weights.layout})"
    g_ema = networks.get("G_ema")
    if g_ema is None:
        raise ModelError(path, "no generator (G_ema) weights in this file")
    _load_weights(G_ema, g_ema, "G_ema", path)
    _load_weights(G, networks.get("G") or g_ema, "G", path)
    if networks.get("D") is not None:
        _load_weights(D, networks["D"], "D", path)  # type: ignore[arg-type]
    else:
        _log.warning("%s holds no discriminator: D starts from random weights", path)
    return source
