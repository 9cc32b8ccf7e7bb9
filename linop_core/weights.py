"""Where pretrained weights come from: a file the user names, or torchvision's cache. Never the network.

torchvision's weight enums download on first use; LINOP must not (no network on clinical workstations, no
silent downloads in CI). These helpers find the file that torchvision *would* have downloaded, in
``torch.hub.get_dir()/checkpoints/``, and otherwise fail with a message naming the file and how to provide it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models import WeightsEnum

from linop_core.errors import ModelError


def torchvision_cache_file(weights: WeightsEnum) -> Path:
    """The path torchvision's downloader would store ``weights`` at (the file may not exist)."""
    filename = os.path.basename(weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def resolve_weights_file(path: str | os.PathLike[str] | None, weights: WeightsEnum, *, what: str) -> Path:
    """``path`` when given (it must exist), else torchvision's cached file for ``weights``.

    ``what`` names the use in the error message (e.g. "the VGG-19 perceptual loss").
    """
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise ModelError(candidate, f"weight file for {what} not found; check the path")
        return candidate
    cached = torchvision_cache_file(weights)
    if not cached.is_file():
        raise ModelError(
            cached,
            f"weights for {what} are not on this machine and LINOP never downloads them: copy "
            f"{cached.name} (from {weights.url}) to {cached.parent}/ or pass its path explicitly",
        )
    return cached
