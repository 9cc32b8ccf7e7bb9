"""Building blocks of MAT: equalized-learning-rate layers, FIR resampling and modulated convolution.

Everything is plain PyTorch (no custom CUDA extensions). The numerics follow StyleGAN2 semantics as used by
MAT, so that weights trained with the official code load and give the same output:

- Equalized learning rate: parameters are stored as raw N(0, 1) samples and scaled at run time
  (``1/sqrt(fan_in)``, times ``lr_multiplier`` for the mapping network).
- ``lrelu`` always means leaky ReLU with slope 0.2 followed by a multiply by sqrt(2).
- FIR resampling uses the 4x4 filter ``outer([1,3,3,1], [1,3,3,1]) / 64``. Down-sampling convs blur first and
  then run a stride-2 conv; up-sampling convs run a stride-2 transposed conv with flipped weights and then blur
  with gain 4.

Speed without custom kernels: since lrelu is positively homogeneous, ``lrelu(z) * g == lrelu(g * z)`` for g > 0,
so every activation gain (sqrt(2) times the caller's gain) is folded into the (small) weights and bias; the bias
is folded into the conv (or into the FIR blur that follows an up-sampling conv); what remains per layer is the
conv itself and one in-place leaky ReLU. The results equal StyleGAN2's ``bias_act`` up to float rounding.

Tensor layout: images and feature maps are (B, C, H, W); any memory format (channels-last included) works.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linop_core.model.winograd import conv3x3_winograd, to_channels_last, use_winograd

Activation = Literal["linear", "lrelu"]

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------------------------
# Functional helpers


def fir_filter(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> Tensor:
    """Separable 2-D FIR low-pass filter normalised to sum 1.

    Returns:
        (K, K) float32 tensor, the outer product of ``taps`` with itself divided by its sum.
    """
    t = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def bias_act(x: Tensor, bias: Tensor | None, activation: Activation = "linear", gain: float = 1.0,
             dim: int = 1) -> Tensor:
    """Add a bias, apply the activation and multiply by its gain (sqrt(2) for lrelu) times ``gain``.

    The unfused reference of what the layers below compute with folded gains (used by tests).

    Args:
        x: any shape.
        bias: (x.shape[dim],) or None.
        activation: ``"linear"`` or ``"lrelu"``.
        gain: extra gain on top of the activation's own gain.
        dim: the dimension of ``x`` the bias runs along.

    Returns:
        Tensor shaped like ``x``.
    """
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.to(x.dtype).reshape(shape)
    if activation == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)
    if activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    return x * gain if gain != 1.0 else x


def activation_gain(activation: Activation) -> float:
    """The activation's own output gain: sqrt(2) for lrelu, 1 for linear."""
    return LRELU_GAIN if activation == "lrelu" else 1.0


def activate_(x: Tensor, activation: Activation) -> Tensor:
    """In-place leaky ReLU (slope 0.2) for ``lrelu``; identity for ``linear``. ``x`` must be a fresh temporary.

    In-place is autograd-safe here: with a positive slope the backward pass only needs the output.
    """
    return F.leaky_relu_(x, LRELU_SLOPE) if activation == "lrelu" else x


def accumulate_(x: Tensor, y: Tensor) -> Tensor:
    """``x + y``, written into ``x`` when autograd is off (inference); ``x`` must be a fresh temporary."""
    return x.add_(y) if not torch.is_grad_enabled() else x + y


def fir_blur(x: Tensor, f: Tensor, padding: tuple[int, int, int, int], gain: float = 1.0,
             stride: int = 1, bias: Tensor | None = None) -> Tensor:
    """Pad (negative values crop) and filter every channel with the FIR filter (true convolution).

    Args:
        x: (B, C, H, W).
        f: (K, K) filter.
        padding: (left, right, top, bottom), as for ``F.pad``.
        gain: multiplies the filter.
        stride: keep every ``stride``-th output sample (down-sampling).
        bias: (C,) added after filtering, or None.

    Returns:
        (B, C, (H + top + bottom - K) // stride + 1, (W + left + right - K) // stride + 1).
    """
    channels = x.shape[1]
    left, right, top, bottom = padding
    conv_padding = 0
    if left == right == top == bottom and left >= 0:
        conv_padding = left  # let the conv pad: no padded copy of a large map
    elif any(p != 0 for p in padding):
        x = F.pad(x, padding)
    weight = (f * gain).flip([0, 1]).to(x.dtype)
    weight = match_memory_format(weight[None, None].repeat(channels, 1, 1, 1), x)
    if bias is not None:
        bias = bias.to(x.dtype)
    return F.conv2d(x, weight, bias, stride=stride, padding=conv_padding, groups=channels)


