"""The bundle's ONNX model through the numpy pipeline gives the torch pipeline's masks on phantoms."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model_code.core.dicom.files import load_series
from model_code.core.errors import InvalidSeriesError
from model_code.edge.engine import EdgeModel
from model_code.edge.layout import MANIFEST_FILE, BundleError
from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom

# Stated tolerance: at most 0.1% of voxels may differ from the torch pipeline, and only on the organ's
# one-voxel boundary (float rounding of the probability at exactly 0.5).
MAX_DIFFERING_FRACTION = 1e-3
PHANTOMS = [
    ("axial", False, (2.5, 1.6, 1.6)),
    ("sagittal", True, (2.0, 1.8, 1.8)),
    ("coronal", True, (2.0, 1.2, 2.2)),
]


@pytest.mark.parametrize(("orientation", "descending", "spacing"), PHANTOMS, ids=[p[0] for p in PHANTOMS])
def test_masks_agree_with_the_torch_pipeline(edge_model, pooled_model_dir, band, tmp_path, orientation, descending,
                                             spacing) -> None:
    phantom = make_phantom(shape=(20, 56, 48), spacing=spacing, orientation=orientation, descending=descending)
    write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path)
    series = load_series(tmp_path)
    ours = edge_model.run(series).mask
    theirs = SegmentationPipeline.from_model_dir(pooled_model_dir, device="cpu").run(series).mask
    differ = ours != theirs
    assert differ.mean() <= MAX_DIFFERING_FRACTION
    assert not np.any(differ & ~band(theirs))
    assert ours.sum() > 100  # the organ was found, not two empty masks agreeing


def test_a_non_ct_series_is_refused(edge_model, tmp_path) -> None:
    phantom = make_phantom(shape=(6, 24, 24))
    write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path, modality="MR")
    with pytest.raises(InvalidSeriesError, match="reads CT"):
        edge_model.run(load_series(tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: (b / "edge.json").write_text((b / "edge.json").read_text() + " "), "does not match"),
        (lambda b: (b / MANIFEST_FILE).unlink(), "not an edge bundle"),
    ],
    ids=["edited-description", "no-manifest"],
)
def test_load_refuses_an_altered_bundle(onnx_bundle: Path, tmp_path: Path, change, message) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(onnx_bundle, copy)
    change(copy)
    with pytest.raises(BundleError, match=message):
        EdgeModel.load(copy)
