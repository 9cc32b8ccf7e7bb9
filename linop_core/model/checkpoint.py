"""LINOP's own checkpoint format: state dicts, preset, config and metadata in one ``torch.save`` file.

A checkpoint holds only tensors and plain Python values and is always read with ``torch.load(weights_only=True)``,
so opening one can never run code, after :mod:`linop_core.model.pickle_guard` has bounded what it may
allocate. Layout (format version 1)::

    {"format": "linop-mat", "format_version": 1, "preset": "mat-512", "config": {...},
     "G_ema": {name: tensor}, "G": {...} | None, "D": {...} | None,
     "metadata": {"created", "app_version", "torch_version", "training_kimg", "notes", "source",
                  "storage_dtype", ...}}

Weights may be stored as float16 (``half=True``) to keep bundled demo files small; they are loaded back as
float32. Files are written atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from linop_core.diskspace import full_disk_as_error, require_space
from linop_core.errors import ModelError
from linop_core.fileio import atomic_open
from linop_core.model.config import PRESETS, MatConfig, config_from_dict, config_to_dict, get_config
from linop_core.model.pickle_guard import guarded_torch_load
from linop_core.model.presets import build_discriminator, build_generator

FORMAT_NAME = "linop-mat"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint. State dicts are float32 on ``map_location``; ``G`` and ``D`` may be None."""

    path: Path
    format_version: int
    preset: str
    config_dict: dict[str, Any]
    G_ema: dict[str, Tensor]
    G: dict[str, Tensor] | None = None
    D: dict[str, Tensor] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> MatConfig:
        """The model configuration the weights were built for."""
        try:
            return config_from_dict(self.config_dict)
        except ModelError as exc:
            raise ModelError(self.path, exc.reason) from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(self.path, f"the checkpoint's model config is invalid ({exc})") from exc


def _plain(value: Any, what: str) -> Any:
    """``value`` if it is made of plain types only (what ``weights_only`` loading accepts)."""
    # Subclasses (torch's TorchVersion, numpy.float64 …) would pickle as globals weights_only refuses.
    for plain_type in (bool, int, float, str):
        if isinstance(value, plain_type):
            return plain_type(value)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [_plain(v, what) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, what) for k, v in value.items()}
    raise TypeError(f"{what}: {type(value).__name__} values cannot be stored in a checkpoint")


def _state_of(module_or_state: nn.Module | Mapping[str, Tensor], half: bool) -> dict[str, Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state entry {key} is a {type(value).__name__}, not a tensor")
        tensor = value.detach().to("cpu")
        if half and tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        # clone: a view would drag its whole storage into the file
        out[key] = tensor.clone().contiguous()
    return out


def _config_dict(config: MatConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return _plain(dict(config), "config")
    if dataclasses.is_dataclass(config):
        return _plain(config_to_dict(config), "config")
    raise TypeError(f"config must be a MatConfig or a dict, got {type(config).__name__}")


def payload_bytes(obj: Any) -> int:
    """The tensor bytes in a (nested) ``torch.save`` payload: about the file's size (zip records are stored)."""
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(payload_bytes(v) for v in obj)
    return 0


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then ``os.replace``.

    Raises:
        DiskFullError: not enough room (checked first, and if the disk fills meanwhile); nothing is left behind
            and ``path``, if it existed, is untouched.
    """
    needed = payload_bytes(obj) + (64 << 10)
    require_space(path, needed)
    with full_disk_as_error(path, needed), atomic_open(path) as f:
        torch.save(obj, f)  # torch reports a full disk as RuntimeError ("file write failed")


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    config: MatConfig | Mapping[str, Any],
    preset: str,
    G_ema: nn.Module | Mapping[str, Tensor],
    G: nn.Module | Mapping[str, Tensor] | None = None,
    D: nn.Module | Mapping[str, Tensor] | None = None,
    extra: Mapping[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a checkpoint atomically and return its path.

    Args:
        config: the model config (MatConfig or its dict form).
        preset: the preset name the config came from (shown by ``linop-model info``, checked on load).
        G_ema, G, D: modules or state dicts; G and D are optional (inference bundles need only G_ema).
        extra: metadata entries of plain types, e.g. ``training_kimg``, ``notes``, ``source``; they override
            the defaults.
        half: store floating-point tensors as float16 (about half the size; loaded back as float32).
    """
    from linop_core import __version__

    metadata: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "torch_version": torch.__version__,
        "training_kimg": None,
        "notes": "",
        "source": "",
        "storage_dtype": "float16" if half else "float32",
    }
    metadata.update(extra or {})
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "preset": str(preset),
        "config": _config_dict(config),
        "G_ema": _state_of(G_ema, half),
        "G": None if G is None else _state_of(G, half),
        "D": None if D is None else _state_of(D, half),
        "metadata": _plain(metadata, "metadata"),
    }
    atomic_torch_save(payload, path)
    return Path(path)


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a LINOP checkpoint (cheap: the file is memory-mapped, not read)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        payload = guarded_torch_load(path, what="the checkpoint", map_location="cpu", mmap=True)
    except Exception:
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT_NAME