def match_memory_format(weight: Tensor, x: Tensor) -> Tensor:
    """``weight`` in the memory format of ``x`` (channels-last or contiguous).

    oneDNN and cuDNN pick the conv layout from both operands; when they disagree the large input gets copied.
    """
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return weight.contiguous(memory_format=torch.channels_last)
    return weight.contiguous()


def upsample2d(x: Tensor, f: Tensor) -> Tensor:
    """Up-sample x2: zero insertion followed by the FIR filter with gain 4 (StyleGAN2 ``upsample2d``).

    Written as one depthwise transposed conv; for the symmetric 4-tap filter it equals zero insertion, padding
    (2, 1) and the filter.

    Args:
        x: (B, C, H, W).
        f: (4, 4) filter.

    Returns:
        (B, C, 2H, 2W).
    """
    channels = x.shape[1]
    weight = match_memory_format((f * 4.0).to(x.dtype)[None, None].repeat(channels, 1, 1, 1), x)
    pad = (f.shape[-1] - 2) // 2
    return F.conv_transpose2d(x, weight, stride=2, padding=pad, groups=channels)


def conv2d_resample(x: Tensor, weight: Tensor, f: Tensor, up: int = 1, down: int = 1,
                    bias: Tensor | None = None, groups: int = 1, *, any_layout: bool = False) -> Tensor:
    """Convolution with "same" padding and optional FIR x2 up- or down-sampling.

    ``bias`` is added last: by the conv itself, or for up-sampling by the blur that follows the transposed conv
    (a bias before the blur would leak across the zero-padded border).

    Args:
        x: (B, I*groups, H, W).
        weight: (O, I, k, k), k odd, already scaled by its equalized-lr gain.
        f: (4, 4) FIR filter.
        up, down: 1 or 2 (not both 2).
        bias: (O,) or None.
        groups: grouped conv.
        any_layout: the caller takes the result in any memory format, which spares the Winograd path its
            relayout back to the layout of ``x``.

    Returns:
        (B, O, H*up/down, W*up/down).
    """
    k = weight.shape[-1]
    fk = f.shape[-1]
    if bias is not None:
        bias = bias.to(x.dtype)
    if up == 1 and down == 1:
        if use_winograd(x, weight, padding=k // 2, groups=groups):
            return conv3x3_winograd(x, weight, bias, any_layout=any_layout)
        return F.conv2d(x, match_memory_format(weight, x), bias, padding=k // 2, groups=groups)
    # oneDNN's blur and resampling convs run 2-3x slower on NCHW maps (the Winograd path's output) than on
    # channels-last ones.
    x = to_channels_last(x)
    if down == 2 and up == 1:
        # Blur with StyleGAN2's padding, then a stride-2 valid conv.
        p0 = k // 2 + (fk - down + 1) // 2
        p1 = k // 2 + (fk - down) // 2
        x = fir_blur(x, f, (p0, p1, p0, p1))
        return F.conv2d(x, match_memory_format(weight, x), bias, stride=2, groups=groups)
    if up == 2 and down == 1:
        # Stride-2 transposed conv of the flipped kernel (a true convolution of the zero-inserted input),
        # then the blur with gain up**2 = 4 and the padding that brings the size to exactly 2H.
        if groups == 1:
            wt = weight.transpose(0, 1)
        else:
            o, i = weight.shape[:2]
            wt = weight.reshape(groups, o // groups, i, k, k).transpose(1, 2).reshape(groups * i, o // groups, k, k)
        wt = match_memory_format(wt.flip([2, 3]), x)
        x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
        p0 = k // 2 + (fk + up - 1) // 2 - (k - 1)
        p1 = k // 2 + (fk - up) // 2 - (k - up)
        return fir_blur(x, f, (p0, p1, p0, p1), gain=4.0, bias=bias)
    raise ValueError(f"unsupported resampling up={up} down={down}")


# ---------------------------------------------------------------------------------------------------------------
# Equalized-learning-rate layers


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalized learning rate.

    y = act(x @ (W * lr_multiplier / sqrt(in))^T + b * lr_multiplier)

    Input (..., in_features) -> output (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: Activation = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation: Activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        g = activation_gain(self.activation)
        w = self.weight * (self.weight_gain * g)
        b = None if self.bias is None else self.bias * (self.bias_gain * g)
        return activate_(F.linear(x, w, b), self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Conv with equalized learning rate, "same" padding, optional FIR x2 up/down-sampling, bias and activation.

    Input (B, in_channels, H, W) -> output (B, out_channels, H*up/down, W*up/down).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: Activation = "linear", up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.activation: Activation = activation
        self.up = up
        self.down = down
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", fir_filter())
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        """``gain`` (> 0) multiplies the activated output (StyleGAN2's ``gain``)."""
        g = activation_gain(self.activation) * gain
        w = self.weight * (self.weight_gain * g)
        b = None if self.bias is None else self.bias * g
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, bias=b)
        return activate_(x, self.activation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, up={self.up}, down={self.down}, "
                f"activation={self.activation}")


class PartialConv2d(nn.Module):
    """Partial convolution (mask-aware conv) around a :class:`Conv2dLayer` stored as ``.conv``.

    The conv (bias and activation included) runs on x unchanged; its output is then rescaled by
    ``k^2 / S`` where S counts the known pixels under the kernel, and zeroed where S = 0. The new mask is
    ``clamp(S, 0, 1)``.

    Input x (B, I, H, W), mask (B, 1, H, W) or None -> x (B, O, H', W'), mask (B, 1, H', W') or None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, activation: Activation = "linear",
                 up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, kernel_size, activation=activation, up=up, down=down)
        self.kernel_size = kernel_size
        self.down = down

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        x = self.conv(x)
        if mask is None:
            return x, None
        with torch.no_grad():
            k = self.kernel_size
            ones = torch.ones(1, 1, k, k, dtype=mask.dtype, device=mask.device)
            count = F.conv2d(mask, ones, stride=self.down, padding=k // 2)
            new_mask = count.clamp(0, 1)
            ratio = (k * k) / (count + 1e-8) * new_mask
        ratio = ratio.to(x.dtype)
        return (x.mul_(ratio) if not torch.is_grad_enabled() else x * ratio), new_mask


class ModulatedConv2d(nn.Module):
    """Style-modulated conv (StyleGAN2), with optional demodulation and x2 up-sampling.

    Stored weight (1, O, I, k, k); ``affine`` maps the style to per-input-channel scales (bias init 1).
    Two equivalent evaluations: for batch 1 the modulation is folded into the weight (one plain conv); for
    larger batches the input is scaled per sample and the output demodulated per sample, so that the whole
    batch shares one conv. No bias, no activation. The result may come back in NCHW even for a channels-last
    input (the Winograd path's layout); the resampling convs of the next layer take either.

    Input x (B, I, H, W), style (B, style_dim) -> (B, O, H*up, W*up).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, *,
                 demodulate: bool = True, up: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.up = up
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1.0)
        self.register_buffer("resample_filter", fir_filter())

    def forward(self, x: Tensor, style: Tensor, *, gain: float = 1.0, bias: Tensor | None = None) -> Tensor:
        """
        Args:
            x: (B, I, H, W).
            style: (B, style_dim).
            gain: multiplies the result (used to fold a following activation gain in).
            bias: (O,) added to the result, or None.

        Returns:
            (B, O, H*up, W*up).
        """
        batch = x.shape[0]
        styles = self.affine(style)  # (B, I)
        if batch == 1:
            w = self.sample_weight(styles[0], gain).to(x.dtype)
            return conv2d_resample(x, w, self.resample_filter, up=self.up, bias=bias, any_layout=True)
        w = self.weight[0] * self.weight_gain  # (O, I, k, k)
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, up=self.up, any_layout=True)
        if self.demodulate:
            # sum_{i,k} (w[o,i,k] * s[b,i])^2 = (sum_k w[o,i,k]^2) @ s[b,i]^2
            scale = torch.rsqrt(styles.square() @ w.square().sum(dim=[2, 3]).t() + 1e-8) * gain  # (B, O)
        elif gain != 1.0:
            scale = torch.full((batch, self.out_channels), gain, device=x.device)
        else:
            return x if bias is None else x.add_(bias.to(x.dtype).reshape(1, -1, 1, 1))
        scale = scale.to(x.dtype).reshape(batch, -1, 1, 1)
        if bias is None:
            return x * scale
        return torch.addcmul(bias.to(x.dtype).reshape(1, -1, 1, 1), x, scale)

    def sample_weight(self, styles: Tensor, gain: float = 1.0) -> Tensor:
        """The weight modulated by one sample's ``styles`` (I,), demodulated and times ``gain``: (O, I, k, k).

        The demodulation norm comes from the small (O, I) table of squared kernel sums, so the large weight is
        read twice and written once.
        """
        w = self.weight[0]
        s = styles * self.weight_gain  # (I,)
        if self.demodulate:
            # sum_{i,k} (w[o,i,k] * s[i])^2 = (sum_k w[o,i,k]^2) @ s^2
            d = torch.rsqrt(w.square().sum(dim=[2, 3]) @ s.square() + 1e-8) * gain  # (O,)
            return w * (d[:, None] * s[None, :])[:, :, None, None]
        return w * (s * gain)[None, :, None, None]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, up={self.up}, "
                f"demodulate={self.demodulate}")


NoiseMode = Literal["random", "const", "none"]


class StyleConv(nn.Module):
    """Modulated conv, optional per-pixel noise, bias and lrelu.

    With ``use_noise`` it stores a learned scalar ``noise_strength`` and a buffer ``noise_const``
    (resolution, resolution) used by ``noise_mode="const"``.

    Input x (B, I, H, W), style (B, style_dim) -> (B, O, H*up, W*up).
    """

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, resolution: int, *,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True, demodulate: bool = True) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=demodulate, up=up)
        self.use_noise = use_noise
        self.resolution = resolution
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, style: Tensor, *, noise_mode: NoiseMode = "random",
                noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """
        Args:
            noise_mode: ``random`` draws N(0, 1) noise (B, 1, H, W) from ``generator``; ``const`` uses the stored
                ``noise_const`` when it matches the output size and falls back to ``random`` otherwise (the
                buffer only exists at the design resolution); ``none`` adds no noise.
            noise: explicit unscaled noise (B or 1, 1, H, W); overrides ``noise_mode`` (used for parity tests).
        """
        g = LRELU_GAIN
        x = self.conv(x, style, gain=g, bias=self.bias * g)
        if self.use_noise:
            if noise is None:
                noise = self.draw_noise(x, noise_mode, generator)
            if noise is not None:
                x = x.add_(noise.to(x.dtype) * (self.noise_strength * g).to(x.dtype))
        return activate_(x, "lrelu")

    def draw_noise(self, x: Tensor, noise_mode: NoiseMode, generator: torch.Generator | None) -> Tensor | None:
        """Noise for output ``x`` (B, O, H, W): (B, 1, H, W), (H, W) for const, or None for ``none``."""
        return self.noise_for(x.shape[0], x.shape[-2], x.shape[-1], x.device, noise_mode, generator)

    def noise_for(self, batch: int, height: int, width: int, device: torch.device, noise_mode: NoiseMode,
                  generator: torch.Generator | None) -> Tensor | None:
        """Noise for a (batch, O, height, width) output: (B, 1, H, W), (H, W) for const, or None for ``none``."""
        if noise_mode == "none":
            return None
        if noise_mode == "const" and (height, width) == tuple(self.noise_const.shape):
            return self.noise_const
        if noise_mode not in ("random", "const"):
            raise ValueError(f"unknown noise_mode {noise_mode!r}")
        return torch.randn((batch, 1, height, width), generator=generator, device=device)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation plus bias; adds the x2-up-sampled previous image if given.

    Input x (B, I, H, W), style (B, style_dim), skip (B, C, H/2, W/2) or None -> (B, C, H, W).
    """

    def __init__(self, in_channels: int, img_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.register_buffer("resample_filter", fir_filter())

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style, bias=self.bias)
        if skip is not None:
            if skip.shape[-2:] != out.shape[-2:]:
                skip = upsample2d(skip, self.resample_filter)
            out = accumulate_(out, skip)
        return out


class MinibatchStdLayer(nn.Module):
    """Appends the mean standard deviation over groups of samples as extra feature maps (StyleGAN2).

    Sample i belongs to group ``i % (N / G)``. G is ``min(group_size, N)``, lowered to the largest divisor of N
    when it does not divide N (the official code fails there).

    Input (N, C, H, W) -> (N, C + num_channels, H, W).
    """

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (n/G, F, c, H, W)
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # (n/G, F, 1, 1)
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
