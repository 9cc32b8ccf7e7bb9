"""Procedural screening mammograms (CC and MLO views) with optional masses, as pure array functions.

Orientation (documented choice, the usual hanging convention and how VinDr stores the pixels): a left
breast has its chest wall on the image's left edge and the nipple pointing right; a right breast is the
mirror image (chest wall on the right edge). MLO views carry the pectoral muscle as a triangle in the upper
corner at the chest wall. The image is MONOCHROME2 (dense tissue bright, air dark).

Anatomy is drawn in a canonical frame (chest wall on the left) on a working grid no larger than
``textures.WORK_MAX_SIDE`` and resampled to the requested size, so full-size (3518x2800) images stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.draw import line_aa

from linop_core.phantom.textures import (
    bbox_of,
    polar_streak_noise,
    power_law_noise,
    quantize,
    resample,
    smooth_noise,
    smoothstep,
    work_shape,
)

MassShape = Literal["round", "oval", "irregular", "spiculated"]
Laterality = Literal["L", "R"]
View = Literal["CC", "MLO"]
Density = Literal["A", "B", "C", "D"]

MASS_SHAPES: tuple[MassShape, ...] = ("round", "oval", "irregular", "spiculated")
DENSITIES: tuple[Density, ...] = ("A", "B", "C", "D")

# Fraction of the breast (inside the subcutaneous fat) covered by fibroglandular tissue per BI-RADS
# density class: A almost entirely fatty ... D extremely dense.
GLAND_FRACTION: dict[str, float] = {"A": 0.07, "B": 0.3, "C": 0.55, "D": 0.85}

# Attenuation levels of the phantom (arbitrary units, MONOCHROME2): fat, added gland, muscle, skin.
_FAT = 0.30
_GLAND = 0.30
_MUSCLE = 0.34
_SKIN = 0.10
_MASS_BASE = 0.60  # a mass core is at least as attenuating as fibroglandular tissue...
_QUANT_LOW, _QUANT_HIGH = -0.06, 1.15  # ...and these map attenuation to the stored integer range
_BOX_LEVEL = 0.2  # a mass's box encloses its profile above this level
# Anatomy grid: parenchyma is smooth at this scale; detector grain is added at the output resolution.
_WORK_MAX_SIDE = 640


@dataclass(frozen=True)
class MassSpec:
    """One mass, placed in breast coordinates so that the same lesion can be drawn in CC and MLO.

    depth: 0 at the chest wall .. 1 at the nipple, along the breast axis.
    lateral: -1 .. 1 across the breast at that depth (image top .. bottom of the breast).
    size: box side as a fraction of the image height (VinDr masses: about 0.02 to 0.25, median 0.066).
    contrast: attenuation of the core above its brightest surroundings (0.05 subtle .. 0.3 obvious).
    birads: the finding's BI-RADS category (3, 4 or 5).
    """

    shape: MassShape
    depth: float
    lateral: float
    size: float
    contrast: float
    birads: int


@dataclass(frozen=True)
class MassPatch:
    """A mass drawn on its own grid: ``profile`` float32 (h, w) in [0, 1]; ``mask`` bool (h, w)."""

    profile: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class MammoPhantom:
    """A rendered mammogram.

    image: uint16 (H, W), MONOCHROME2, values in [0, 2**bits_stored - 1].
    breast_mask: bool (H, W), breast including skin, nipple and (MLO) pectoral muscle.
    pectoral_mask: bool (H, W), empty on CC views.
    mass_mask: bool (H, W), pixels of the drawn masses (profile above the box level); empty without masses.
    boxes: one half-open (x0, y0, x1, y1) box per entry of ``masses``, in image pixels.
    nipple: (x, y) of the nipple in image pixels.
    """

    image: np.ndarray
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    mass_mask: np.ndarray
    boxes: tuple[tuple[float, float, float, float], ...]
    masses: tuple[MassSpec, ...]
    nipple: tuple[float, float]
    laterality: Laterality
    view: View
    density: Density
    bits_stored: int


def render_mass(
    rng: np.random.Generator,
    shape: MassShape,
    height: int,
    width: int,
    *,
    aspect: float | None = None,
    angle: float | None = None,
) -> MassPatch:
    """Draw one mass filling a ``height`` x ``width`` patch (the patch is the mass's box).

    round / oval: circumscribed, sharp margin; irregular: lobulated, blurred margin; spiculated: a small
    irregular core with tapering spicules reaching the patch edge. ``profile`` is 1 at the core and falls
    to 0 outside; add ``contrast * profile`` (or blend toward a level) into an image patch.
    """
    if shape not in MASS_SHAPES:
        raise ValueError(f"unknown mass shape {shape!r}; use one of {', '.join(MASS_SHAPES)}")
    if height < 3 or width < 3:
        raise ValueError(f"mass patch {height}x{width} is too small; use at least 3x3 pixels")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # normalised coordinates: the inscribed ellipse of the patch is the unit circle
    u = (xx + 0.5 - width / 2.0) / (width / 2.0)
    v = (yy + 0.5 - height / 2.0) / (height / 2.0)
    if angle is None:
        angle = float(rng.uniform(0, np.pi))
    if aspect is None:
        aspect = {"round": rng.uniform(0.88, 1.0), "oval": rng.uniform(0.5, 0.75)}.get(
            shape, rng.uniform(0.7, 1.0)
        )
    ca, sa = np.cos(angle), np.sin(angle)
    a = u * ca + v * sa
    b = (-u * sa + v * ca) / aspect
    r = np.hypot(a, b)
    phi = np.arctan2(b, a)

    def lobulation(amplitude: float, k_max: int) -> np.ndarray:
        radius = np.ones_like(phi)
        for k in range(2, k_max + 1):
            radius += rng.uniform(0.3, 1.0) * amplitude / np.sqrt(k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        return radius

    if shape in ("round", "oval"):
        radius, margin = 0.9 * lobulation(0.015, 3), 0.05
    elif shape == "irregular":
        radius, margin = 0.78 * lobulation(0.16, 7), 0.16
    else:
        radius, margin = 0.42 * lobulation(0.12, 6), 0.12
    rho = r / radius
    core = smoothstep(1.0 + margin, 1.0 - margin, rho)
    dome = 0.78 + 0.22 * np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0))
    profile = core * dome
    if shape == "spiculated":
        n_spicules = int(rng.integers(10, 22))
        angles = rng.uniform(-np.pi, np.pi, n_spicules).astype(np.float32)
        lengths = rng.uniform(0.75, 1.0, n_spicules).astype(np.float32)
        base_widths = rng.uniform(0.08, 0.14, n_spicules).astype(np.float32)
        rr = np.hypot(u, v)
        th = np.arctan2(v, u)
        spicules = np.zeros_like(profile)
        for ang, length, base in zip(angles, lengths, base_widths, strict=True):
            d_ang = np.angle(np.exp(1j * (th - ang)))
            across = np.abs(d_ang) * rr  # distance from the spicule's axis
            along = np.clip(rr / length, 0.0, 1.0)
            width_here = base * (1.0 - along) + 0.012
            line = np.exp(-((across / width_here) ** 2)) * (np.abs(d_ang) < np.pi / 2) * (rr < length)
            spicules = np.maximum(spicules, line * (1.0 - 0.6 * along))
        profile = np.maximum(profile, 0.85 * spicules)
    # real margins are never pixel-sharp: a slight blur scaled to the patch
    profile = ndimage.gaussian_filter(profile, 0.006 * max(height, width) + 0.3)
    profile = np.clip(profile, 0.0, 1.0).astype(np.float32)
    return MassPatch(profile=profile, mask=profile > _BOX_LEVEL)


def _wobble(rng: np.random.Generator, phi: np.ndarray, amplitude: float) -> np.ndarray:
    out = np.zeros_like(phi)
    for k in range(2, 6):
        out += rng.uniform(0.2, 1.0) * amplitude / k * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return out


def _draw_vessels(rng: np.random.Generator, shape: tuple[int, int], start_x: float, cy: float,
                  nipple: tuple[float, float], count: int) -> np.ndarray:
    """Thin tortuous lines from the chest wall toward the nipple (breast vessels)."""
    h, w = shape
    canvas = np.zeros(shape, np.float32)
    for _ in range(count):
        x, y = start_x, cy + rng.uniform(-0.3, 0.3) * h
        heading = np.arctan2(nipple[1] - y, nipple[0] - x)
        step = max(2.0, 0.01 * h)
        for _ in range(int(0.8 * (nipple[0] - start_x) / step)):
            heading += rng.normal(0.0, 0.18)
            heading = 0.8 * heading + 0.2 * np.arctan2(nipple[1] - y, nipple[0] - x)
            nx, ny = x + step * np.cos(heading), y + step * np.sin(heading)
            rr, cc, val = line_aa(int(y), int(x), int(ny), int(nx))
            keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            canvas[rr[keep], cc[keep]] = np.maximum(canvas[rr[keep], cc[keep]], val[keep])
            x, y = nx, ny
    return ndimage.gaussian_filter(canvas, max(0.6, 0.0012 * h))


def render_mammogram(
    rng: np.random.Generator,
    *,
    laterality: Laterality,
    view: View,
    density: Density,
    height: int,
    width: int,
    masses: list[MassSpec] | tuple[MassSpec, ...] = (),
    bits_stored: int = 12,
    benign_calcifications: int = 0,
) -> MammoPhantom:
    """Render one mammogram (see the module docstring for orientation and pixel conventions).

    ``benign_calcifications`` adds that many coarse, round, unboxed calcifications (a BI-RADS 2 look).
    """
    if laterality not in ("L", "R") or view not in ("CC", "MLO") or density not in DENSITIES:
        raise ValueError(f"bad mammogram parameters laterality={laterality!r} view={view!r} density={density!r}")
    if not 8 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be 8..16, got {bits_stored}")
    h, w = work_shape(height, width, _WORK_MAX_SIDE)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # masses draw from their own stream so that adding one leaves every pixel outside its box unchanged
    mass_rng = np.random.default_rng(int(rng.integers(2**63)))

    # --- outline: a super-ellipse around the chest-wall point (0, cy), tilted downward on MLO
    is_mlo = view == "MLO"
    cy = h * (rng.uniform(0.52, 0.6) if is_mlo else rng.uniform(0.47, 0.53))
    depth = w * rng.uniform(0.62, 0.84)
    half_top = h * (rng.uniform(0.62, 0.72) if is_mlo else rng.uniform(0.33, 0.42))
    half_bottom = h * (rng.uniform(0.36, 0.42) if is_mlo else half_top / h * rng.uniform(0.95, 1.05))
    tilt = np.deg2rad(rng.uniform(6, 14) if is_mlo else rng.uniform(-3, 3))
    power = rng.uniform(1.9, 2.4)
    ct, st = np.cos(tilt), np.sin(tilt)
    along = xx * ct + (yy - cy) * st
    across = -xx * st + (yy - cy) * ct
    half = np.where(across < 0, half_top, half_bottom)
    rho = ((np.abs(along) / depth) ** power + (np.abs(across) / half) ** power) ** (1.0 / power)
    phi = np.arctan2(across / half, along / depth)
    rho = rho / (1.0 + _wobble(rng, phi, 0.05))
    breast = rho < 1.0

    # the nipple sits on the outline where the breast axis leaves it
    nipple = (float(depth * ct), float(cy + depth * st))
    nipple_r = h * rng.uniform(0.009, 0.014)
    nipple_mask = np.hypot(xx - nipple[0] + 0.4 * nipple_r, yy - nipple[1]) < nipple_r
    breast |= nipple_mask

    pectoral = np.zeros((h, w), bool)
    pect_soft = np.zeros((h, w), np.float32)
    if is_mlo:
        pw = w * rng.uniform(0.22, 0.38)
        ph = h * rng.uniform(0.38, 0.6)
        gamma = rng.uniform(0.85, 1.25)
        edge_x = pw * np.clip(1.0 - yy / ph, 0.0, 1.0) ** gamma
        pectoral = (xx < edge_x) & breast
        # the muscle is thickest (brightest) toward the axilla and thins toward its free edge
        pect_soft = smoothstep(2.0, -2.0, xx - edge_x) * breast
        pect_soft *= 0.7 + 0.3 * smoothstep(0.0, 0.5 * pw, edge_x - xx)

    dist = ndimage.distance_transform_edt(breast).astype(np.float32)
    skin_px = max(1.5, 0.0045 * h)
    thickness = np.sqrt(np.clip(1.0 - np.clip(rho, 0, 1) ** 5, 0.0, 1.0)) * smoothstep(0.0, 3.0 * skin_px, dist)
    thickness = np.maximum(thickness, 0.35 * nipple_mask)

    # --- fibroglandular tissue: central envelope + clouds + ducts converging on the nipple
    envelope = np.exp(-(((rho - 0.38) / 0.42) ** 2)) * smoothstep(0.02 * h, 0.06 * h, dist)
    envelope *= 1.0 - pect_soft
    ducts = polar_streak_noise(rng, (h, w), nipple, n_angles=900, radial_sigma=0.2 * h, angular_sigma=3.0)
    # streaks fan out from the nipple; close to it a polar pattern would look like a star, so fade it in
    ducts *= smoothstep(0.05 * depth, 0.35 * depth, np.hypot(xx - nipple[0], yy - nipple[1]))
    field = (1.5 * envelope + 0.4 * smooth_noise(rng, (h, w), 0.05 * h) + 0.18 * smooth_noise(rng, (h, w), 0.015 * h)
             + 0.1 * ducts + 0.3 * power_law_noise(rng, (h, w), 3.0))
    tissue = breast & ~pectoral & (dist > 0.03 * h)
    fraction = GLAND_FRACTION[density] * rng.uniform(0.85, 1.15)
    threshold = np.quantile(field[tissue], 1.0 - min(fraction, 0.97)) if tissue.any() else 0.0
    gland = 1.0 / (1.0 + np.exp(-(field - threshold) / 0.16)) * envelope.clip(0, 1) ** 0.25
    gland *= 1.0 - pect_soft
    fine = power_law_noise(rng, (h, w), 2.6)

    ligaments = power_law_noise(rng, (h, w), 2.2)  # Cooper's ligaments / trabecular pattern in the fat
    attenuation = thickness * (_FAT + 0.012 * ducts + 0.012 * ligaments + _GLAND * gland * (1.0 + 0.2 * fine))
    attenuation += _MUSCLE * pect_soft * thickness * (0.9 + 0.1 * smooth_noise(rng, (h, w), 0.02 * h))
    skin = smoothstep(skin_px + 1.0, skin_px - 1.0, dist) * breast
    attenuation += _SKIN * skin + 0.06 * ndimage.gaussian_filter(nipple_mask.astype(np.float32), 1.0)
    vessels = _draw_vessels(rng, (h, w), 0.05 * w, cy, nipple, int(rng.integers(2, 5)))
    attenuation += 0.07 * vessels * thickness

    for _ in range(benign_calcifications):
        for _attempt in range(20):
            px, py = rng.uniform(0, w), rng.uniform(0, h)
            if tissue[int(py), int(px)]:
                radius = h * rng.uniform(0.002, 0.005)
                spot = np.hypot(xx - px, yy - py) < radius
                attenuation += 0.35 * ndimage.gaussian_filter(spot.astype(np.float32), 0.6)
                break

    # --- masses
    work_boxes: list[tuple[float, float, float, float]] = []
    mass_region = np.zeros((h, w), np.float32)
    for spec in masses:
        a = float(np.clip(spec.depth, 0.08, 0.9)) * depth
        local_half = (half_top if spec.lateral < 0 else half_bottom) * (1 - (a / depth) ** power) ** (1 / power)
        b = float(np.clip(spec.lateral, -1, 1)) * 0.7 * local_half
        mx, my = a * ct - b * st, cy + a * st + b * ct
        if is_mlo:  # keep masses out of the muscle: slide along the axis toward the nipple
            while mx < pw * max(0.0, 1.0 - my / ph) ** gamma + 0.5 * spec.size * h and a < 0.9 * depth:
                a += 0.02 * depth
                mx, my = a * ct - b * st, cy + a * st + b * ct
        side = max(3, round(spec.size * h))
        patch = render_mass(mass_rng, spec.shape, side, side)
        y0, x0 = round(my - side / 2), round(mx - side / 2)
        ys = slice(max(0, y0), min(h, y0 + side))
        xs = slice(max(0, x0), min(w, x0 + side))
        prof = patch.profile[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0] * breast[ys, xs]
        region = attenuation[ys, xs]
        # the core stands out from whatever surrounds it: fat, or fibroglandular tissue in dense breasts
        surround = max(float(np.percentile(region, 90)), _MASS_BASE * float(thickness[ys, xs].mean()))
        level = surround + spec.contrast * thickness[ys, xs]
        attenuation[ys, xs] = (1 - prof) * region + prof * (0.15 * region + 0.85 * level)
        mass_region[ys, xs] = np.maximum(mass_region[ys, xs], prof)
        box = bbox_of(prof > _BOX_LEVEL)
        if box is None:
            box = (float(xs.start), float(ys.start), float(xs.stop), float(ys.stop))
        else:
            box = (box[0] + xs.start, box[1] + ys.start, box[2] + xs.start, box[3] + ys.start)
        work_boxes.append(box)

    # --- to the output grid, add detector-scale grain, quantise, orient
    sy, sx = height / h, width / w
    attenuation = resample(attenuation, (height, width))
    breast_full = resample(breast.astype(np.float32), (height, width)) > 0.5
    pect_full = resample(pectoral.astype(np.float32), (height, width), order=0) > 0.5 if is_mlo else (
        np.zeros((height, width), bool))
    mass_full = resample(mass_region, (height, width)) > _BOX_LEVEL if masses else np.zeros((height, width), bool)
    grain = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), 0.7)
    attenuation += (0.006 + 0.02 * np.sqrt(np.clip(attenuation, 0, None))) * grain
    image = quantize(attenuation, bits_stored, _QUANT_LOW, _QUANT_HIGH)
    boxes = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in work_boxes]
    nipple_full = (nipple[0] * sx, nipple[1] * sy)
    if laterality == "R":
        image, breast_full = image[:, ::-1].copy(), breast_full[:, ::-1].copy()
        pect_full, mass_full = pect_full[:, ::-1].copy(), mass_full[:, ::-1].copy()
        boxes = [(width - x1, y0, width - x0, y1) for x0, y0, x1, y1 in boxes]
        nipple_full = (width - nipple_full[0], nipple_full[1])
    return MammoPhantom(
        image=image,
        breast_mask=breast_full,
        pectoral_mask=pect_full,
        mass_mask=mass_full,
        boxes=tuple(boxes),
        masses=tuple(masses),
        nipple=nipple_full,
        laterality=laterality,
        view=view,
        density=density,
        bits_stored=bits_stored,
    )
