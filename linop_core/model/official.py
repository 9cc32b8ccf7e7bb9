"""Import of the official MAT weights without running the code embedded in them.

Two layouts are read:

- the official training snapshots (``Places_512_FullData.pkl`` …): a *plain* ``pickle`` of a dict with the
  networks ``G``, ``D`` and ``G_ema``. Every network class in it is a StyleGAN2 "persistent class" whose pickle
  carries the full module source and ``exec``s it when loaded, so ``pickle.load`` on such a file is arbitrary code
  execution. :class:`RestrictedUnpickler` resolves only a short allow-list of globals (tensor and storage
  rebuilders, numpy scalars/arrays, plain containers) and replaces the persistent-object constructor by an inert
  record of its state, from which the parameters and buffers are collected. Anything else is refused before it
  can run.
- converted generator state dicts (IOPaint's ``Places_512_FullData_G.pth``), read with
  ``torch.load(weights_only=True)``.

The official parameter names are this project's names (see the MAT spec, section 7) except the ``attn_mask``
buffers of the shifted-window blocks, which are recomputed at run time and therefore dropped.
``rgb_to_gray_*`` turn 3-channel weights into weights for 1-channel images (``mat-512-gray``).
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from linop_core.errors import ModelError
from linop_core.hashing import sha256_file
from linop_core.model.checkpoint import save_checkpoint
from linop_core.model.config import PRESETS, config_to_dict, get_config
from linop_core.model.pickle_guard import guarded_torch_load
from linop_core.model.presets import build_discriminator, build_generator
from linop_core.model.snapshot_pickle import (
    EasyDictRecord as EasyDictRecord,  # re-exported: the snapshot pickle's records and refusal live there
)
from linop_core.model.snapshot_pickle import (
    PersistentRecord,
    PlainModuleRecord,
    load_snapshot_pickle,
)
from linop_core.model.snapshot_pickle import RestrictedUnpickler as RestrictedUnpickler
from linop_core.model.snapshot_pickle import UnsafePickleError as UnsafePickleError

NETWORK_NAMES = ("G_ema", "G", "D")
# torch.save (legacy, non-zip) files start with this pickled integer.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# Keys of the official generator that this project recomputes instead of storing.
_DROPPED_KEY = re.compile(r"(^|\.)attn_mask$")


# -------------------------------------------------------------------------------------------------------------
# Reading


@dataclass
class OfficialWeights:
    """Weights read from an official file, with the official key names.

    ``networks`` maps "G_ema" / "G" / "D" to state dicts (all present in a training snapshot; only "G_ema" for
    a converted generator .pth). ``init_kwargs`` holds the networks' constructor arguments where the file has
    them (snapshots only).
    """

    path: Path
    sha256: str
    layout: Literal["pickle", "state_dict"]
    networks: dict[str, dict[str, Tensor]]
    init_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _collect_module(record: Any, prefix: str, out: dict[str, Tensor], path: Path) -> None:
    if isinstance(record, PersistentRecord | PlainModuleRecord):
        state = record.state
    else:
        raise ModelError(path, f"unexpected object {type(record).__name__} at '{prefix or '<root>'}'")
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, Tensor):
                raise ModelError(path, f"'{prefix}{name}' is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value.detach().clone() if value.requires_grad else value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect_module(child, f"{prefix}{name}.", out, path)


def _as_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_as_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_snapshot(path: Path) -> tuple[dict[str, dict[str, Tensor]], dict[str, dict[str, Any]]] | None:
    """Networks and init kwargs of a plain-pickle snapshot; None if the file is a legacy torch.save file."""
    data = load_snapshot_pickle(path)
    if isinstance(data, int) and data == _TORCH_LEGACY_MAGIC:
        return None
    if not isinstance(data, dict):
        raise ModelError(path, f"expected a dict of networks, found {type(data).__name__}")
    if any(isinstance(data.get(n), PersistentRecord | PlainModuleRecord) for n in NETWORK_NAMES):
        networks: dict[str, dict[str, Tensor]] = {}
        kwargs: dict[str, dict[str, Any]] = {}
        for name in NETWORK_NAMES:
            record = data.get(name)
            if record is None:
                continue
            state: dict[str, Tensor] = {}
            _collect_module(record, "", state, path)
            networks[name] = state
            if isinstance(record, PersistentRecord):
                kwargs[name] = _as_plain(record.state.get("_init_kwargs") or {})
        if "G_ema" not in networks and "G" in networks:
            networks["G_ema"] = networks["G"]
        return networks, kwargs
    return _state_dict_networks(data, path), {}


def _state_dict_networks(data: Any, path: Path) -> dict[str, dict[str, Tensor]]:
    """A converted generator state dict, or a dict of them under "G_ema" / "G" / "D"."""
    if isinstance(data, Mapping) and any(isinstance(data.get(n), Mapping) for n in NETWORK_NAMES):
        nets = {n: data[n] for n in NETWORK_NAMES if isinstance(data.get(n), Mapping)}
    elif isinstance(data, Mapping):
        nets = {"G_ema": data}
    else:
        raise ModelError(path, f"expected a state dict, found {type(data).__name__}")
    out: dict[str, dict[str, Tensor]] = {}
    for name, state in nets.items():
        bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
        if bad:
            raise ModelError(path, f"'{bad[0]}' in {name} is not a tensor; expected a MAT generator state dict")
        out[name] = {str(k).removeprefix("module."): v for k, v in state.items()}
    if "G_ema" not in out:
        out["G_ema"] = out.get("G", {})
    return out


def read_official(path: str | os.PathLike[str]) -> OfficialWeights:
    """Read an official ``.pkl`` snapshot or a converted ``.pth`` generator state dict, without running code.

    Raises:
        UnsafePickleError: the pickle refers to anything outside the allow-list (nothing was executed).
        ModelError: the file is missing or is not MAT weights.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "file not found; give the path of an official MAT .pkl or a converted .pth")
    digest = sha256_file(path)
    with open(path, "rb") as f:
        zip_signature = f.read(4) == b"PK\x03\x04"  # a cut zip is no zip to is_zipfile, but still a .pth
    if zip_signature or zipfile.is_zipfile(path):
        layout: Literal["pickle", "state_dict"] = "state_dict"
        networks = _state_dict_networks(_torch_load(path), path)
        kwargs: dict[str, dict[str, Any]] = {}
    else:
        snapshot = _read_snapshot(path)
        if snapshot is None:
            layout, networks, kwargs = "state_dict", _state_dict_networks(_torch_load(path), path), {}
        else:
            layout = "pickle"
            networks, kwargs = snapshot
    if not networks.get("G_ema"):
        raise ModelError(path, "no generator weights found")
    return OfficialWeights(path=path, sha256=digest, layout=layout, networks=networks, init_kwargs=kwargs)


