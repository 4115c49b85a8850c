"""Multi-label bundles end to end: class probabilities, per-channel inverse, argmax, one SEG segment per label.

The SEG is read back with highdicom (its own parser of the Segmentation IOD) and checked with dciodvfy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from model_code.core.bundle_layout import METADATA_JSON
from model_code.core.dicom.files import load_series
from model_code.core.errors import ModelDirectoryError
from model_code.core.segment_codes import CODES_KEY, COMMON_STRUCTURES, code_document
from model_code.core.spleen import spleen_metadata
from model_code.segmentation.bundle import ModelBundle
from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom
from testkit.models import SmoothBand, save_bundle

THREE = dataclasses.replace(
    spleen_metadata(version="three-1"),
    name="abdomen_three_class",
    labels={0: "background", 1: "liver", 2: "left kidney"},
    inference=dataclasses.replace(spleen_metadata().inference, roi_size=(32, 32, 32)),
)
NETWORK_DEF = {"_target_": "testkit.models.SmoothBand", "channels": 3}


@pytest.fixture(scope="module")
def three_class_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bundle(tmp_path_factory.mktemp("three"), SmoothBand(channels=3, sharpness=30.0), description=THREE,
                       network_def=NETWORK_DEF)


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scan = make_phantom(shape=(10, 40, 36), spacing=(2.5, 1.6, 1.6), seed=4)
    folder = tmp_path_factory.mktemp("series")
    write_dicom_series(scan.volume_hu, scan.affine, folder)
    return folder


def test_a_three_class_model_gives_a_seg_with_two_coded_segments(three_class_bundle, series_dir, tmp_path, dciodvfy):
    series = load_series(series_dir)
    result = SegmentationPipeline.from_bundle(three_class_bundle, device="cpu").run(series)
    assert set(np.unique(result.mask)) == {0, 1, 2}
    seg = result.seg_dataset
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "liver"), (2, "left kidney")]
    kidney_type = seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0]
    assert (kidney_type.CodeValue, kidney_type.CodeMeaning) == ("64033007", "Kidney")
    assert kidney_type.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    path = tmp_path / "seg.dcm"
    seg.save_as(path, enforce_file_format=True)
    assert dciodvfy(path) == []
    read = hd.seg.segread(path)
    uids = [str(d.SOPInstanceUID) for d in series.datasets]
    pixels = read.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1, 2],
                                                combine_segments=True, skip_overlap_checks=True)
    assert np.array_equal(np.asarray(pixels), result.mask)  # segment n is channel n here
    segments = result.summary["segments"]
    assert [(s["segment_number"], s["label"]) for s in segments] == [(1, "liver"), (2, "left kidney")]
    assert [s["voxel_count"] for s in segments] == [int((result.mask == c).sum()) for c in (1, 2)]
    assert "spleen_volume_ml" not in result.summary  # no spleen label, no spleen keys


def test_the_spleen_bundle_keeps_its_spleen_keys(pipeline, series_dir):
    summary = pipeline.run(load_series(series_dir)).summary
    assert summary["spleen_voxel_count"] == summary["segments"][0]["voxel_count"] > 0
    assert summary["spleen_volume_ml"] == summary["segments"][0]["volume_ml"]


def test_an_unknown_label_is_refused_at_load_naming_it(tmp_path: Path):
    description = dataclasses.replace(THREE, labels={0: "background", 1: "liver", 2: "hepatic segment IVb"})
    bundle_dir = save_bundle(tmp_path / "b", SmoothBand(channels=3), description=description, network_def=NETWORK_DEF)
    with pytest.raises(ModelDirectoryError, match=rf"configs/metadata.json .*'hepatic segment IVb'.*{CODES_KEY}"):
        SegmentationPipeline.from_bundle(bundle_dir, device="cpu")


def test_a_bundles_own_code_reaches_the_seg(tmp_path: Path, series_dir: Path):
    description = dataclasses.replace(THREE, labels={0: "background", 1: "liver", 2: "hepatic segment IVb"})
    bundle_dir = save_bundle(tmp_path / "b", SmoothBand(channels=3), description=description, network_def=NETWORK_DEF)
    metadata = json.loads((bundle_dir / METADATA_JSON).read_text())
    own = code_document(COMMON_STRUCTURES["liver"])
    own["type"] = {"value": "00000000", "scheme": "99TEST", "meaning": "Hepatic segment IVb"}
    metadata[CODES_KEY] = {"hepatic segment IVb": own}
    (bundle_dir / METADATA_JSON).write_text(json.dumps(metadata))
    assert ModelBundle.load(bundle_dir).description.segment_codes[2].type.meaning == "Hepatic segment IVb"
    seg = SegmentationPipeline.from_bundle(bundle_dir, device="cpu").run(load_series(series_dir)).seg_dataset
    assert seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "99TEST"


def test_the_modality_a_bundle_declares_is_the_one_it_reads(tmp_path: Path, series_dir: Path):
    from model_code.core.errors import InvalidSeriesError

    bundle_dir = save_bundle(tmp_path / "b", SmoothBand(channels=3), description=THREE, network_def=NETWORK_DEF)
    metadata = json.loads((bundle_dir / METADATA_JSON).read_text())
    metadata["network_data_format"]["inputs"]["image"]["modality"] = "MR"
    (bundle_dir / METADATA_JSON).write_text(json.dumps(metadata))
    pipeline = SegmentationPipeline.from_bundle(bundle_dir, device="cpu")
    with pytest.raises(InvalidSeriesError, match="the model abdomen_three_class reads MR; this series is CT"):
        pipeline.run(load_series(series_dir))
    scan = make_phantom(shape=(6, 32, 32), spacing=(2.5, 1.6, 1.6))
    write_dicom_series(scan.volume_hu, scan.affine, tmp_path / "mr", modality="MR")
    assert pipeline.run(load_series(tmp_path / "mr")).mask.shape == (6, 32, 32)
