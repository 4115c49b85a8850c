"""Classification data: a folder of images plus ``labels.csv`` (``image,label`` columns).

2D: RGB PNG/JPEG images (HAM10000-like); 3D: NIfTI volumes (IXI-like). The dimensionality follows
from the files; a channel mixing both is rejected. Checks read headers only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
from PIL import Image, UnidentifiedImageError

from model_code.training.data_errors import TrainingDataError

LABELS_CSV = "labels.csv"
IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
SUFFIXES_2D = (".png", ".jpg", ".jpeg")
SUFFIXES_3D = (".nii.gz", ".nii")


@dataclass(frozen=True)
class ClassificationCase:
    image: Path
    label: str

    def as_dict(self, class_index: dict[str, int]) -> dict[str, object]:
        return {"image": str(self.image), "label": class_index[self.label]}


@dataclass(frozen=True)
class ClassificationChannel:
    cases: list[ClassificationCase]
    spatial_dims: int
    csv_path: Path


def spatial_dims_of(path: Path) -> int:
    name = path.name.lower()
    if name.endswith(SUFFIXES_2D):
        return 2
    if name.endswith(SUFFIXES_3D):
        return 3
    raise TrainingDataError(
        f"{path} is neither a 2D image ({', '.join(SUFFIXES_2D)}) nor a 3D volume ({', '.join(SUFFIXES_3D)})"
    )


def read_channel(channel: Path) -> ClassificationChannel:
    csv_path = channel / LABELS_CSV
    if not channel.is_dir():
        raise TrainingDataError(f"classification channel {channel} does not exist: point the channel at a folder")
    if not csv_path.is_file():
        raise TrainingDataError(
            f"classification channel {channel} is empty: it needs {LABELS_CSV} with columns "
            f"{IMAGE_COLUMN},{LABEL_COLUMN} beside the images"
        )
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or {IMAGE_COLUMN, LABEL_COLUMN} - set(reader.fieldnames):
            raise TrainingDataError(
                f"{csv_path} has columns {reader.fieldnames}: it needs {IMAGE_COLUMN} and {LABEL_COLUMN}"
            )
        rows = list(reader)
    if not rows:
        raise TrainingDataError(f"classification channel {channel} is empty: {csv_path} lists no images")
    cases: list[ClassificationCase] = []
    dims: set[int] = set()
    for line, row in enumerate(rows, start=2):
        image = channel / row[IMAGE_COLUMN].strip()
        label = (row[LABEL_COLUMN] or "").strip()
        if not label:
            raise TrainingDataError(f"{csv_path} line {line}: image {image} has no label")
        if not image.is_file():
            raise TrainingDataError(f"{csv_path} line {line} names {image}, which does not exist")
        dims.add(spatial_dims_of(image))
        _check_image(image)
        cases.append(ClassificationCase(image=image, label=label))
    if len(dims) > 1:
        raise TrainingDataError(f"{csv_path} mixes 2D images and 3D volumes: train one kind per job")
    return ClassificationChannel(cases=cases, spatial_dims=dims.pop(), csv_path=csv_path)


def _check_image(path: Path) -> None:
    if spatial_dims_of(path) == 2:
        try:
            with Image.open(path) as image:
                mode, size = image.mode, image.size
        except (UnidentifiedImageError, OSError) as error:
            raise TrainingDataError(f"{path} is not a readable image ({error})") from error
        if mode != "RGB":
            raise TrainingDataError(f"{path} is {mode} {size}: 2D classification expects RGB images (3 channels)")
        return
    try:
        shape = nib.load(str(path)).shape  # type: ignore[attr-defined]
    except Exception as error:  # nibabel raises several types for a truncated or foreign file
        raise TrainingDataError(f"{path} is not a readable NIfTI file ({type(error).__name__}: {error})") from error
    if len(shape) != 3:
        raise TrainingDataError(f"{path} has shape {shape}: 3D classification expects one-channel volumes (X, Y, Z)")
