"""3x3 convolutions through NNPACK's Winograd kernels, for float32 inference on the CPU.

PyTorch's CPU convolutions (oneDNN) compute a 3x3 conv directly: 9 multiply-adds per output pixel and channel
pair. NNPACK, which PyTorch ships in its x86-64 and ARM builds, has Winograd F(6x6, 3x3) kernels that need about
a fifth of that; on one core they run MAT's 3x3 convs (128-512 channels) 2-3x faster. PyTorch only picks NNPACK
by itself for batches of 16 and more, so it is called here explicitly. Its rounding error is larger than the
direct conv's (about 1e-5 of the output's range instead of 1e-7, per layer), which keeps the generator well
inside the 1e-4 parity with the official model (tests/test_official_parity.py).

NNPACK reads and writes NCHW, while the generator runs channels-last, oneDNN's fast layout for all its other
convs. The input and output are therefore relaid out one image row at a time: a whole-map transposing copy runs
about four times slower because of cache misses.

Used only on the CPU, for float32, without autograd or autocast, groups 1, stride 1 and padding 1, from
:data:`MIN_CHANNELS` input channels, when NNPACK is available and enabled:
``torch.backends.nnpack.flags(enabled=False)`` turns this path off. NNPACK sizes its thread pool by
``torch.get_num_threads()`` at its first use and keeps that size for the process.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

# Below this, the relayouts cost more than the Winograd kernels save.
MIN_CHANNELS = 128


@functools.cache
def nnpack_available() -> bool:
    """Whether this PyTorch build has NNPACK (the check also initialises it, which its conv needs)."""
    return bool(torch.backends.nnpack.is_available()) and hasattr(torch, "_nnpack_spatial_convolution")


def use_winograd(x: Tensor, weight: Tensor, *, stride: int = 1, padding: int = 1, groups: int = 1) -> bool:
    """Whether :func:`conv3x3_winograd` applies to this conv (see the module docstring)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.ndim == 4
        and x.shape[1] >= MIN_CHANNELS
        and tuple(weight.shape[-2:]) == (3, 3)
        and stride == 1
        and padding == 1
        and groups == 1
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and torch._C._get_nnpack_enabled()
        and nnpack_available()
    )


def relayout(x: Tensor, memory_format: torch.memory_format) -> Tensor:
    """A copy of ``x`` (B, C, H, W) in ``memory_format``, copied row by row so that each transposing copy stays in
    cache."""
    out = torch.empty_like(x, memory_format=memory_format)
    for row in range(x.shape[-2]):
        out[:, :, row].copy_(x[:, :, row])
    return out


def to_channels_last(x: Tensor) -> Tensor:
    """``x`` (B, C, H, W) as a dense channels-last map: itself if it is one; in CPU inference copied row by row."""
    if x.is_contiguous(memory_format=torch.channels_last):
        return x
    if x.device.type != "cpu" or torch.is_grad_enabled():
        return x.contiguous(memory_format=torch.channels_last)
    return relayout(x, torch.channels_last)


def conv3x3_winograd(x: Tensor, weight: Tensor, bias: Tensor | None, *, any_layout: bool = False) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` by NNPACK.

    Args:
        x: (B, I, H, W) float32, any strides.
        weight: (O, I, 3, 3) float32.
        bias: (O,) or None.
        any_layout: return NNPACK's NCHW result as it is; otherwise a channels-last ``x`` gets a channels-last
            result.

    Returns:
        (B, O, H, W).
    """
    if not nnpack_available():
        raise RuntimeError("this PyTorch build has no NNPACK; check use_winograd() first")
    channels_last = not x.is_contiguous()
    if channels_last:
        x = relayout(x, torch.contiguous_format)
    y = torch._nnpack_spatial_convolution(x, weight.contiguous(), bias, [1, 1], [1, 1])
    return relayout(y, torch.channels_last) if channels_last and not any_layout else y
