"""Bad training data stops the run before training, with a message naming the file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from model_code.training.data_classification import read_channel
from model_code.training.data_errors import TrainingDataError
from model_code.training.data_segmentation import discover_cases
from model_code.training.synthetic import write_classification_2d, write_nifti, write_segmentation_dataset
from model_code.training.train import cli

CASE = "spleen_1.nii.gz"


def _segmentation(root: Path) -> Path:
    write_segmentation_dataset(root, cases=2, shape=(4, 8, 8))
    return root


def _empty(root: Path) -> str:
    root.mkdir()
    return str(root)


def _no_labels_dir(root: Path) -> str:
    shutil.rmtree(_segmentation(root) / "labelsTr")
    return str(root)


def _image_without_label(root: Path) -> str:
    (_segmentation(root) / "labelsTr" / CASE).unlink()
    return str(root / "imagesTr" / CASE)


def _label_without_image(root: Path) -> str:
    (_segmentation(root) / "imagesTr" / CASE).unlink()
    return str(root / "labelsTr" / CASE)


def _label_shape_mismatch(root: Path) -> str:
    label = _segmentation(root) / "labelsTr" / CASE
    write_nifti(label, np.zeros((4, 8, 9), np.uint8), np.eye(4))
    return str(label)


def _four_d_image(root: Path) -> str:
    image = _segmentation(root) / "imagesTr" / CASE
    nib.save(nib.Nifti1Image(np.zeros((4, 8, 8, 2), np.int16), np.eye(4)), str(image))
    return str(image)


def _label_on_another_grid(root: Path) -> str:
    label = _segmentation(root) / "labelsTr" / CASE
    write_nifti(label, np.zeros((4, 8, 8), np.uint8), np.diag([3.0, 3.0, 3.0, 1.0]))
    return str(label)


def _truncated_image(root: Path) -> str:
    image = _segmentation(root) / "imagesTr" / CASE
    image.write_bytes(image.read_bytes()[:40])
    return str(image)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_empty, "is empty or not in MSD layout"),  # an empty channel
        (_no_labels_dir, "needs imagesTr/ and labelsTr/"),  # images without the labels folder
        (_image_without_label, "has no label"),  # label/image mismatch: image side
        (_label_without_image, "has no image"),  # label/image mismatch: label side
        (_label_shape_mismatch, "has shape (4, 8, 9) but its image"),  # wrong shapes
        (_four_d_image, "expected a 3D volume"),  # wrong dimensionality
        (_label_on_another_grid, "different affines"),  # same shape, different geometry
        (_truncated_image, "is not a readable NIfTI file"),  # a broken upload
    ],
)
def test_segmentation_channel_errors_name_the_file(tmp_path, make: Callable[[Path], str], message):
    named = make(tmp_path / "channel")
    with pytest.raises(TrainingDataError) as raised:
        discover_cases(tmp_path / "channel")
    assert message in str(raised.value)
    assert named in str(raised.value)


def test_a_good_segmentation_channel_is_accepted(tmp_path):
    cases = discover_cases(_segmentation(tmp_path))
    assert [case.image.name for case in cases] == ["spleen_1.nii.gz", "spleen_2.nii.gz"]


def _classification(root: Path) -> Path:
    write_classification_2d(root, per_class=2, size=32)
    return root


def _no_csv(root: Path) -> str:
    (_classification(root) / "labels.csv").unlink()
    return str(root)


def _csv_names_missing_image(root: Path) -> str:
    (_classification(root) / "img_001.png").unlink()
    return str(root / "img_001.png")


def _grayscale_png(root: Path) -> str:
    path = _classification(root) / "img_002.png"
    Image.new("L", (32, 32)).save(path)
    return str(path)


def _wrong_columns(root: Path) -> str:
    csv = _classification(root) / "labels.csv"
    csv.write_text("file,class\nimg_000.png,a\n")
    return str(csv)


def _empty_csv(root: Path) -> str:
    csv = _classification(root) / "labels.csv"
    csv.write_text("image,label\n")
    return str(csv)


def _unknown_suffix(root: Path) -> str:
    csv = _classification(root) / "labels.csv"
    (root / "notes.txt").write_text("x")
    csv.write_text("image,label\nnotes.txt,a\n")
    return str(root / "notes.txt")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_no_csv, "is empty: it needs labels.csv"),  # an empty channel
        (_csv_names_missing_image, "which does not exist"),  # label/image mismatch
        (_grayscale_png, "expects RGB images"),  # wrong shape: 1 channel instead of 3
        (_wrong_columns, "it needs image and label"),
        (_empty_csv, "lists no images"),
        (_unknown_suffix, "is neither a 2D image"),
    ],
)
def test_classification_channel_errors_name_the_file(tmp_path, make: Callable[[Path], str], message):
    named = make(tmp_path / "channel")
    with pytest.raises(TrainingDataError) as raised:
        read_channel(tmp_path / "channel")
    assert message in str(raised.value)
    assert named in str(raised.value)


def test_the_cli_reports_bad_data_in_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    named = _image_without_label(tmp_path / "channel")
    monkeypatch.setattr("sys.argv", ["train", "--train-channel", str(tmp_path / "channel"),
                                     "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert cli() == 2
    err = capsys.readouterr().err
    assert err.startswith("training failed: image ")
    assert named in err
    assert not (tmp_path / "ckpt").exists()  # nothing trained, nothing written
