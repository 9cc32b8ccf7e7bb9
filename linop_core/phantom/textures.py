"""Procedural noise fields and resampling shared by the mammogram and chest X-ray phantoms.

Everything is vectorised numpy/scipy and driven by a caller-supplied ``numpy.random.Generator`` so that a
phantom is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import fft as sp_fft
from scipy import ndimage
from skimage.transform import resize

FloatArray = np.ndarray

# Anatomy is drawn on a working grid no longer than this and then resampled: large structures do not need
# native resolution, and it keeps a 3518x2800 mammogram at about a second.
WORK_MAX_SIDE = 1024


def work_shape(height: int, width: int, max_side: int = WORK_MAX_SIDE) -> tuple[int, int]:
    """Shape of the working grid for an output of ``height`` x ``width`` (never larger than the output)."""
    scale = min(1.0, max_side / max(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))


def resample(field: FloatArray, shape: tuple[int, int], order: int = 1) -> FloatArray:
    """Resample a 2-D float field to exactly ``shape`` (bilinear by default)."""
    if field.shape == tuple(shape):
        return field.astype(np.float32, copy=False)
    out = resize(field, shape, order=order, mode="edge", anti_aliasing=False, preserve_range=True)
    return out.astype(np.float32, copy=False)


def _unit(field: FloatArray) -> FloatArray:
    field = field - field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> FloatArray:
    """Zero-mean, unit-variance Gaussian-filtered white noise with correlation length ``sigma`` pixels.

    Large ``sigma`` values are drawn on a coarse grid and resampled, which is equivalent up to interpolation
    and much cheaper than a wide Gaussian filter.
    """
    h, w = shape
    step = max(1, int(sigma / 4))
    coarse = (max(4, -(-h // step) + 2), max(4, -(-w // step) + 2))
    noise = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / step, mode="wrap")
    if step > 1:
        noise = resample(noise, (coarse[0] * step, coarse[1] * step))
    return _unit(noise[:h, :w])


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> FloatArray:
    """Isotropic 1/f^beta noise (zero mean, unit variance).

    Breast parenchyma has a power spectrum with beta of about 3 (Burgess et al.), which is what makes
    mammographic texture look "cloudy" rather than grainy.
    """
    h, w = shape
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amplitude = f ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    shape = (h, w // 2 + 1)
    spectrum = np.empty(shape, np.complex64)
    spectrum.real = rng.standard_normal(shape, dtype=np.float32)
    spectrum.imag = rng.standard_normal(shape, dtype=np.float32)
    spectrum *= amplitude.astype(np.float32)
    return _unit(sp_fft.irfft2(spectrum, s=(h, w)))


def polar_streak_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    center: tuple[float, float],
    n_angles: int,
    radial_sigma: float,
    angular_sigma: float,
) -> FloatArray:
    """Noise made of streaks radiating from ``center`` (x, y): ducts toward a nipple, vessels from a hilum.

    The noise is smooth along the radius (``radial_sigma`` in pixels) and varies quickly with the angle
    (``angular_sigma`` in angular bins of ``2*pi/n_angles``), then is looked up in polar coordinates.
    """
    h, w = shape
    cx, cy = center
    max_r = float(np.hypot(max(cx, w - cx), max(cy, h - cy))) + 2.0
    # the radial axis is sampled every ~radial_sigma/4 pixels: it is smooth along the radius anyway
    r_step = max(1.0, radial_sigma / 4.0)
    n_r = max(8, int(max_r / r_step) + 2)
    grid = rng.standard_normal((n_angles, n_r)).astype(np.float32)
    grid = ndimage.gaussian_filter(grid, (angular_sigma, radial_sigma / r_step), mode=("wrap", "nearest"))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = (np.arctan2(yy - cy, xx - cx) + np.pi) * (n_angles / (2 * np.pi))
    radius = np.hypot(xx - cx, yy - cy) / r_step
    out = ndimage.map_coordinates(grid, [theta % n_angles, radius], order=1, mode="grid-wrap")
    return _unit(out)


def smoothstep(edge0: float, edge1: float, x: FloatArray) -> FloatArray:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (works for edge0 > edge1 too)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def quantize(field: FloatArray, bits_stored: int, low: float, high: float) -> np.ndarray:
    """Map an attenuation field to unsigned integers: ``low`` -> 0, ``high`` -> 2**bits_stored - 1 (clipped)."""
    max_value = (1 << bits_stored) - 1
    scaled = (field - low) / (high - low) * max_value
    return np.clip(np.rint(scaled), 0, max_value).astype(np.uint16)


def bbox_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Half-open box ``(x0, y0, x1, y1)`` of the True pixels, or None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def fill_polygon(shape: tuple[int, int], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Boolean mask of a filled polygon (vertices in pixel coordinates), rasterised by Pillow.

    Pillow's C rasteriser is ~50x faster than skimage.draw.polygon for long thin polygons (ribs).
    """
    h, w = shape
    canvas = Image.new("1", (w, h), 0)
    ImageDraw.Draw(canvas).polygon(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)