def _torch_load(path: Path) -> Any:
    try:
        return guarded_torch_load(path, what="the state dict", map_location="cpu")
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(path, f"refused or unreadable state dict ({type(exc).__name__}: {exc})") from exc


# -------------------------------------------------------------------------------------------------------------
# Key map and architecture detection


def official_to_linop(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official key names to this project's (identical, less the recomputed ``attn_mask`` buffers)."""
    return {k: v for k, v in state.items() if not _DROPPED_KEY.search(k)}


@dataclass(frozen=True)
class GeneratorLayout:
    """What a generator state dict was built for."""

    resolution: int
    img_channels: int
    mapping_layers: int
    z_dim: int
    w_dim: int


def detect_generator_layout(state: Mapping[str, Tensor], path: str | os.PathLike[str] | None = None) -> GeneratorLayout:
    """Resolution, image channels and mapping depth of a MAT generator state dict (official names)."""
    first = state.get("synthesis.first_stage.conv_first.conv.weight")
    fc0 = state.get("mapping.fc0.weight")
    if first is None or fc0 is None:
        raise ModelError(path, "not a MAT generator (no synthesis.first_stage.conv_first / mapping.fc0 weights)")
    blocks = [int(m.group(1)) for k in state if (m := re.match(r"synthesis\.enc\.EncConv_Block_(\d+)x\1\.", k))]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"mapping\.fc(\d+)\.weight$", k))}
    last = state[f"mapping.fc{max(layers)}.weight"]
    return GeneratorLayout(
        resolution=max(blocks),
        img_channels=int(first.shape[1]) - 1,
        mapping_layers=len(layers),
        z_dim=int(fc0.shape[1]),
        w_dim=int(last.shape[0]),
    )


