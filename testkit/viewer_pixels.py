"""What a viewer screenshot shows: where the SEG overlay is painted, where the CT shows the organ, and where the
planted organ lies in that view; and whether the three agree.

The viewer is asked only where its camera is (three canvas points in patient LPS mm); what is painted is read from
pixels. The CT is grey (R = G = B), so a pixel tinted towards the segment's colour is overlay.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

# A view fails below these (measured in the prototype: good SEGs give IoU 0.96-0.99 and shifts under 0.5 px; a
# head-feet flip gives IoU 0.71 and 6 px in the sagittal view, a 4-px shift 0.8).
MIN_OVERLAY_PX = 200
MIN_IOU = 0.85
MAX_OUTSIDE_FRACTION = 0.02  # of overlay pixels outside the planted organ grown by OUTSIDE_MARGIN_PX
OUTSIDE_MARGIN_PX = 3
# The centre may move by 2 px or 3% of the organ's size on screen (the diameter of a disc of its area), whichever is
# larger: the axial stack view draws the organ 2.5x larger than the MPR views and snaps to the nearest slice, where
# a good SEG has measured 5.6 px in a 229-px organ (2.4%); the flip moves 6 px in a 70-px organ (8.6%).
MAX_CENTROID_SHIFT_PX = 2.0
MAX_CENTROID_SHIFT_FRACTION = 0.03
# Tint threshold: the segment colour's dominant channel above both others by this much.
TINT_MARGIN = 30
# HU of the phantom's tissues (model_code.synthetic.phantom): the organ is told apart from soft tissue and bone.
SOFT_TISSUE_HU, ORGAN_HU = 40.0, 115.0


def load_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def save_png(rgb: np.ndarray, path: Any) -> None:
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)


def crop(rgb: np.ndarray, rect: Sequence[float]) -> np.ndarray:
    """``rect`` = [left, top, width, height] in CSS pixels (device scale factor 1)."""
    x, y, w, h = (round(v) for v in rect)
    return rgb[y : y + h, x : x + w]


def overlay_mask(rgb: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    dominant = int(np.argmax(colour[:3]))
    a, b = (c for c in range(3) if c != dominant)
    d = rgb[..., dominant]
    return np.asarray((d - rgb[..., a] > TINT_MARGIN) & (d - rgb[..., b] > TINT_MARGIN))


def grey_band_mask(rgb: np.ndarray, low: float, high: float, *, max_chroma: int = 8) -> np.ndarray:
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    value = rgb.mean(axis=-1)
    return np.asarray((chroma <= max_chroma) & (value >= low) & (value <= high))


def planted_mask(shape: tuple[int, int], camera: dict[str, Any], centre: Sequence[float],
                 semi_axes: Sequence[float]) -> np.ndarray:
    """The planted ellipsoid cut by the view's plane, in view pixels. ``camera`` holds the world points of canvas
    (0,0), (1,0) and (0,1) ("o", "x", "y"): an orthographic view is affine, so they place every pixel."""
    o = np.asarray(camera["o"], dtype=float)
    ex, ey = np.asarray(camera["x"], dtype=float) - o, np.asarray(camera["y"], dtype=float) - o
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64) + 0.5
    world = o + u[..., None] * ex + v[..., None] * ey
    return np.asarray((((world - np.asarray(centre)) / np.asarray(semi_axes)) ** 2).sum(axis=-1) <= 1.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


@dataclass
class ViewCheck:
    """One view's figures and the reasons it fails (empty: the overlay is where the organ is)."""

    view: str
    overlay_px: int
    planted_px: int
    iou_planted: float
    iou_ct_organ: float
    outside_fraction: float
    centroid_shift_px: float | None
    failures: list[str] = field(default_factory=list)


def check_view(view: str, shown: np.ndarray, hidden: np.ndarray, camera: dict[str, Any], *, colour: Sequence[int],
               centre: Sequence[float], semi_axes: Sequence[float]) -> tuple[ViewCheck, np.ndarray]:
    """``shown``/``hidden``: the view's pixels with the segment visible and hidden. Returns the check and a debug
    image (red: overlay, green: planted organ, blue: organ as the CT shows it; white where all agree)."""
    overlay = overlay_mask(shown, colour)
    planted = planted_mask(overlay.shape, camera, centre, semi_axes)
    low, high = camera["voi"]["lower"], camera["voi"]["upper"]

    def grey(hu: float) -> float:  # cornerstone's linear VOI to 0..255
        return (hu - low) / (high - low) * 255.0

    ct_organ = grey_band_mask(hidden, (grey(SOFT_TISSUE_HU) + grey(ORGAN_HU)) / 2, (grey(ORGAN_HU) + 255) / 2)
    outside = overlay & ~grow(planted, OUTSIDE_MARGIN_PX)
    shift = None
    if overlay.any() and planted.any():
        shift = float(np.hypot(*np.subtract(centroid(overlay), centroid(planted))))
    check = ViewCheck(
        view=view,
        overlay_px=int(overlay.sum()),
        planted_px=int(planted.sum()),
        iou_planted=round(iou(overlay, planted), 3),
        iou_ct_organ=round(iou(overlay, ct_organ), 3),
        outside_fraction=round(float(outside.sum() / max(int(overlay.sum()), 1)), 4),
        centroid_shift_px=None if shift is None else round(shift, 2),
    )
    if check.overlay_px < MIN_OVERLAY_PX:
        check.failures.append(f"no overlay painted ({check.overlay_px} px)")
    if check.iou_planted < MIN_IOU:
        check.failures.append(f"overlay does not match the planted organ (IoU {check.iou_planted})")
    if check.iou_ct_organ < MIN_IOU:
        check.failures.append(f"overlay does not match the organ the CT shows (IoU {check.iou_ct_organ})")
    if check.outside_fraction > MAX_OUTSIDE_FRACTION:
        check.failures.append(f"overlay painted outside the organ ({check.outside_fraction:.1%})")
    allowed_shift = max(MAX_CENTROID_SHIFT_PX, MAX_CENTROID_SHIFT_FRACTION * 2.0 * np.sqrt(check.planted_px / np.pi))
    if shift is not None and shift > allowed_shift:
        check.failures.append(f"overlay centre {shift:.1f} px from the organ's (at most {allowed_shift:.1f} px)")
    debug = np.stack([overlay * 255, planted * 255, ct_organ * 255], axis=-1).astype(np.int16)
    return check, debug
