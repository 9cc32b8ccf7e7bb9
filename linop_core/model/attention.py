"""MAT's transformer body: multi-head contextual attention in (shifted) windows, adjusted blocks, layers.

Tokens are kept as (B, H, W, C) maps (row-major token order, the same as the official (B, H*W, C)), so the
per-token linear layers, the windowing and the convs between layers need no copies beyond a permute.
The validity mask travels alongside as (B, H, W, 1) with 1 = valid token, 0 = hole.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linop_core.model.layers import FullyConnectedLayer, PartialConv2d, accumulate_

# Additive attention bias for masked keys and for token pairs from different shifted regions. It is -100,
# not -inf: a window whose keys are all invalid attends uniformly, as in the official model.
MASKED_LOGIT = -100.0


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * H/window * W/window, window*window, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """(B * nW, window*window, C) -> (B, H, W, C); the inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.reshape(-1, height // window, width // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, c)


def shifted_window_bias(height: int, width: int, window: int, shift: int, device: torch.device | None = None
                        ) -> Tensor:
    """Attention bias that keeps tokens of different pre-shift regions apart in shifted windows (Swin).

    Returns:
        (nW, window*window, window*window) float32 with 0 for pairs from the same region and -100 otherwise,
        nW = (height/window) * (width/window).
    """
    labels = torch.zeros(1, height, width, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bounds:
        for cols in bounds:
            labels[:, rows, cols, :] = region
            region += 1
    lw = window_partition(labels, window).squeeze(-1)  # (nW, N)
    different = lw[:, None, :] != lw[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill_(different, MASKED_LOGIT)


def key_mask_bias(mask_windows: Tensor) -> Tensor:
    """Attention bias from a window's token validity: -100 for mask 0, 0 for mask 1, the value otherwise.

    (Soft mask values between 0 and 1 pass through unchanged, as in the official model.)

    Args:
        mask_windows: (B*nW, N).

    Returns:
        (B*nW, 1, 1, N).
    """
    bias = mask_windows.masked_fill(mask_windows == 0, MASKED_LOGIT).masked_fill(mask_windows == 1, 0.0)
    return bias[:, None, None, :]


class WindowAttention(nn.Module):
    """Multi-head contextual attention (MCA) inside non-overlapping windows of a token map.

    q and k come from the l2-normalised tokens, v from the raw tokens; logits are scaled by head_dim^-0.5;
    keys whose mask is 0 get -100. After attention, a window becomes fully valid if it holds at least one valid
    token (the mask update of the paper).

    Input x (B, H, W, C), mask (B, H, W, 1) or None -> out (B, H, W, C), new mask (B, H, W, 1) or None.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.q = FullyConnectedLayer(dim, dim)
        self.k = FullyConnectedLayer(dim, dim)
        self.v = FullyConnectedLayer(dim, dim)
        self.proj = FullyConnectedLayer(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None, *, window: int, shift: int,
                region_bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        b, h, w, c = x.shape
        heads = self.num_heads
        normed = F.normalize(x, p=2.0, dim=-1)
        # q, k and v are per-token maps, so they are computed before rolling and windowing.
        qkv = torch.stack([self.q(normed), self.k(normed), self.v(x)])  # (3, B, H, W, C)
        if shift:
            qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(2, 3))
            if mask is not None:
                mask = torch.roll(mask, shifts=(-shift, -shift), dims=(1, 2))
        n = window * window
        qkv = window_partition(qkv.reshape(3 * b, h, w, c), window)  # (3*B*nW, N, C)
        qkv = qkv.reshape(3, -1, n, heads, c // heads).transpose(2, 3)  # (3, B*nW, heads, N, d)
        q, k, v = qkv.unbind(0)

        bias = None
        mask_windows = None
        if region_bias is not None:
            n_windows = region_bias.shape[0]
            bias = region_bias[None].expand(b, n_windows, n, n).reshape(b * n_windows, 1, n, n)
        if mask is not None:
            mask_windows = window_partition(mask, window).squeeze(-1)  # (B*nW, N)
            key_bias = key_mask_bias(mask_windows)
            bias = key_bias if bias is None else bias + key_bias
        if bias is not None:
            bias = bias.to(q.dtype)
        # SDPA's default scale is head_dim^-0.5, the scale MAT uses.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B*nW, heads, N, d)
        out = window_reverse(out.transpose(1, 2).reshape(-1, n, c), window, h, w)
        if mask is not None:
            with torch.no_grad():
                valid = mask_windows.sum(dim=1, keepdim=True).clamp(0, 1).expand(-1, n)
                mask = window_reverse(valid.unsqueeze(-1), window, h, w)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
            if mask is not None:
                mask = torch.roll(mask, shifts=(shift, shift), dims=(1, 2))
        return self.proj(out), mask


class Mlp(nn.Module):
    """fc2(lrelu(fc1(x))): (..., dim) -> (..., dim) through a hidden width."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = FullyConnectedLayer(dim, hidden, activation="lrelu")
        self.fc2 = FullyConnectedLayer(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x))


class TransformerBlock(nn.Module):
    """MAT's adjusted transformer block: no LayerNorm, no residual around attention or MLP, no dropout.

    x' = mlp(fuse([x, attention(x)])) with ``fuse`` an FC 2C -> C with lrelu.

    Input x (B, H, W, C), mask (B, H, W, 1) or None -> x (B, H, W, C), updated mask.
    """

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.attn = WindowAttention(dim, num_heads)
        self.fuse = FullyConnectedLayer(2 * dim, dim, activation="lrelu")
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, mask: Tensor | None, region_bias: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        attended, mask = self.attn(x, mask, window=self.window, shift=self.shift, region_bias=region_bias)
        x = self.fuse(torch.cat([x, attended], dim=-1))
        return self.mlp(x), mask

    def extra_repr(self) -> str:
        return f"window={self.window}, shift={self.shift}"


class PatchResample(nn.Module):
    """Token-map x2 down-sampling (partial conv, keeps the mask) or up-sampling (conv, mask dropped).

    Stored as ``.conv`` (a :class:`PartialConv2d`). Input (B, H, W, C) -> (B, H/2, W/2, C) or (B, 2H, 2W, C).
    """

    def __init__(self, dim: int, direction: Literal["down", "up"]) -> None:
        super().__init__()
        self.direction = direction
        if direction == "down":
            self.conv = PartialConv2d(dim, dim, 3, activation="lrelu", down=2)
        else:
            self.conv = PartialConv2d(dim, dim, 3, activation="lrelu", up=2)

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.direction == "up":
            mask = None
        y, mask = self.conv(x.permute(0, 3, 1, 2), None if mask is None else mask.permute(0, 3, 1, 2))
        return y.permute(0, 2, 3, 1), None if mask is None else mask.permute(0, 2, 3, 1)

    def extra_repr(self) -> str:
        return self.direction


class BasicLayer(nn.Module):
    """One stage of the transformer body: optional resampling, ``depth`` blocks, a 3x3 partial conv, a residual.

    Even blocks use plain windows and odd blocks windows shifted by half a window. As in the official model,
    when the design token grid is not larger than the window, the window shrinks to the grid and never shifts.
    The region bias for shifted windows is recomputed for the actual grid on every call (non-square and larger
    grids work).

    The resampling module is stored as ``downsample`` (also for up-sampling) to keep the official key names.

    Input x (B, H, W, C), mask (B, H, W, 1) or None -> x (B, H', W', C), mask or None.
    """

    def __init__(self, dim: int, design_grid: int, depth: int, num_heads: int, window: int,
                 resample: Literal["down", "up"] | None = None, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        shift = window // 2
        if design_grid <= window:
            window, shift = design_grid, 0
        self.window = window
        self.shift = shift
        self.downsample = PatchResample(dim, resample) if resample is not None else None
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, window, 0 if i % 2 == 0 else shift, mlp_ratio) for i in range(depth)
        )
        self.conv = PartialConv2d(dim, dim, 3, activation="lrelu")

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.downsample is not None:
            x, mask = self.downsample(x, mask)
        _, h, w, _ = x.shape
        if h % self.window or w % self.window:
            raise ValueError(f"token grid {h}x{w} is not divisible by the attention window {self.window}")
        identity = x
        region_bias = None
        if self.shift and any(blk.shift for blk in self.blocks):
            region_bias = shifted_window_bias(h, w, self.window, self.shift, x.device)
        for blk in self.blocks:
            x, mask = blk(x, mask, region_bias if blk.shift else None)
        y, mask = self.conv(x.permute(0, 3, 1, 2), None if mask is None else mask.permute(0, 3, 1, 2))
        x = accumulate_(y.permute(0, 2, 3, 1), identity)
        return x, None if mask is None else mask.permute(0, 2, 3, 1)
