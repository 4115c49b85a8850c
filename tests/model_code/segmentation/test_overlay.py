"""The PNG preview: the largest-area slice, the mask tinted red, small series enlarged without blurring."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model_code.segmentation.overlay import MIN_PREVIEW_PIXELS, largest_slice, render_overlay_png


@pytest.mark.parametrize(
    ("shape", "expected_size"),
    [
        ((64, 48), (48 * 4, 64 * 4)),  # a phantom slice: enlarged by a whole factor to >= 256 a side
        ((512, 512), (512, 512)),  # a CT slice: kept as it is
        ((300, 100), (100, 300)),  # already large enough on its long side
    ],
)
def test_preview_size(shape: tuple[int, int], expected_size: tuple[int, int]) -> None:
    image = np.full(shape, 40.0, dtype=np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    preview = Image.open(io.BytesIO(render_overlay_png(image, mask)))
    assert preview.size == expected_size
    assert max(preview.size) >= min(MIN_PREVIEW_PIXELS, max(shape))


def test_mask_is_tinted_red_and_edges_stay_sharp() -> None:
    image = np.full((32, 32), 40.0, dtype=np.float32)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[10:20, 10:20] = 1
    pixels = np.asarray(Image.open(io.BytesIO(render_overlay_png(image, mask))))
    factor = pixels.shape[0] // 32
    inside = pixels[15 * factor, 15 * factor]
    outside = pixels[5 * factor, 5 * factor]
    assert inside[0] > inside[1]  # red tint inside
    assert outside[0] == outside[1] == outside[2]  # grey outside
    # Nearest-neighbour enlargement: the pixel just outside the mask edge is untinted, no blended colours.
    assert set(map(tuple, pixels.reshape(-1, 3))) == {tuple(inside), tuple(outside)}


def test_largest_slice_picks_the_biggest_area_and_none_when_empty() -> None:
    mask = np.zeros((3, 8, 8), dtype=np.uint8)
    mask[1, :2, :2] = 1
    mask[2, :4, :4] = 1
    assert largest_slice(mask) == 2
    assert largest_slice(np.zeros_like(mask)) is None


def test_the_largest_slice_counts_labelled_voxels_not_label_values() -> None:
    # A multi-label map: slice 0 holds 3 voxels of label 2 (values summing to 6), slice 1 holds 4 of label 1.
    labels = np.zeros((2, 4, 4), dtype=np.uint8)
    labels[0, 0, :3] = 2
    labels[1, 1, :4] = 1
    assert largest_slice(labels) == 1 == largest_slice(labels > 0)
    assert largest_slice(np.zeros((3, 4, 4), dtype=np.uint8)) is None
