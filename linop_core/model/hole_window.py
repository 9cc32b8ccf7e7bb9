"""Hole windows: run the high-resolution decoder blocks only where the composite keeps their output.

Both MAT stages end with ``out * (1 - mask) + img * mask``: wherever the mask is 1 the network's output is
discarded. The up-sampling decoder blocks, which hold most of the generator's arithmetic at full resolution,
are local (3x3 convs, x2 FIR up-sampling, 1x1 toRGB), so their output inside the holes' bounding box depends
only on their inputs in a slightly larger box. In inference these blocks run on such boxes ("windows") of their
input maps, and the composite takes everything outside from the image, as it would anyway. The result equals
the whole-map computation up to float rounding (tests/test_hole_window.py); how much it saves depends on the
size of the holes' bounding box.

A block maps an input window I (level r-1) to the output window 2I (level r). Its output is exact except within
:data:`HALO` output pixels of an edge of 2I that is not an image edge: there the convs' zero padding sees a cut
instead of the image border.

Windows are only used without autograd: in training every output pixel would still need its (zero) gradient
paths so that optimiser state and weight decay see the same parameters as the full computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Output pixels next to a cut that a decoder block gets wrong: the x2 up-sampling conv (3x3 transposed conv, then
# the 4x4 blur) within 2 pixels of a cut at the start of a row or column and 3 at its end, the 3x3 conv after it
# one more; the image path's x2 FIR up-sampling stays within that. tests/test_hole_window.py fails with 2.
HALO = 4
# Below this share of the map, a window is worth its slicing copies.
MAX_WINDOW_FRACTION = 0.8


@dataclass(frozen=True)
class Window:
    """Rows ``[top, bottom)`` and columns ``[left, right)`` of a (..., H, W) map."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    def grown(self, margin: int, height: int, width: int) -> Window:
        """Expanded by ``margin`` on every side, clipped to a ``height`` x ``width`` map."""
        return Window(max(self.top - margin, 0), min(self.bottom + margin, height),
                      max(self.left - margin, 0), min(self.right + margin, width))

    def halved(self) -> Window:
        """The smallest window at half resolution whose double covers this one."""
        return Window(self.top // 2, -(-self.bottom // 2), self.left // 2, -(-self.right // 2))

    def doubled(self) -> Window:
        return Window(2 * self.top, 2 * self.bottom, 2 * self.left, 2 * self.right)

    def crop(self, x: Tensor, origin: Window | None = None) -> Tensor:
        """This window of ``x`` (..., H, W), a view; ``origin`` is the window that ``x`` itself covers (None: all)."""
        dy, dx = (0, 0) if origin is None else (origin.top, origin.left)
        return x[..., self.top - dy : self.bottom - dy, self.left - dx : self.right - dx]


def hole_window(mask: Tensor) -> Window | None:
    """Bounding box of the pixels whose mask is below 1 in any sample (holes and soft edges), None if there are none.

    Args:
        mask: (B, 1, H, W), 1 = known.
    """
    holes = (mask < 1).flatten(0, 1).any(dim=0)  # (H, W)
    rows = torch.nonzero(holes.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(holes.any(dim=0)).flatten()
    return Window(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def plan_windows(hole: Window | None, out_sizes: Sequence[tuple[int, int]],
                 max_fraction: float = MAX_WINDOW_FRACTION) -> list[Window | None]:
    """Output window of each x2 up-sampling block of a decoder chain, None where the whole map is computed.

    Args:
        hole: the holes' bounding box at the resolution of the last block's output, or None (no hole: whole maps).
        out_sizes: (H, W) of each block's output, from the lowest to the highest resolution; each is twice the
            one before.
        max_fraction: a block runs on a window only if it is at most this share of its output map; all blocks
            below the first that does not qualify run on whole maps (their windows would be larger still).

    Returns:
        One entry per block. A window W of block i is even-aligned (W = 2I) and, when block i+1 has a window,
        contains that block's input window grown by the halo, so every block's kept output is exact.
    """
    windows: list[Window | None] = [None] * len(out_sizes)
    if hole is None:
        return windows
    needed = hole  # the region of block i's output that must be exact
    for i in reversed(range(len(out_sizes))):
        height, width = out_sizes[i]
        window = needed.grown(HALO, height, width).halved().doubled()
        if window.area > max_fraction * height * width:
            break
        windows[i] = window
        needed = window.halved()
    return windows


def decoder_windows(mask: Tensor, out_sizes: Sequence[tuple[int, int]]) -> list[Window | None]:
    """:func:`plan_windows` for the holes of ``mask`` (B, 1, H, W) in inference; whole maps under autograd."""
    if torch.is_grad_enabled():
        return [None] * len(out_sizes)
    return plan_windows(hole_window(mask), out_sizes)


def composite(out: Tensor, img: Tensor, mask: Tensor, window: Window | None) -> Tensor:
    """``out * (1 - mask) + img * mask`` where ``out`` covers only ``window`` (None: the whole map).

    Outside the window the mask is 1, so the composite there is ``img * mask`` as in the whole-map formula.
    """
    if window is None:
        return out * (1 - mask) + img * mask
    result = img * mask
    m = window.crop(mask)
    window.crop(result).copy_(out * (1 - m) + window.crop(img) * m)
    return result
