"""Builders for MAT networks (torchvision style: one config per preset in :mod:`.config`, ``build_*`` here).

The configs and preset table live in :mod:`linop_core.model.config`, which imports no network module, so
the generator and discriminator can depend on it without a circle; this module is re-exported for callers
that import configs from ``presets``.
"""

from __future__ import annotations

import torch

from linop_core.model.config import (
    PRESETS,
    MatConfig,
    config_from_dict,
    config_to_dict,
    get_config,
    mat_256,
    mat_512,
    mat_512_gray,
    mat_small,
)
from linop_core.model.discriminator import Discriminator
from linop_core.model.generator import Generator

__all__ = [
    "PRESETS",
    "MatConfig",
    "build_discriminator",
    "build_generator",
    "config_from_dict",
    "config_to_dict",
    "get_config",
    "mat_256",
    "mat_512",
    "mat_512_gray",
    "mat_small",
]


def build_generator(cfg: MatConfig, *, seed: int | None = None) -> Generator:
    """A freshly initialised :class:`~linop_core.model.generator.Generator` for ``cfg``.

    ``seed`` makes the initial weights reproducible without touching the global RNG state.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return Generator(cfg)


def build_discriminator(cfg: MatConfig, *, seed: int | None = None) -> Discriminator:
    """A freshly initialised :class:`~linop_core.model.discriminator.Discriminator` for ``cfg``."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return Discriminator(cfg)
