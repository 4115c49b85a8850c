"""Segmentation data in the MSD Task09 layout: ``imagesTr/*.nii.gz`` beside ``labelsTr/*.nii.gz``.

Pairs are matched by file name, as the Decathlon's dataset.json does. Every check reads NIfTI
headers only, so a bad case is reported before any volume is loaded or cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from model_code.training.data_errors import TrainingDataError

IMAGES_DIR = "imagesTr"
LABELS_DIR = "labelsTr"
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class SegmentationCase:
    image: Path
    label: Path

    def as_dict(self) -> dict[str, str]:
        return {"image": str(self.image), "label": str(self.label)}


def _nifti_files(folder: Path) -> dict[str, Path]:
    # MSD archives carry macOS "._spleen_1.nii.gz" resource forks; they are not volumes.
    return {
        path.name: path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name.endswith(NIFTI_SUFFIXES) and not path.name.startswith(".")
    }


def discover_cases(channel: Path) -> list[SegmentationCase]:
    """All image/label pairs of a channel, validated (shape, dimensionality, geometry)."""
    images_dir, labels_dir = channel / IMAGES_DIR, channel / LABELS_DIR
    if not channel.is_dir():
        raise TrainingDataError(f"segmentation channel {channel} does not exist: point the channel at a folder")
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise TrainingDataError(
            f"segmentation channel {channel} is empty or not in MSD layout: "
            f"it needs {IMAGES_DIR}/ and {LABELS_DIR}/ with NIfTI files of the same names"
        )
    images, labels = _nifti_files(images_dir), _nifti_files(labels_dir)
    if not images:
        raise TrainingDataError(f"segmentation channel {channel} is empty: no .nii/.nii.gz in {images_dir}")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise TrainingDataError(
            f"image {images_dir / unlabelled[0]} has no label {labels_dir / unlabelled[0]} "
            f"({len(unlabelled)} unlabelled image(s)); every image needs a label of the same file name"
        )
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise TrainingDataError(
            f"label {labels_dir / orphans[0]} has no image {images_dir / orphans[0]} "
            f"({len(orphans)} orphan label(s)); remove it or add the image"
        )
    cases = [SegmentationCase(image=images[name], label=labels[name]) for name in sorted(images)]
    for case in cases:
        _check_pair(case)
    return cases


def _header(path: Path) -> Any:
    try:
        return nib.load(str(path))  # lazy: reads the header, not the voxels
    except Exception as error:  # nibabel raises several types for a truncated or foreign file
        raise TrainingDataError(f"{path} is not a readable NIfTI file ({type(error).__name__}: {error})") from error


def _check_pair(case: SegmentationCase) -> None:
    image, label = _header(case.image), _header(case.label)
    if len(image.shape) != 3:
        raise TrainingDataError(f"image {case.image} has shape {image.shape}: expected a 3D volume (X, Y, Z)")
    if label.shape != image.shape:
        raise TrainingDataError(
            f"label {case.label} has shape {label.shape} but its image {case.image} has {image.shape}: "
            "a label must cover its image voxel for voxel"
        )
    if not np.allclose(image.affine, label.affine, atol=1e-3):
        raise TrainingDataError(
            f"label {case.label} and image {case.image} have different affines: "
            "the label is not on the image's grid (resample it onto the image first)"
        )
