"""The CLI on phantom series acquired every way a scanner might: the SEG must land on the planted organ.

Each case writes a phantom series, runs ``predict.main`` (the CLI, in process), and checks the written
SEG against the phantom itself, matched by SOP Instance UID and position rather than through our own
loader: frame positions, voxels (within the one-voxel boundary), centroid (within half a voxel),
highdicom read-back and dciodvfy.
"""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from model_code.segmentation import predict
from model_code.segmentation.bundle import ModelBundle
from model_code.segmentation.overlay import MIN_PREVIEW_PIXELS
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom

PHANTOMS = [
    # (orientation, descending, spacing (slice, row, col) mm, shuffled file names)
    ("axial", False, (2.5, 1.6, 1.6), False),  # ascending feet to head
    ("axial", True, (2.5, 1.6, 1.6), False),  # descending: instance 1 is the top slice
    ("sagittal", False, (2.0, 1.8, 1.8), False),
    ("sagittal", True, (2.0, 1.8, 1.8), True),  # reversed slice axis and shuffled files
    ("coronal", False, (2.0, 1.8, 1.8), False),
    ("coronal", True, (2.0, 1.2, 2.2), False),  # descending with non-square pixels
    ("axial", False, (3.0, 0.9, 1.7), False),  # strongly non-square pixels
    ("axial", False, (2.5, 1.6, 1.6), True),  # shuffled file order
]
SHAPE = (20, 56, 48)


def _run_cli(tmp_path: Path, model_dir: Path, orientation: str, descending: bool, spacing, shuffle: bool):
    phantom = make_phantom(shape=SHAPE, spacing=spacing, orientation=orientation, descending=descending)
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path / "dicom", shuffle_names=shuffle)
    out = tmp_path / "out"
    code = predict.main(
        ["--model-dir", str(model_dir), "--dicom-dir", str(tmp_path / "dicom"), "--output-dir", str(out),
         "--device", "cpu", "--sw-batch-size", "2"]
    )
    assert code == predict.EXIT_OK
    sources = [pydicom.dcmread(p) for p in paths]  # sources[i] holds phantom slice i
    return phantom, sources, out


@pytest.fixture(scope="module", params=PHANTOMS, ids=[f"{o}-{'desc' if d else 'asc'}-{s}-{'shuffled' if f else 'named'}" for o, d, s, f in PHANTOMS])
def case(request, tmp_path_factory, threshold_model_dir):
    tmp_path = tmp_path_factory.mktemp("phantom")
    phantom, sources, out = _run_cli(tmp_path, threshold_model_dir, *request.param)
    seg = hd.seg.segread(out / predict.SEG_FILE)
    return phantom, sources, out, seg


def _frames_by_source(seg: hd.seg.Segmentation) -> dict[str, int]:
    frames = {}
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frames[str(source)] = index
    return frames


def test_frames_sit_exactly_on_the_source_slices(case):
    _phantom, sources, _, seg = case
    frames = _frames_by_source(seg)
    assert int(seg.NumberOfFrames) == len(sources) == len(frames)  # one frame per slice, empty ones kept
    for source in sources:
        item = seg.PerFrameFunctionalGroupsSequence[frames[source.SOPInstanceUID]]
        frame_position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        assert frame_position == [float(v) for v in source.ImagePositionPatient]
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    assert orientation == pytest.approx([float(v) for v in sources[0].ImageOrientationPatient], abs=1e-6)
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    assert spacing == pytest.approx([float(v) for v in sources[0].PixelSpacing])


def _mask_in_phantom_order(seg: hd.seg.Segmentation, sources: list[pydicom.Dataset]) -> np.ndarray:
    frames = _frames_by_source(seg)
    pixels = seg.pixel_array if seg.pixel_array.ndim == 3 else seg.pixel_array[None]
    return np.stack([pixels[frames[source.SOPInstanceUID]] for source in sources]).astype(np.uint8)