# -------------------------------------------------------------------------------------------------------------
# RGB -> gray


def _fold_input_channels(weight: Tensor, groups: list[tuple[int, int]]) -> Tensor:
    """Sum each [start, stop) slice of the input channels (dim 1) of an equalized-lr conv weight.

    The stored weight is scaled at run time by 1/sqrt(in_channels · k²); folding changes in_channels, so the
    sum is rescaled by sqrt(new_in / old_in) to keep the effective weights, and the response, unchanged.
    """
    folded = torch.cat([weight[:, a:b].sum(dim=1, keepdim=True) for a, b in groups], dim=1)
    return folded * math.sqrt(folded.shape[1] / weight.shape[1])


def rgb_to_gray_generator(state: Mapping[str, Tensor], img_channels: int = 3) -> dict[str, Tensor]:
    """Generator weights for C-channel images -> weights for 1-channel images.

    The image input channels of the first convolutions are summed (a gray image replicated to C channels
    gives the same response; see :func:`_fold_input_channels` for the equalized-lr gain) and the ToRGB
    outputs are averaged (the gray output is the channel mean; ToRGB's gain depends on its input only).
    """
    layout = detect_generator_layout(state)
    c = img_channels
    if layout.img_channels != c:
        raise ModelError(None, f"expected {c}-channel generator weights, found {layout.img_channels}")
    out = dict(state)
    first = "synthesis.first_stage.conv_first.conv.weight"  # [mask, image C]
    out[first] = _fold_input_channels(state[first], [(0, 1), (1, 1 + c)])
    enc = f"synthesis.enc.EncConv_Block_{layout.resolution}x{layout.resolution}.conv0.weight"
    # [mask, composite C, masked input C]
    out[enc] = _fold_input_channels(state[enc], [(0, 1), (1, 1 + c), (1 + c, 1 + 2 * c)])
    for key, value in state.items():
        if key.endswith(".toRGB.conv.weight"):  # [1, C, I, 1, 1]
            out[key] = value.mean(dim=1, keepdim=True)
        elif key.endswith(".toRGB.bias"):  # [C]
            out[key] = value.mean(dim=0, keepdim=True)
    return out


def rgb_to_gray_discriminator(state: Mapping[str, Tensor], img_channels: int = 3) -> dict[str, Tensor]:
    """Discriminator weights for C-channel images -> 1 channel (both FromRGB inputs: [mask, image C])."""
    out = dict(state)
    for key in ("Dis.0.conv.weight", "Dis_stg1.0.conv.weight"):
        if key not in state:
            raise ModelError(None, f"not a MAT discriminator (no {key})")
        weight = state[key]
        if weight.shape[1] != 1 + img_channels:
            raise ModelError(None, f"expected {img_channels}-channel discriminator weights in {key}")
        out[key] = _fold_input_channels(weight, [(0, 1), (1, 1 + img_channels)])
    return out


# -------------------------------------------------------------------------------------------------------------
# Matching against this project's networks


def match_state_dict(
    model_state: Mapping[str, Tensor], weights: Mapping[str, Tensor], what: str, path: str | os.PathLike[str]
) -> dict[str, Tensor]:
    """``weights`` restricted to the model's keys, after checking that every key and shape matches.

    Constant buffers the model regenerates (``resample_filter``) may be missing on either side.
    """
    regenerable = re.compile(r"(^|\.)resample_filter$")
    missing = [k for k in model_state if k not in weights and not regenerable.search(k)]
    unexpected = [k for k in weights if k not in model_state and not regenerable.search(k)]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ModelError(path, f"{what} weights do not fit the model: {', '.join(detail)}")
    out: dict[str, Tensor] = {}
    for key, target in model_state.items():
        if key not in weights:
            continue
        value = weights[key]
        if tuple(value.shape) != tuple(target.shape):
            raise ModelError(
                path, f"{what} weight {key} has shape {tuple(value.shape)}, the model needs {tuple(target.shape)}"
            )
        out[key] = value.to(target.dtype)
    return out



