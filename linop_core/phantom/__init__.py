"""Procedural mammograms and chest X-rays, written in the exact VinDr-Mammo / VinDr-CXR layouts.

Pure array renderers (``render_mammogram``, ``render_mass``, ``render_cxr``) for tests and synthesis code, and
dataset writers (``make_mammo_dataset``, ``make_cxr_dataset``) behind ``linop-data phantom``.
"""

from linop_core.phantom.cxr import CXR_FINDINGS, CxrPhantom, render_cxr
from linop_core.phantom.cxr_dataset import make_cxr_dataset
from linop_core.phantom.mammo import (
    DENSITIES,
    MASS_SHAPES,
    MammoPhantom,
    MassPatch,
    MassSpec,
    render_mammogram,
    render_mass,
)
from linop_core.phantom.mammo_dataset import make_mammo_dataset
from linop_core.phantom.records import PhantomSummary

__all__ = [
    "CXR_FINDINGS",
    "DENSITIES",
    "MASS_SHAPES",
    "CxrPhantom",
    "MammoPhantom",
    "MassPatch",
    "MassSpec",
    "PhantomSummary",
    "make_cxr_dataset",
    "make_mammo_dataset",
    "render_cxr",
    "render_mammogram",
    "render_mass",
]