def test_mask_is_the_planted_organ_within_one_voxel(case, band):
    phantom, sources, _, seg = case
    mask = _mask_in_phantom_order(seg, sources)
    wrong = mask != phantom.mask
    assert not np.any(wrong & ~band(phantom.mask)), "voxels wrong away from the organ's boundary"
    dice = 2 * np.sum(mask & phantom.mask) / (mask.sum() + phantom.mask.sum())
    assert dice > 0.85


def test_centroid_within_half_a_voxel(case):
    phantom, sources, _, seg = case
    mask = _mask_in_phantom_order(seg, sources)
    # Patient coordinates from the SEG's own geometry: frame position + in-plane direction cosines.
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    frames = _frames_by_source(seg)
    points = []
    for index, source in enumerate(sources):
        item = seg.PerFrameFunctionalGroupsSequence[frames[source.SOPInstanceUID]]
        origin = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        rows, cols = np.nonzero(mask[index])
        points.append(origin + np.outer(cols * col_spacing, orientation[:3]) + np.outer(rows * row_spacing, orientation[3:]))
    found = np.concatenate(points).mean(axis=0)
    planted_index = np.argwhere(phantom.mask).mean(axis=0)
    planted = (phantom.affine @ np.append(planted_index, 1.0))[:3]
    # Half a voxel along each voxel axis of the acquisition.
    for axis in range(3):
        direction = phantom.affine[:3, axis] / np.linalg.norm(phantom.affine[:3, axis])
        assert abs(float((found - planted) @ direction)) <= 0.5 * phantom.spacing[axis]


def test_highdicom_reads_it_back_and_it_is_coded(case, threshold_model_dir):
    _phantom, sources, _, seg = case
    uids = [str(s.SOPInstanceUID) for s in sources]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1])
    assert np.array_equal(pixels[..., 0].astype(np.uint8), _mask_in_phantom_order(seg, sources))
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == set(uids)  # every source instance, the empty slices too
    segment = seg.SegmentSequence[0]
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "78961009"  # SNOMED CT: Spleen
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"  # Anatomical Structure
    metadata = ModelBundle.load(threshold_model_dir).description
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (metadata.name, metadata.version)
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID


def test_dciodvfy_finds_no_error(case, dciodvfy):
    _, _, out, _ = case
    assert dciodvfy(out / predict.SEG_FILE) == []


def test_summary_and_overlay(case):
    phantom, sources, out, seg = case
    mask = _mask_in_phantom_order(seg, sources)
    summary = json.loads((out / predict.RESULT_FILE).read_text())
    voxel_ml = abs(np.linalg.det(phantom.affine[:3, :3])) / 1000.0
    assert summary["spleen_voxel_count"] == int(mask.sum())
    assert summary["spleen_volume_ml"] == pytest.approx(mask.sum() * voxel_ml, abs=1e-3)
    assert summary["spleen_volume_ml"] == pytest.approx(phantom.organ_volume_ml, rel=0.2)
    centroid = (phantom.affine @ np.append(np.argwhere(mask).mean(axis=0), 1.0))[:3]
    assert summary["spleen_centroid_lps_mm"] == pytest.approx(centroid, abs=2e-3)
    assert summary["series_instance_uid"] == sources[0].SeriesInstanceUID
    assert summary["seg_sop_instance_uid"] == seg.SOPInstanceUID
    assert set(summary["timings_s"]) >= {"load_series", "preprocess", "inference", "postprocess", "seg", "total"}
    # The overlay shows the slice with the largest mask area.
    areas = mask.reshape(len(sources), -1).sum(axis=1)
    overlay_uid = summary["overlay_sop_instance_uid"]
    assert areas[[s.SOPInstanceUID for s in sources].index(overlay_uid)] == areas.max()
    png = (out / predict.OVERLAY_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    # One source slice, enlarged by a whole factor when small (the overlay module's readability rule).
    factor = height // SHAPE[1]
    assert (height, width) == (SHAPE[1] * factor, SHAPE[2] * factor)
    assert factor == max(1, -(-MIN_PREVIEW_PIXELS // max(SHAPE[1], SHAPE[2])))
