"""Where pretrained weights come from: a file the user names, or the torch hub cache. Never the network.

torchvision's weight enums (and torch-fidelity's Inception) download on first use; LINOP must not (no
network on clinical workstations, no silent downloads in CI). These helpers find the file that would have
been downloaded, in ``torch.hub.get_dir()/checkpoints/``, and otherwise fail with one line naming the file,
where it comes from and how to provide it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models import WeightsEnum

from linop_core.errors import ModelError


def hub_cache_file(filename: str) -> Path:
    """``torch.hub.get_dir()/checkpoints/<filename>``: where torch's downloader keeps weight files."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def torchvision_cache_file(weights: WeightsEnum) -> Path:
    """The path torchvision's downloader would store ``weights`` at (the file may not exist)."""
    return hub_cache_file(os.path.basename(weights.url))


def resolve_local_weights(
    path: str | os.PathLike[str] | None, *, filename: str, url: str, what: str, alternative: str = ""
) -> Path:
    """``path`` when given (it must exist), else the hub cache's ``filename``; never downloads ``url``.

    ``what`` names the use (e.g. "the VGG-19 perceptual loss"); ``alternative`` is appended to the fix
    (e.g. "or switch the perceptual loss off").
    """
    tail = f", {alternative}" if alternative else ""
    if path is not None:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise ModelError(
                candidate, f"weight file for {what} not found; pass an existing copy of {filename} ({url}){tail}"
            )
        return candidate
    cached = hub_cache_file(filename)
    if not cached.is_file():
        raise ModelError(
            cached,
            f"weights for {what} are not on this machine and LINOP never downloads them: copy {filename} "
            f"(from {url}) to {cached.parent}/, or pass its path explicitly{tail}",
        )
    return cached


def resolve_weights_file(
    path: str | os.PathLike[str] | None, weights: WeightsEnum, *, what: str, alternative: str = ""
) -> Path:
    """:func:`resolve_local_weights` for a torchvision weights enum (e.g. ``ResNet50_Weights.IMAGENET1K_V1``)."""
    return resolve_local_weights(
        path, filename=os.path.basename(weights.url), url=weights.url, what=what, alternative=alternative
    )
