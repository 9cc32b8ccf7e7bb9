"""MAT generator: mapping network, stage 1 (mask-aware transformer) and stage 2 (Conv-U-Net refinement).

Conventions: images (B, C, H, W) in [-1, 1]; masks (B, 1, H, W) with 1 = known pixel, 0 = hole. H and W must be
multiples of the design resolution (non-square allowed). Both stages composite their output with the known
pixels, so the known pixels of every output equal the input exactly.

Randomness. One ``torch.Generator`` (on the input's device; None means torch's default RNG) drives, in this
order: z (when not given), the stage-1 style-manipulation keep map, the stage-2 keep map, and the per-layer
noise of the stage-2 decoder (in decoder order). The keep maps replace MAT's ``dropout(p=0.5, training=True)``;
they are {0, 1} maps that keep a feature where 1 and take the z-derived map where 0. For parity tests every
random tensor can be passed explicitly instead (``dropout_maps`` and ``noise`` below).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linop_core.errors import ModelError
from linop_core.model.attention import BasicLayer
from linop_core.model.config import MatConfig
from linop_core.model.hole_window import Window, composite, decoder_windows
from linop_core.model.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    NoiseMode,
    PartialConv2d,
    StyleConv,
    ToRGB,
    accumulate_,
)

STAGE2_BOTTLENECK_LOG2 = 4  # the Conv-U-Net always encodes down to 16x16 at the design resolution


def draw_keep_map(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Bernoulli(0.5) {0, 1} float32 map: the same law as ``F.dropout(0.5 * ones, p=0.5, training=True)``."""
    return torch.empty(shape, device=device).bernoulli_(0.5, generator=generator)


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x * rsqrt(mean(x^2) + eps) along dim 1."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z -> w: 2nd-moment normalisation and ``num_layers`` lrelu FC layers (lr multiplier 0.01), broadcast to ws.

    Keeps ``w_avg`` (w_dim,), the running mean of w used for truncation.

    Input z (B, z_dim) -> ws (B, num_ws, w_dim).
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        for i in range(num_layers):
            layer = FullyConnectedLayer(z_dim if i == 0 else w_dim, w_dim, activation="lrelu",
                                        lr_multiplier=lr_multiplier)
            self.add_module(f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_w_avg: bool = False) -> Tensor:
        """
        Args:
            z: (B, z_dim) latent codes.
            truncation_psi: w <- w_avg + psi (w - w_avg); 1 disables truncation.
            truncation_cutoff: truncate only the first ``cutoff`` ws (None: all).
            update_w_avg: move ``w_avg`` towards the batch mean of w (beta 0.995); the trainer sets it.

        Returns:
            (B, num_ws, w_dim).
        """
        x = normalize_2nd_moment(z.to(self.fc0.weight.dtype))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).expand(-1, self.num_ws, -1)
        if truncation_psi != 1.0:
            w_avg = self.w_avg.to(ws.dtype)
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws.contiguous()


class StyleDecoderBlock(nn.Module):
    """Stage-1 decoder block: StyleConv up x2, add the encoder skip, StyleConv, ToRGB (+ up-sampled image).

    Input x (B, C, H, W), img (B, img_channels, H, W) or None, style (B, style_dim), skip (B, C, 2H, 2W)
    -> x (B, C, 2H, 2W), img (B, img_channels, 2H, 2W).
    """

    def __init__(self, resolution: int, channels: int, style_dim: int, img_channels: int) -> None:
        super().__init__()
        self.conv0 = StyleConv(channels, channels, style_dim, resolution, up=2, use_noise=False)
        self.conv1 = StyleConv(channels, channels, style_dim, resolution, use_noise=False)
        self.toRGB = ToRGB(channels, img_channels, style_dim)

    def forward(self, x: Tensor, img: Tensor | None, style: Tensor, skip: Tensor) -> tuple[Tensor, Tensor]:
        x = accumulate_(self.conv0(x, style), skip)
        x = self.conv1(x, style)
        return x, self.toRGB(x, style, skip=img)