# -------------------------------------------------------------------------------------------------------------
# Import into a LINOP checkpoint


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_official` wrote."""

    out: Path
    source_preset: str
    preset: str
    networks: tuple[str, ...]
    converted_to_gray: bool
    source: str


def model_shapes(cfg: Any, which: Literal["G", "D"]) -> dict[str, Tensor]:
    """The state dict of a freshly built network on the ``meta`` device (names and shapes, no memory)."""
    build = build_generator if which == "G" else build_discriminator
    with torch.device("meta"):
        return build(cfg).state_dict()


def matching_preset(layout: GeneratorLayout, state: Mapping[str, Tensor], path: Path) -> str:
    """The preset whose generator has exactly the keys and shapes of ``state`` (official names)."""
    for name in PRESETS:
        cfg = get_config(name)
        if (cfg.resolution, cfg.img_channels, cfg.mapping_layers, cfg.z_dim, cfg.w_dim) != (
            layout.resolution, layout.img_channels, layout.mapping_layers, layout.z_dim, layout.w_dim
        ):
            continue
        try:
            match_state_dict(model_shapes(cfg, "G"), official_to_linop(state), "G_ema", path)
        except ModelError:
            continue
        return name
    raise ModelError(
        path,
        f"no preset fits these MAT weights ({layout.resolution}px, {layout.img_channels} channels, "
        f"{layout.mapping_layers} mapping layers); only the official 512 and 256 models are supported",
    )


def import_official(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    preset: str | None = None,
    generator_only: bool = False,
    half: bool = False,
    notes: str = "",
) -> ImportReport:
    """Convert an official MAT ``.pkl`` (or a converted ``.pth``) into a LINOP checkpoint at ``out``.

    Args:
        preset: the target preset; default: the preset the weights were made for. ``mat-512-gray`` converts
            3-channel 512 weights to one channel (see :func:`rgb_to_gray_generator`).
        generator_only: store only G_ema (an inference bundle), even if the file has G and D.
        half: store the weights as float16.
    Raises:
        UnsafePickleError, ModelError: unsafe or foreign file, no fitting preset, impossible conversion.
    """
    weights = read_official(source)
    path = weights.path
    g_ema = weights.networks["G_ema"]
    layout = detect_generator_layout(g_ema, path)
    source_preset = matching_preset(layout, g_ema, path)
    target = preset or source_preset
    source_cfg, target_cfg = get_config(source_preset), get_config(target)
    to_gray = source_cfg.img_channels == 3 and target_cfg.img_channels == 1
    comparable = config_to_dict(source_cfg) | ({"img_channels": 1} if to_gray else {})
    if comparable != config_to_dict(target_cfg):
        raise ModelError(
            path, f"weights for preset '{source_preset}' cannot be imported as '{target}'; "
            f"use --preset {source_preset}" + (" or mat-512-gray" if source_preset == "mat-512" else "")
        )
    names = ("G_ema",) if generator_only else tuple(n for n in NETWORK_NAMES if n in weights.networks)
    states: dict[str, dict[str, Tensor]] = {}
    for name in names:
        kind: Literal["G", "D"] = "D" if name == "D" else "G"
        state = official_to_linop(weights.networks[name])
        if to_gray:
            convert = rgb_to_gray_discriminator if kind == "D" else rgb_to_gray_generator
            state = convert(state, source_cfg.img_channels)
        states[name] = match_state_dict(model_shapes(target_cfg, kind), state, name, path)
    description = f"imported from {path.name} sha256={weights.sha256}"
    if to_gray:
        description += f"; converted from {source_cfg.img_channels} channels to 1"
    out_path = save_checkpoint(
        out,
        config=target_cfg,
        preset=target,
        G_ema=states["G_ema"],
        G=states.get("G"),
        D=states.get("D"),
        extra={"source": description, "notes": notes, "source_preset": source_preset},
        half=half,
    )
    return ImportReport(out_path, source_preset, target, names, to_gray, description)
