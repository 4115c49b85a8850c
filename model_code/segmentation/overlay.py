"""A PNG preview: the source slice with the largest mask area, mask tinted red."""

from __future__ import annotations

import io

import numpy as np

# A soft-tissue display window (HU): the spleen reads mid-grey, fat dark, bone white.
_WINDOW = (-160.0, 240.0)
_TINT = np.array([255.0, 0.0, 0.0], dtype=np.float32)
_ALPHA = 0.4
# Small series (phantoms, thumbnails) are enlarged to at least this many pixels a side, in whole-pixel steps,
# so the preview stays readable without blurring voxel edges.
MIN_PREVIEW_PIXELS = 256


def largest_slice(mask: np.ndarray) -> int | None:
    """Index of the slice with the most mask voxels (nonzero: any label), or None for an empty mask."""
    # Slice by slice: no boolean copy of the whole label volume (a server's request holds little else by then).
    areas = np.array([np.count_nonzero(plane) for plane in mask], dtype=np.int64)
    return int(np.argmax(areas)) if areas.max(initial=0) > 0 else None


def render_overlay_png(image: np.ndarray, mask: np.ndarray) -> bytes:
    """PNG bytes of one slice (HU, (rows, cols)) with ``mask`` (same shape) blended in red."""
    from PIL import Image

    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be the same 2-D shape")
    low, high = _WINDOW
    grey = np.clip((image.astype(np.float32) - low) / (high - low), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    inside = mask.astype(bool)
    rgb[inside] = (1.0 - _ALPHA) * rgb[inside] + _ALPHA * _TINT
    preview = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
    factor = max(1, -(-MIN_PREVIEW_PIXELS // max(image.shape)))
    if factor > 1:
        preview = preview.resize((image.shape[1] * factor, image.shape[0] * factor), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    preview.save(buffer, format="PNG")
    return buffer.getvalue()