def _float_state(state: Any, name: str, path: Path) -> dict[str, Tensor] | None:
    if state is None:
        return None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError(path, f"damaged checkpoint: '{name}' is not a state dict")
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu", expected_preset: str | None = None
) -> Checkpoint:
    """Read a checkpoint (``weights_only``: never runs code).

    Args:
        expected_preset: if given, the checkpoint's config must equal this preset's config.
    Raises:
        ModelError: missing file, not a LINOP checkpoint (e.g. an official .pkl: convert it with
            ``linop-model import``), a newer format version, or a preset mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "checkpoint not found")
    with open(path, "rb") as f:
        zip_signature = f.read(4) == b"PK\x03\x04"
    if not zip_signature and not zipfile.is_zipfile(path):
        raise ModelError(
            path,
            "not a LINOP checkpoint; an official MAT .pkl or a converted .pth must first be converted with "
            f"'linop-model import {path.name} --out NAME.pt'",
        )
    try:
        # bounded first (a cut file says so; a crafted one cannot allocate), then weights-only: never runs code
        payload = guarded_torch_load(path, what="the checkpoint", map_location=map_location)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            path, f"not a LINOP checkpoint or refused by the safe loader ({type(exc).__name__}); "
            "convert official weights with 'linop-model import'"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ModelError(
            path, "not a LINOP checkpoint (a plain state dict?); convert MAT weights with 'linop-model import'"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            path, f"checkpoint format version {version} is newer than this LINOP reads ({FORMAT_VERSION}); "
            "update LINOP"
        )
    g_ema = _float_state(payload.get("G_ema"), "G_ema", path)
    if g_ema is None:
        raise ModelError(path, "damaged checkpoint: no G_ema weights")
    checkpoint = Checkpoint(
        path=path,
        format_version=version,
        preset=str(payload.get("preset", "")),
        config_dict=dict(payload.get("config") or {}),
        G_ema=g_ema,
        G=_float_state(payload.get("G"), "G", path),
        D=_float_state(payload.get("D"), "D", path),
        metadata=dict(payload.get("metadata") or {}),
    )
    if expected_preset is not None:
        check_preset(checkpoint, expected_preset)
    return checkpoint


def check_preset(checkpoint: Checkpoint, expected_preset: str) -> None:
    """Raise ModelError unless the checkpoint's config is the config of ``expected_preset``."""
    if expected_preset not in PRESETS:
        raise ModelError(
            checkpoint.path, f"unknown preset '{expected_preset}'; choose one of {', '.join(PRESETS)}"
        )
    if config_to_dict(get_config(expected_preset)) != config_to_dict(checkpoint.config):
        raise ModelError(
            checkpoint.path,
            f"checkpoint is for preset '{checkpoint.preset}', but preset '{expected_preset}' was asked for; "
            f"use --preset {checkpoint.preset} or another checkpoint",
        )


def _load_into(model: nn.Module, state: Mapping[str, Tensor], what: str, path: Path) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        detail = []
        if result.missing_keys:
            detail.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            detail.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise ModelError(path, f"{what} weights do not fit the model config: {', '.join(detail)}")


def load_generator(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", *, expected_preset: str | None = None
) -> tuple[nn.Module, Checkpoint]:
    """Build the generator of a checkpoint, load its G_ema weights and return it in eval mode on ``device``."""
    checkpoint = load_checkpoint(path, expected_preset=expected_preset)
    generator = build_generator(checkpoint.config)
    try:
        _load_into(generator, checkpoint.G_ema, "G_ema", checkpoint.path)
    except RuntimeError as exc:  # shape mismatch
        raise ModelError(checkpoint.path, f"G_ema weights do not fit the model config ({exc})") from exc
    return generator.eval().requires_grad_(False).to(device), checkpoint


def load_discriminator(checkpoint: Checkpoint, device: str | torch.device = "cpu") -> nn.Module:
    """The checkpoint's discriminator (for fine-tuning). Raises ModelError if the file holds none."""
    if checkpoint.D is None:
        raise ModelError(checkpoint.path, "the checkpoint holds no discriminator; fine-tune from a full one")
    discriminator = build_discriminator(checkpoint.config)
    try:
        _load_into(discriminator, checkpoint.D, "D", checkpoint.path)
    except RuntimeError as exc:
        raise ModelError(checkpoint.path, f"D weights do not fit the model config ({exc})") from exc
    return discriminator.to(device)
