"""The phantom: geometry of each acquisition, intensities the spleen window separates, cheap ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from model_code.core.dicom.series import slice_normal
from model_code.synthetic.phantom import (
    BONE_HU,
    SOFT_TISSUE_HU,
    SPLEEN_HU,
    make_phantom,
    phantom_affine,
)

SHAPE = (12, 40, 36)
SPACING = (2.5, 1.5, 1.0)

CASES = [
    # (orientation, descending, expected unit slice direction in LPS)
    ("axial", False, (0.0, 0.0, 1.0)),  # feet to head
    ("axial", True, (0.0, 0.0, -1.0)),  # head to feet: slice axis against the normal
    ("sagittal", False, (-1.0, 0.0, 0.0)),  # normal of rows along P, columns along -S
    ("coronal", False, (0.0, 1.0, 0.0)),  # normal of rows along L, columns along -S
]


@pytest.mark.parametrize(("orientation", "descending", "slice_direction"), CASES)
def test_affine_has_the_acquisition_geometry(orientation, descending, slice_direction):
    phantom = make_phantom(shape=SHAPE, spacing=SPACING, orientation=orientation, descending=descending)
    columns = phantom.affine[:3, :3]
    assert np.linalg.norm(columns, axis=0) == pytest.approx(SPACING)
    assert columns[:, 0] / SPACING[0] == pytest.approx(slice_direction)
    normal = slice_normal([*(columns[:, 2] / SPACING[2]), *(columns[:, 1] / SPACING[1])])
    assert np.dot(normal, columns[:, 0]) / SPACING[0] == pytest.approx(-1.0 if descending else 1.0)
    assert phantom.volume_hu.shape == SHAPE
    assert phantom.volume_hu.dtype == np.float32
    assert phantom.mask.dtype == np.uint8


@pytest.mark.parametrize(("orientation", "descending", "slice_direction"), CASES)
def test_organ_is_planted_where_the_ground_truth_says(orientation, descending, slice_direction):
    phantom = make_phantom(shape=SHAPE, spacing=SPACING, orientation=orientation, descending=descending)
    organ = phantom.mask.astype(bool)
    assert organ.sum() > 100
    assert np.array_equal(phantom.organ_mask_on(phantom.affine, SHAPE), phantom.mask)
    # Noise is a few HU: the organ sits in the spleen band, everything else outside it.
    assert np.abs(phantom.volume_hu[organ] - SPLEEN_HU).max() < 40
    outside = phantom.volume_hu[~organ]
    assert not np.any((outside > 80) & (outside < 150))
    assert np.any(np.abs(outside - SOFT_TISSUE_HU) < 20)  # body
    assert np.any(outside > BONE_HU - 50)  # spine
    assert np.any(outside < -900)  # air


def test_same_anatomy_whatever_the_acquisition():
    # The centroid of the planted voxels in patient space does not depend on slice order.
    centroids = []
    for descending in (False, True):
        phantom = make_phantom(shape=SHAPE, spacing=SPACING, descending=descending)
        index = np.argwhere(phantom.mask).mean(axis=0)
        centroids.append((phantom.affine @ np.append(index, 1.0))[:3])
    assert centroids[0] == pytest.approx(centroids[1], abs=1e-6)


@pytest.mark.parametrize(
    ("seed", "same_as_seed_0"),
    [
        (0, True),  # reproducible
        (7, False),  # jittered organ for training variety
    ],
)
def test_seed(seed, same_as_seed_0):
    reference = make_phantom(shape=SHAPE, spacing=SPACING, seed=0)
    other = make_phantom(shape=SHAPE, spacing=SPACING, seed=seed)
    assert np.array_equal(reference.mask, other.mask) is same_as_seed_0
    assert np.array_equal(reference.volume_hu, other.volume_hu) is same_as_seed_0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"orientation": "oblique"}, "orientation must be one of"),
        ({"shape": (0, 4, 4)}, "shape must be"),
        ({"spacing": (1.0, -1.0, 1.0)}, "spacing must be"),
    ],
)
def test_invalid_arguments(kwargs, message):
    args = {"shape": SHAPE, "spacing": SPACING, "orientation": "axial", **kwargs}
    with pytest.raises(ValueError, match=message):
        phantom_affine(**args)


def test_organ_volume_matches_voxel_count():
    phantom = make_phantom(shape=(40, 96, 96), spacing=(1.0, 1.0, 1.0))
    voxel_ml = 1.0 / 1000.0
    assert phantom.mask.sum() * voxel_ml == pytest.approx(phantom.organ_volume_ml, rel=0.05)