class FirstStage(nn.Module):
    """Stage 1: partial-conv head, five-stage windowed transformer, style manipulation, modulated decoder.

    Input img (B, C, H, W), mask (B, 1, H, W), ws (B, num_ws, w_dim) -> coarse image (B, C, H, W) composited
    with the known pixels.
    """

    def __init__(self, cfg: MatConfig) -> None:
        super().__init__()
        dim = cfg.stage1_dim
        tokens = cfg.stage1_tokens
        head_downs = cfg.resolution_log2 - tokens.bit_length() + 1
        self.conv_first = PartialConv2d(cfg.img_channels + 1, dim, 3, activation="lrelu")
        self.enc_conv = nn.ModuleList(
            PartialConv2d(dim, dim, 3, activation="lrelu", down=2) for _ in range(head_downs)
        )
        grids = (tokens, tokens // 2, tokens // 4, tokens // 2, tokens)
        resample: tuple[Literal["down", "up"] | None, ...] = (None, "down", "down", "up", "up")
        self.tran = nn.ModuleList(
            BasicLayer(dim, grid, depth, cfg.stage1_heads, window, res, cfg.mlp_ratio)
            for grid, depth, window, res in zip(grids, cfg.depths, cfg.windows, resample, strict=True)
        )
        bottleneck = cfg.bottleneck_tokens
        self.down_conv = nn.Sequential(
            *(Conv2dLayer(dim, dim, 3, activation="lrelu", down=2) for _ in range(bottleneck.bit_length() - 1))
        )
        self.to_style = FullyConnectedLayer(dim, 2 * dim, activation="lrelu")
        self.ws_style = FullyConnectedLayer(cfg.w_dim, dim, activation="lrelu")
        self.to_square = FullyConnectedLayer(dim, bottleneck * bottleneck, activation="lrelu")
        self.dec_conv = nn.ModuleList(
            StyleDecoderBlock(tokens * 2 ** (i + 1), dim, 3 * dim, cfg.img_channels) for i in range(head_downs)
        )

    def forward(self, img: Tensor, mask: Tensor, ws: Tensor, *, keep_map: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """
        Args:
            keep_map: optional {0, 1} style-manipulation map (B, h*w, dim) over bottleneck tokens (row-major);
                drawn from ``generator`` when None.
        """
        # Channels-last throughout: the token maps are (B, H, W, C) anyway, and oneDNN/cuDNN prefer it.
        x = torch.cat([mask - 0.5, img * mask], dim=1).contiguous(memory_format=torch.channels_last)
        x, m = self.conv_first(x, mask.contiguous(memory_format=torch.channels_last))
        skips = [x]
        for block in self.enc_conv:
            x, m = block(x, m)
            skips.append(x)
        skips.pop()  # the token-resolution features feed the transformer, not a decoder skip

        tokens = x.permute(0, 2, 3, 1)  # (B, T, T, dim)
        m = m.permute(0, 2, 3, 1)
        x0, m = self.tran[0](tokens, m)
        x1, m = self.tran[1](x0, m)
        x, _ = self.tran[2](x1, None)
        x, style = self.manipulate_style(x, ws[:, -1], keep_map, generator)
        x, _ = self.tran[3](x, None)
        x = x + x1
        x, _ = self.tran[4](x, None)
        x = x + x0

        x = x.permute(0, 3, 1, 2)
        skips.reverse()  # from the lowest resolution up, the decoder's order
        windows = decoder_windows(mask, [tuple(skip.shape[-2:]) for skip in skips])
        out, covered = None, None  # covered: the window that x and out hold (None: whole maps)
        for block, skip, window in zip(self.dec_conv, skips, windows, strict=True):
            if window is not None:
                low = window.halved()
                x, skip = low.crop(x, covered), window.crop(skip)
                out = None if out is None else low.crop(out, covered)
            x, out = block(x, out, style, skip)
            covered = window
        assert out is not None
        return composite(out, img, mask, covered)

    def manipulate_style(self, x: Tensor, w_last: Tensor, keep_map: Tensor | None,
                         generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Style manipulation: replace half the bottleneck features by a z-derived map, derive the style code.

        Input x (B, h, w, dim) tokens, w_last (B, w_dim) -> x (B, h, w, dim), style (B, 3*dim) = [gs, w'].
        """
        b, h, w, c = x.shape
        if keep_map is None:
            keep_map = draw_keep_map((b, h * w, c), x.device, generator)
        keep = keep_map.reshape(b, h, w, c).to(x.dtype)
        w_style = self.ws_style(w_last)  # (B, dim)
        square = self.to_square(w_style)  # (B, bottleneck^2)
        # Stretched along the flattened token axis (not in 2-D), as the official model does for larger inputs.
        square = F.interpolate(square[:, None], size=h * w, mode="linear", align_corners=False)
        x = x * keep + square.reshape(b, h, w, 1) * (1 - keep)
        gs = self.to_style(self.down_conv(x.permute(0, 3, 1, 2)).mean(dim=(2, 3)))
        return x, torch.cat([gs, w_style], dim=1)


class EncoderBlock(nn.Module):
    """Stage-2 encoder block: 1x1 conv + 3x3 conv (first block) or 3x3 down x2 + 3x3 conv, all lrelu.

    Input (B, I, H, W) -> (B, O, H, W) for the first block, (B, O, H/2, W/2) otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, *, first: bool) -> None:
        super().__init__()
        if first:
            self.conv0 = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")
        else:
            self.conv0 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.conv0(x))


class ToStyle(nn.Module):
    """Global style from the 16x16 features: 3 convs down x2, average pool, FC with lrelu.

    Input (B, C, H, W) -> (B, out_features).
    """

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*(Conv2dLayer(channels, channels, 3, activation="lrelu", down=2) for _ in range(3)))
        self.fc = FullyConnectedLayer(channels, out_features, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class FirstDecoderBlock(nn.Module):
    """Stage-2 decoder at 16x16: conv + encoder feature, StyleConv (ws[0]), ToRGB (ws[1]).

    Input x (B, C, h, w), enc (B, C, h, w), ws (B, num_ws, w_dim), gs (B, gs_dim)
    -> x (B, C, h, w), img (B, img_channels, h, w).
    """

    def __init__(self, channels: int, style_dim: int, img_channels: int, resolution: int = 16) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(channels, channels, 3, activation="lrelu")
        self.conv1 = StyleConv(channels, channels, style_dim, resolution)
        self.toRGB = ToRGB(channels, img_channels, style_dim)

    def forward(self, x: Tensor, enc: Tensor, ws: Tensor, gs: Tensor, *, noise_mode: NoiseMode,
                noise: dict[str, Tensor], generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        x = accumulate_(self.conv0(x), enc)
        x = self.conv1(x, torch.cat([ws[:, 0], gs], dim=1), noise_mode=noise_mode, noise=noise.get("conv1"),
                       generator=generator)
        return x, self.toRGB(x, torch.cat([ws[:, 1], gs], dim=1))


class DecoderBlock(nn.Module):
    """Stage-2 decoder block at resolution 2**r: StyleConv up x2 (ws[2r-9]), + encoder feature,
    StyleConv (ws[2r-8]), ToRGB (ws[2r-7]) added to the up-sampled image.

    Input x (B, I, H, W), img (B, C, H, W), enc (B, O, 2H, 2W) -> x (B, O, 2H, 2W), img (B, C, 2H, 2W).
    """

    def __init__(self, res_log2: int, in_channels: int, out_channels: int, style_dim: int, img_channels: int) -> None:
        super().__init__()
        self.res_log2 = res_log2
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, 2**res_log2, up=2)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, 2**res_log2)
        self.toRGB = ToRGB(out_channels, img_channels, style_dim)

    def forward(self, x: Tensor, img: Tensor, enc: Tensor, ws: Tensor, gs: Tensor, *, noise_mode: NoiseMode,
                noise: dict[str, Tensor], generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        r = self.res_log2
        x = self.conv0(x, torch.cat([ws[:, 2 * r - 9], gs], dim=1), noise_mode=noise_mode, noise=noise.get("conv0"),
                       generator=generator)
        x = accumulate_(x, enc)
        x = self.conv1(x, torch.cat([ws[:, 2 * r - 8], gs], dim=1), noise_mode=noise_mode, noise=noise.get("conv1"),
                       generator=generator)
        return x, self.toRGB(x, torch.cat([ws[:, 2 * r - 7], gs], dim=1), skip=img)


def window_noise(block: DecoderBlock, given: dict[str, Tensor], window: Window, enc: Tensor, noise_mode: NoiseMode,
                 generator: torch.Generator | None) -> dict[str, Tensor]:
    """The noise of both StyleConvs of ``block`` cropped to ``window``: drawn for the whole (B, C, H, W) map of
    ``enc``, in the order the whole-map computation draws it, so that the random stream stays the same."""
    noise = {}
    for name in ("conv0", "conv1"):
        full = given.get(name)
        if full is None:
            full = getattr(block, name).noise_for(enc.shape[0], enc.shape[-2], enc.shape[-1], enc.device,
                                                  noise_mode, generator)
        if full is not None:
            noise[name] = window.crop(full)
    return noise


class SynthesisNetwork(nn.Module):
    """Both stages: ``first_stage`` (coarse image), then the Conv-U-Net ``enc`` / ``to_square`` / ``to_style`` /
    ``dec`` refinement.

    Input img (B, C, H, W), mask (B, 1, H, W), ws (B, num_ws, w_dim) -> (B, C, H, W) [, stage-1 (B, C, H, W)].
    """

    def __init__(self, cfg: MatConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nf = cfg.stage2_channels
        top = cfg.resolution_log2
        self.first_stage = FirstStage(cfg)
        self.enc = nn.ModuleDict()
        for r in range(top, STAGE2_BOTTLENECK_LOG2 - 1, -1):
            first = r == top
            block = EncoderBlock(2 * cfg.img_channels + 1 if first else nf(r + 1), nf(r), first=first)
            self.enc[f"EncConv_Block_{2**r}x{2**r}"] = block
        bottleneck = 2**STAGE2_BOTTLENECK_LOG2
        self.to_square = FullyConnectedLayer(cfg.w_dim, bottleneck * bottleneck, activation="lrelu")
        self.to_style = ToStyle(nf(STAGE2_BOTTLENECK_LOG2), 2 * nf(2))
        style_dim = cfg.w_dim + 2 * nf(2)
        self.dec = nn.ModuleDict()
        self.dec[f"Dec_{bottleneck}x{bottleneck}"] = FirstDecoderBlock(nf(STAGE2_BOTTLENECK_LOG2), style_dim,
                                                                      cfg.img_channels, bottleneck)
        for r in range(STAGE2_BOTTLENECK_LOG2 + 1, top + 1):
            self.dec[f"Dec_{2**r}x{2**r}"] = DecoderBlock(r, nf(r - 1), nf(r), style_dim, cfg.img_channels)

    def noise_shapes(self, height: int, width: int) -> dict[str, tuple[int, int]]:
        """Names (as accepted by ``noise=``) and (H, W) sizes of every noise input for an H x W input."""
        shapes: dict[str, tuple[int, int]] = {}
        for name, block in self.dec.items():
            scale = block.conv1.resolution / self.cfg.resolution
            size = (int(height * scale), int(width * scale))
            if isinstance(block, DecoderBlock):
                shapes[f"dec.{name}.conv0"] = size
            shapes[f"dec.{name}.conv1"] = size
        return shapes

    def keep_map_shapes(self, batch: int, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the stage-1 (B, h*w, dim) and stage-2 (B, C16, H16, W16) keep maps for an H x W input."""
        cfg = self.cfg
        t = cfg.bottleneck_tokens
        h1, w1 = height * t // cfg.resolution, width * t // cfg.resolution
        s = 2**STAGE2_BOTTLENECK_LOG2
        h2, w2 = height * s // cfg.resolution, width * s // cfg.resolution
        return (batch, h1 * w1, cfg.stage1_dim), (batch, cfg.stage2_channels(STAGE2_BOTTLENECK_LOG2), h2, w2)

    def check_inputs(self, img: Tensor, mask: Tensor) -> None:
        """Raise :class:`ModelError` with the fix when the inputs do not fit this model."""
        cfg = self.cfg
        if img.ndim != 4 or img.shape[1] != cfg.img_channels:
            raise ModelError(None, f"image shape {tuple(img.shape)} does not fit the model: expected "
                                   f"(B, {cfg.img_channels}, H, W); convert the image to {cfg.img_channels} channel(s)")
        b, _, h, w = img.shape
        if tuple(mask.shape) != (b, 1, h, w):
            raise ModelError(None, f"mask shape {tuple(mask.shape)} does not match the image: "
                                   f"expected ({b}, 1, {h}, {w})")
        if h % cfg.resolution or w % cfg.resolution:
            raise ModelError(None, f"input size {h}x{w} is not a multiple of the model's design resolution "
                                   f"{cfg.resolution}; pad the image (and the mask with 0 = hole) to a multiple")

    def forward(self, img: Tensor, mask: Tensor, ws: Tensor, *, generator: torch.Generator | None = None,
                noise_mode: NoiseMode = "random", return_stage1: bool = False,
                noise: dict[str, Tensor] | None = None,
                dropout_maps: tuple[Tensor, Tensor] | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """
        Args:
            img: (B, C, H, W) in [-1, 1].
            mask: (B, 1, H, W), 1 = known, 0 = hole.
            ws: (B, num_ws, w_dim).
            generator: RNG for the keep maps and the noise (on the input's device).
            noise_mode: ``random`` | ``const`` | ``none`` (``const`` falls back to ``random`` at non-design sizes).
            return_stage1: also return the stage-1 image.
            noise: explicit unscaled noise per layer, keys from :meth:`noise_shapes` (e.g.
                ``"dec.Dec_32x32.conv0"``), values (B or 1, 1, H_l, W_l); overrides ``noise_mode`` for those layers.
            dropout_maps: explicit {0, 1} keep maps (stage-1 (B, h*w, dim), stage-2 (B, C16, H16, W16)), see
                :meth:`keep_map_shapes`; 1 keeps the feature (the official dropout's non-zero entries).

        Returns:
            The final image (B, C, H, W), or (final, stage-1 image) with ``return_stage1``.
        """
        self.check_inputs(img, mask)
        keep1, keep2 = dropout_maps if dropout_maps is not None else (None, None)
        noise = noise or {}
        stage1 = self.first_stage(img, mask, ws, keep_map=keep1, generator=generator)

        known = img * mask
        x = torch.cat([mask - 0.5, known + stage1 * (1 - mask), known], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)
        features = []
        for block in self.enc.values():
            x = block(x)
            features.append(x)
        f16 = features[-1]
        if keep2 is None:
            keep2 = draw_keep_map(tuple(f16.shape), f16.device, generator)
        keep2 = keep2.to(f16.dtype)
        side = 2**STAGE2_BOTTLENECK_LOG2
        square = self.to_square(ws[:, 0]).reshape(-1, 1, side, side)
        square = F.interpolate(square, size=f16.shape[-2:], mode="bilinear", align_corners=False)
        f16 = f16 * keep2 + square * (1 - keep2)
        gs = self.to_style(f16)

        blocks = list(self.dec.items())
        encoded = features[::-1]  # from 16x16 up, the decoder's order
        # Dec_16 never runs on a window: it does not up-sample and costs little.
        windows = [None, *decoder_windows(mask, [tuple(enc.shape[-2:]) for enc in encoded[1:]])]
        x, out, covered = f16, None, None  # covered: the window that x and out hold (None: whole maps)
        for i, ((name, block), enc, window) in enumerate(zip(blocks, encoded, windows, strict=True)):
            prefix = f"dec.{name}."
            layer_noise = {k[len(prefix):]: v for k, v in noise.items() if k.startswith(prefix)}
            if i == 0:
                x, out = block(x, f16, ws, gs, noise_mode=noise_mode, noise=layer_noise, generator=generator)
                continue
            if window is not None:
                layer_noise = window_noise(block, layer_noise, window, enc, noise_mode, generator)
                low = window.halved()
                x, out, enc = low.crop(x, covered), low.crop(out, covered), window.crop(enc)
            x, out = block(x, out, enc, ws, gs, noise_mode=noise_mode, noise=layer_noise, generator=generator)
            covered = window
        final = composite(out, img, mask, covered)
        return (final, stage1) if return_stage1 else final


class Generator(nn.Module):
    """MAT generator: ``mapping`` (z -> ws) and ``synthesis`` (image, mask, ws -> inpainted image).

    State-dict keys equal the official ones (``mapping.fc0.weight``, ``synthesis.first_stage...``,
    ``synthesis.enc.EncConv_Block_512x512...``, ``synthesis.dec.Dec_16x16...``) except the unused ``attn_mask``
    buffers, which are recomputed per call.
    """

    def __init__(self, cfg: MatConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.num_ws = cfg.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.num_ws, cfg.mapping_layers, cfg.mapping_lr_multiplier,
                                      cfg.w_avg_beta)
        self.synthesis = SynthesisNetwork(cfg)

    def forward(self, img: Tensor, mask: Tensor, z: Tensor | None = None, *, generator: torch.Generator | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None, noise_mode: NoiseMode = "random",
                return_stage1: bool = False, ws: Tensor | None = None, update_w_avg: bool = False,
                noise: dict[str, Tensor] | None = None,
                dropout_maps: tuple[Tensor, Tensor] | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Inpaint the holes of ``img``.

        Args:
            img: (B, C, H, W) in [-1, 1]; H, W multiples of ``cfg.resolution``.
            mask: (B, 1, H, W), 1 = known pixel, 0 = hole.
            z: (B, z_dim) or None to draw it from ``generator``. Ignored when ``ws`` is given.
            generator: ``torch.Generator`` on the input's device for z, keep maps and noise (None: default RNG).
            truncation_psi, truncation_cutoff, update_w_avg: see :class:`MappingNetwork`.
            noise_mode: ``random`` | ``const`` | ``none``.
            return_stage1: also return the stage-1 (coarse) image.
            ws: (B, num_ws, w_dim) to skip the mapping network (style mixing).
            noise, dropout_maps: explicit random tensors, see :meth:`SynthesisNetwork.forward`.

        Returns:
            (B, C, H, W) final image, or (final, stage-1 image).
        """
        if ws is None:
            if z is None:
                z = torch.randn((img.shape[0], self.z_dim), generator=generator, device=img.device)
            ws = self.mapping(z, truncation_psi, truncation_cutoff, update_w_avg)
        return self.synthesis(img, mask, ws, generator=generator, noise_mode=noise_mode, return_stage1=return_stage1,
                              noise=noise, dropout_maps=dropout_maps)
