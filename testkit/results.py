"""Real DICOM SEGs for the results index's tests: written by the platform's SEG writer over a synthetic CT series.

``make_seg(voxels, voxel_mm)`` segments ``voxels`` voxels of a small phantom series whose voxel is ``voxel_mm``
(slice, row, column spacing in mm), so a test chooses the spleen volume a SEG reports: voxels x voxel volume.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from model_code.core.dicom.files import load_series
from model_code.core.dicom.seg import build_segmentation
from model_code.core.spleen import spleen_metadata, spleen_summary
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom

SHAPE = (8, 16, 16)


def make_seg(
    voxels: int, *, voxel_mm: tuple[float, float, float] = (2.0, 1.0, 1.0), version: str = "0.5.9", seed: int = 0
) -> tuple[bytes, dict[str, object]]:
    """(SEG Part-10 bytes, the serving paths' summary of the same mask) for a mask of the first ``voxels`` voxels."""
    if not 0 <= voxels <= int(np.prod(SHAPE)):
        raise ValueError(f"voxels must be 0..{int(np.prod(SHAPE))}, got {voxels}")
    phantom = make_phantom(shape=SHAPE, spacing=voxel_mm, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        write_dicom_series(phantom.volume_hu, phantom.affine, Path(folder), seed=seed)
        series = load_series(Path(folder))
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask.reshape(-1)[:voxels] = 1
    metadata = spleen_metadata(version=version)
    seg = build_segmentation(series, mask, metadata=metadata)
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), spleen_summary(metadata, series, mask, seg)
