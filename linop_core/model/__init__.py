"""Mask-Aware Transformer (MAT): building blocks, generator, discriminator, presets, checkpoints.

Typical use::

    from linop_core.model import build_generator, get_config

    G = build_generator(get_config("mat-small"), seed=0).eval()
    out = G(img, mask, generator=torch.Generator().manual_seed(1))  # img (B, C, H, W) in [-1, 1], mask 1 = known
"""

from linop_core.model.discriminator import Discriminator
from linop_core.model.generator import Generator, MappingNetwork, SynthesisNetwork
from linop_core.model.presets import (
    PRESETS,
    MatConfig,
    build_discriminator,
    build_generator,
    config_from_dict,
    config_to_dict,
    get_config,
    mat_256,
    mat_512,
    mat_512_gray,
    mat_small,
)

__all__ = [
    "PRESETS",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "MatConfig",
    "SynthesisNetwork",
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
