"""Procedural postero-anterior chest X-rays (normal, pleural effusion, pneumothorax, pneumonia).

Orientation: standard PA display, the patient's right on the image's left. MONOCHROME2 (bone and mediastinum
bright, aerated lung dark). Anatomy is drawn on a working grid in normalised coordinates (u = x / W,
v = y / H) and resampled to the requested size.

Findings:
- pleural effusion: dependent fluid on one side that blunts the costophrenic angle, hides the diaphragm
  dome and ends in a meniscus that climbs laterally; boxed as 'Pleural effusion';
- pneumothorax: apico-lateral air between the chest wall and the collapsed lung: a lucent rim without lung
  markings and a thin visceral pleural line; boxed as 'Pneumothorax';
- pneumonia: a global label; drawn as one to three patchy consolidations, each boxed as 'Consolidation'
  (VinDr readers box the opacity while the diagnosis is image-level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import interpolate, ndimage

from linop_core.phantom.textures import (
    bbox_of,
    fill_polygon,
    polar_streak_noise,
    power_law_noise,
    quantize,
    resample,
    smooth_noise,
    smoothstep,
    work_shape,
)

CxrFinding = Literal["normal", "pleural effusion", "pneumothorax", "pneumonia"]
CXR_FINDINGS: tuple[CxrFinding, ...] = ("normal", "pleural effusion", "pneumothorax", "pneumonia")
Box = tuple[float, float, float, float]

_QUANT_LOW, _QUANT_HIGH = -0.05, 1.0

# Right lung outline (image left), clockwise from the apex, in (u, v). The left lung mirrors the lateral and
# diaphragmatic part and has its own medial border (aortic knob, pulmonary artery, left heart border).
_RIGHT_LUNG = np.array([
    (0.31, 0.10), (0.22, 0.16), (0.15, 0.28), (0.12, 0.45), (0.105, 0.62), (0.11, 0.74), (0.125, 0.765),
    (0.17, 0.735), (0.24, 0.685), (0.31, 0.665), (0.38, 0.685), (0.43, 0.71), (0.445, 0.62), (0.44, 0.5),
    (0.425, 0.4), (0.435, 0.28), (0.43, 0.17), (0.39, 0.11),
])
_LEFT_LUNG_MIRRORED = np.array([  # in mirrored coordinates (1 - u, v)
    (0.31, 0.11), (0.22, 0.17), (0.15, 0.29), (0.12, 0.46), (0.105, 0.64), (0.11, 0.76), (0.125, 0.79),
    (0.17, 0.765), (0.23, 0.72), (0.29, 0.70), (0.33, 0.71), (0.32, 0.64), (0.35, 0.55), (0.39, 0.45),
    (0.40, 0.38), (0.41, 0.29), (0.43, 0.2), (0.39, 0.12),
])


@dataclass(frozen=True)
class CxrPhantom:
    """A rendered chest X-ray.

    image: uint16 (H, W), MONOCHROME2, values in [0, 2**bits_stored - 1].
    lung_mask: bool (H, W), both lungs (including any pneumothorax space and effusion).
    body_mask: bool (H, W), the patient (vs. the air around).
    finding_mask: bool (H, W), the pixels the finding changed (fluid, pleural air, consolidation); empty if normal.
    boxes: (class name, (x0, y0, x1, y1)) per local finding, in image pixels.
    global_labels: image-level labels ('Pneumonia'), empty otherwise.
    """

    image: np.ndarray
    lung_mask: np.ndarray
    body_mask: np.ndarray
    finding_mask: np.ndarray
    boxes: tuple[tuple[str, Box], ...]
    finding: CxrFinding
    global_labels: tuple[str, ...]
    bits_stored: int


def _closed_curve(points_uv: np.ndarray, n: int = 400) -> np.ndarray:
    """A smooth closed curve (periodic cubic spline) through the control points, (n, 2) in (u, v)."""
    pts = np.vstack([points_uv, points_uv[:1]])
    tck, _ = interpolate.splprep([pts[:, 0], pts[:, 1]], s=0, per=True)
    u, v = interpolate.splev(np.linspace(0, 1, n, endpoint=False), tck)
    return np.stack([u, v], axis=1)


def _fill(curve_uv: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return fill_polygon(shape, curve_uv[:, 0] * w, curve_uv[:, 1] * h)


def _band(path_uv: np.ndarray, half_width: float, shape: tuple[int, int]) -> np.ndarray:
    """A filled band of ``half_width`` pixels around an open path (ribs, clavicles)."""
    h, w = shape
    xy = np.stack([path_uv[:, 0] * w, path_uv[:, 1] * h], axis=1)
    tangent = np.gradient(xy, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    # bones taper toward their ends instead of stopping square
    t = np.linspace(0.0, 1.0, len(xy))
    taper = half_width * (0.45 + 0.55 * smoothstep(0.0, 0.12, np.minimum(t, 1.0 - t)))[:, None]
    outline = np.vstack([xy + taper * normal, (xy - taper * normal)[::-1]])
    return fill_polygon(shape, outline[:, 0], outline[:, 1])


def _add_bone(outer: np.ndarray, inner: np.ndarray, path_uv: np.ndarray, half_width: float, weight: float) -> None:
    """Accumulate a tubular bone (cortex bright, medulla fainter) into the outer/inner canvases."""
    shape = outer.shape
    outer += weight * _band(path_uv, half_width, shape)
    inner += weight * _band(path_uv, max(0.5, 0.55 * half_width), shape)


def render_cxr(
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    finding: CxrFinding,
    bits_stored: int = 12,
) -> CxrPhantom:
    """Render one PA chest X-ray with the given finding (see the module docstring)."""
    if finding not in CXR_FINDINGS:
        raise ValueError(f"unknown CXR finding {finding!r}; use one of {', '.join(CXR_FINDINGS)}")
    if not 8 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be 8..16, got {bits_stored}")
    h, w = work_shape(height, width)
    shape = (h, w)
    # findings draw from their own stream so the anatomy and noise are the same for every finding
    finding_rng = np.random.default_rng(int(rng.integers(2**63)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    uu, vv = xx / w, yy / h

    # --- per-patient variation: lung size (inspiration), mediastinal width, position
    scale_v = rng.uniform(0.93, 1.05)
    shift_v = rng.uniform(-0.03, 0.03)
    shift_u = rng.uniform(-0.015, 0.015)
    heart_scale = rng.uniform(0.9, 1.12)

    def place(points: np.ndarray, mirror: bool) -> np.ndarray:
        pts = points + rng.normal(0.0, 0.006, points.shape)
        pts = pts.copy()
        pts[:, 1] = 0.1 + (pts[:, 1] - 0.1) * scale_v + shift_v
        if mirror:
            pts[:, 0] = 1.0 - pts[:, 0]
        pts[:, 0] += shift_u
        return pts

    right_curve = _closed_curve(place(_RIGHT_LUNG, False))
    left_points = place(_LEFT_LUNG_MIRRORED, True)
    left_points[10:13, 0] = 0.5 + (left_points[10:13, 0] - 0.5) * heart_scale  # heart border
    left_curve = _closed_curve(left_points)
    lungs = {"R": _fill(right_curve, shape), "L": _fill(left_curve, shape)}
    curves = {"R": right_curve, "L": left_curve}
    lung = lungs["R"] | lungs["L"]

    # --- body outline with neck and shoulders
    center_u = 0.5 + shift_u
    half_body = np.where(vv < 0.16, 0.13 + 0.34 * smoothstep(0.0, 0.16, vv) ** 0.6, 0.47 - 0.03 * vv)
    body = np.abs(uu - center_u) < half_body
    body_soft = ndimage.gaussian_filter(body.astype(np.float32), 0.004 * h)

    attenuation = 0.52 * body_soft + 0.05 * smoothstep(0.6, 0.85, vv) * body_soft
    # soft tissue of the lateral chest wall is thicker (brighter) toward the body edge
    attenuation += 0.06 * smoothstep(0.3, 0.46, np.abs(uu - center_u)) * body_soft

    dist_in = ndimage.distance_transform_edt(lung).astype(np.float32)
    lung_depth = smoothstep(0.0, 0.05 * w, dist_in)
    lung_soft = ndimage.gaussian_filter(lung.astype(np.float32), 0.003 * h)
    aeration = lung_soft * (0.55 + 0.45 * lung_depth)  # what the air in the lungs removes

    # --- mediastinum: heart, spine, hila
    heart = ((uu - (0.545 + shift_u)) / (0.15 * heart_scale)) ** 2 + ((vv - (0.61 + shift_v)) / 0.12) ** 2 < 1
    attenuation += 0.06 * ndimage.gaussian_filter(heart.astype(np.float32), 0.01 * h)
    spine = smoothstep(0.05, 0.035, np.abs(uu - center_u)) * body_soft
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * (vv - shift_v) / 0.045)
    attenuation += spine * (0.07 + 0.03 * vertebrae)

    hila = {"R": (0.5 - 0.11 + shift_u, 0.43 + shift_v), "L": (0.5 + 0.11 + shift_u, 0.41 + shift_v)}
    markings = np.zeros(shape, np.float32)
    broken = smoothstep(-1.0, 1.0, smooth_noise(rng, shape, 0.02 * h))  # vessels branch and taper, not rays
    for side, (hu, hv) in hila.items():
        streaks = polar_streak_noise(rng, shape, (hu * w, hv * h), n_angles=360, radial_sigma=0.05 * h,
                                     angular_sigma=1.5)
        falloff = np.exp(-np.hypot(uu - hu, vv - hv) / 0.3)
        markings += np.clip(streaks, 0, None) ** 1.2 * falloff * lungs[side] * broken
        markings += 1.3 * np.exp(-(((uu - hu) / 0.035) ** 2 + ((vv - hv) / 0.06) ** 2))
    markings = ndimage.gaussian_filter(markings, 0.003 * h)

    # --- bones: ribs (posterior and anterior arcs) and clavicles
    outer = np.zeros(shape, np.float32)
    inner = np.zeros(shape, np.float32)
    t = np.linspace(0, 1, 60)
    rib_gap = 0.057 * scale_v
    for sign in (-1.0, 1.0):
        for i in range(10):
            v0 = 0.1 + shift_v + rib_gap * i
            reach = 0.33 + 0.06 * np.sin(np.pi * (i + 1) / 11)
            # posterior arc: up and out from the spine, then down along the lateral chest wall
            post = np.stack([center_u + sign * (0.04 + reach * t),
                             v0 - 0.03 * np.sin(np.pi * t * 0.8) + 0.2 * t ** 2.4], axis=1)
            end_u, end_v = post[-1]
            # anterior arc: fainter, running obliquely down and in
            ant = np.stack([end_u - sign * (0.23 * t - 0.02 * t ** 2), end_v + 0.01 + 0.16 * t], axis=1)
            _add_bone(outer, inner, post, 0.0115 * h, 1.0)
            _add_bone(outer, inner, ant, 0.008 * h, 0.55)
        clavicle = np.stack([center_u + sign * (0.05 + 0.3 * t),
                             0.185 + shift_v - 0.07 * t + 0.025 * np.sin(np.pi * t)], axis=1)
        _add_bone(outer, inner, clavicle, 0.014 * h, 1.8)
    bones = ndimage.gaussian_filter(outer - 0.45 * inner, max(0.6, 0.0015 * h))
    bones *= body_soft

    # --- findings
    boxes: list[tuple[str, Box]] = []
    globals_: list[str] = []
    fluid_soft = np.zeros(shape, np.float32)
    ptx_soft = np.zeros(shape, np.float32)
    consolidation = np.zeros(shape, np.float32)
    pleural_line = np.zeros(shape, np.float32)
    collapsed_extra = np.zeros(shape, np.float32)
    finding_mask = np.zeros(shape, bool)
    if finding == "pleural effusion":
        side = "R" if finding_rng.random() < 0.5 else "L"
        mask = lungs[side]
        cols = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        lateral = (uu - uu[0, cols[-1]]) / (uu[0, cols[0]] - uu[0, cols[-1]]) if side == "R" else (
            (uu - uu[0, cols[0]]) / (uu[0, cols[-1]] - uu[0, cols[0]]))
        lateral = np.clip(lateral, 0, 1)
        lung_h = (rows[-1] - rows[0]) / h
        level = rows[-1] / h - finding_rng.uniform(0.15, 0.5) * lung_h
        top = level - finding_rng.uniform(0.1, 0.2) * lung_h * lateral ** 2  # meniscus climbs laterally
        fluid = mask & (vv > top)
        finding_mask = fluid
        grown = ndimage.binary_dilation(mask, iterations=3)
        fluid_soft = smoothstep(top, top + 0.035, vv) * ndimage.gaussian_filter(grown.astype(np.float32), 1.0)
        box = bbox_of(fluid)
        if box is not None:
            boxes.append(("Pleural effusion", box))
    elif finding == "pneumothorax":
        side = "R" if finding_rng.random() < 0.5 else "L"
        hu, hv = hila[side]
        factor = finding_rng.uniform(0.7, 0.88)
        curve = curves[side]
        collapsed_curve = np.stack([hu + (curve[:, 0] - hu) * factor, hv + (curve[:, 1] - hv) * factor], axis=1)
        collapsed = _fill(collapsed_curve, shape)
        upper = vv < hv + finding_rng.uniform(0.05, 0.15)
        ptx = lungs[side] & ~collapsed & upper
        finding_mask = ptx
        ptx_soft = ndimage.gaussian_filter(ptx.astype(np.float32), 0.7)
        edge = collapsed & ~ndimage.binary_erosion(collapsed, iterations=max(1, round(0.0015 * h)))
        line = edge & ndimage.binary_dilation(ptx, iterations=2)
        pleural_line = ndimage.gaussian_filter(line.astype(np.float32), 0.5)
        collapsed_extra = ndimage.gaussian_filter((collapsed & lungs[side]).astype(np.float32), 2.0)
        box = bbox_of(ptx)
        if box is not None:
            boxes.append(("Pneumothorax", box))
    elif finding == "pneumonia":
        globals_.append("Pneumonia")
        for _ in range(int(finding_rng.integers(1, 4))):
            side = "R" if finding_rng.random() < 0.5 else "L"
            candidates = np.argwhere(lungs[side] & (vv > 0.35 + shift_v) & (dist_in > 0.03 * w))
            if candidates.size == 0:
                continue
            cy, cx = candidates[int(finding_rng.integers(len(candidates)))]
            ry, rx = h * finding_rng.uniform(0.06, 0.12), w * finding_rng.uniform(0.05, 0.1)
            blob = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2))
            patchy = blob * (0.65 + 0.5 * smooth_noise(finding_rng, shape, 0.012 * h)) * lungs[side]
            patch = patchy > 0.45
            finding_mask = finding_mask | patch
            consolidation = np.maximum(consolidation, ndimage.gaussian_filter(smoothstep(0.25, 0.9, patchy), 0.004 * h))
            box = bbox_of(patch)
            if box is not None:
                boxes.append(("Consolidation", box))

    aeration = aeration * (1.0 - fluid_soft) * (1.0 - 0.6 * consolidation)
    attenuation -= 0.36 * aeration
    attenuation += 0.1 * markings * (1.0 - ptx_soft) * lung_soft * (1.0 - fluid_soft)
    attenuation -= 0.06 * ptx_soft
    attenuation += 0.04 * collapsed_extra * (finding == "pneumothorax") + 0.09 * pleural_line
    attenuation += 0.03 * fluid_soft
    attenuation += 0.07 * bones * (0.55 + 0.45 * lung_soft) * (1.0 - 0.5 * fluid_soft)
    attenuation += 0.012 * power_law_noise(rng, shape, 2.5) * body_soft

    # gastric bubble under the left hemidiaphragm
    if finding != "pleural effusion" or side == "R":
        bubble = ((uu - (0.66 + shift_u)) / 0.05) ** 2 + ((vv - (0.8 + shift_v)) / 0.03) ** 2 < 1
        attenuation -= 0.12 * ndimage.gaussian_filter((bubble & ~lung).astype(np.float32), 0.005 * h)

    # --- output grid
    sy, sx = height / h, width / w
    attenuation = resample(attenuation, (height, width))
    grain = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), 0.7)
    attenuation += (0.004 + 0.012 * np.sqrt(np.clip(attenuation, 0, None))) * grain
    image = quantize(attenuation, bits_stored, _QUANT_LOW, _QUANT_HIGH)
    lung_full = resample(lung.astype(np.float32), (height, width)) > 0.5
    body_full = resample(body.astype(np.float32), (height, width)) > 0.5
    finding_full = resample(finding_mask.astype(np.float32), (height, width)) > 0.5
    scaled = tuple((name, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)) for name, (x0, y0, x1, y1) in boxes)
    return CxrPhantom(image=image, lung_mask=lung_full, body_mask=body_full, finding_mask=finding_full,
                      boxes=scaled, finding=finding,
                      global_labels=tuple(globals_), bits_stored=bits_stored)
