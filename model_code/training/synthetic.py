"""Synthetic training sets generated in code (no downloads): MSD-layout phantoms, PNG and NIfTI classes.

Used by ``make demo`` and the tests. Segmentation cases come from the shared CT phantom
(model_code.synthetic.phantom), written as NIfTI the way MSD ships them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from model_code.training.data_classification import LABELS_CSV
from model_code.training.data_segmentation import IMAGES_DIR, LABELS_DIR

# NIfTI speaks RAS, DICOM (and the phantom's affine) LPS: negate the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_nifti(path: Path, array: np.ndarray, lps_affine: np.ndarray) -> Path:
    """Save voxels indexed (slice, row, col) with their LPS affine as a NIfTI (RAS) file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, LPS_TO_RAS @ lps_affine)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, str(path))
    return path


def write_segmentation_dataset(
    root: Path,
    *,
    cases: int,
    shape: tuple[int, int, int] = (24, 48, 48),
    spacing: tuple[float, float, float] = (2.0, 1.5, 1.5),
    first_seed: int = 1,
    orientations: Sequence[str] = ("axial",),
) -> list[Path]:
    """``root/imagesTr`` and ``root/labelsTr`` with ``cases`` phantoms (int16 HU, uint8 labels)."""
    from model_code.synthetic.phantom import make_phantom

    images: list[Path] = []
    for index in range(cases):
        seed = first_seed + index
        orientation = orientations[index % len(orientations)]
        phantom = make_phantom(shape=shape, spacing=spacing, orientation=orientation,  # type: ignore[arg-type]
                               seed=seed)
        name = f"spleen_{seed}.nii.gz"
        images.append(write_nifti(root / IMAGES_DIR / name, np.rint(phantom.volume_hu).astype(np.int16),
                                  phantom.affine))
        write_nifti(root / LABELS_DIR / name, phantom.mask.astype(np.uint8), phantom.affine)
    return images


def _blob_image(rng: np.random.Generator, *, size: int, label: int) -> np.ndarray:
    """Textured skin-like noise with a lesion-like disc anywhere: red for class 1, blue for class 0.

    Colour, not position, tells the classes apart: a CNN with global pooling learns colour in a few
    steps, which keeps the overfit test short.
    """
    picture = rng.normal((170, 130, 110), 15, size=(size, size, 3))
    radius = int(rng.integers(size // 6, size // 4))
    centre_row, centre_col = rng.integers(radius, size - radius, size=2)
    rows, cols = np.ogrid[:size, :size]
    disc = (rows - centre_row) ** 2 + (cols - centre_col) ** 2 <= radius**2
    picture[disc] = (200, 40, 40) if label else (40, 60, 200)
    return np.clip(picture, 0, 255).astype(np.uint8)


def write_classification_2d(root: Path, *, per_class: int, size: int = 32, seed: int = 0) -> Path:
    """RGB PNGs of two classes (``red``/``blue`` disc) and their labels.csv."""
    rng = np.random.default_rng(seed)
    rows = []
    root.mkdir(parents=True, exist_ok=True)
    for index in range(per_class * 2):
        label = index % 2
        name = f"img_{index:03d}.png"
        Image.fromarray(_blob_image(rng, size=size, label=label), mode="RGB").save(root / name)
        rows.append((name, "red" if label else "blue"))
    return _write_csv(root, rows)


def write_classification_3d(root: Path, *, per_class: int, size: int = 24, seed: int = 0) -> Path:
    """NIfTI volumes of two classes (a bright ball in the first or second half along x)."""
    rng = np.random.default_rng(seed)
    rows = []
    grid = np.indices((size, size, size))
    for index in range(per_class * 2):
        label = index % 2
        volume = rng.normal(100, 15, size=(size, size, size)).astype(np.float32)
        centre = rng.integers(size // 5, size - size // 5, size=3)
        centre[0] = rng.integers(size // 5, size // 2 - size // 8) + (size // 2 if label else 0)
        ball = sum((grid[i] - centre[i]) ** 2 for i in range(3)) <= (size // 6) ** 2
        volume[ball] = 400.0
        name = f"vol_{index:03d}.nii.gz"
        write_nifti(root / name, volume, np.diag([-1.0, -1.0, 1.0, 1.0]))  # identity once converted to RAS
        rows.append((name, "right" if label else "left"))
    return _write_csv(root, rows)


def _write_csv(root: Path, rows: list[tuple[str, str]]) -> Path:
    path = root / LABELS_CSV
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        writer.writerows(rows)
    return path
