"""SegmentationPipeline: reuse across requests and threads, any contract TorchScript, edge cases."""

from __future__ import annotations

import dataclasses
import json
import shutil
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from model_code.core.bundle_layout import INFERENCE_JSON, MODEL_TS
from model_code.core.dicom.files import load_series
from model_code.core.errors import InvalidSeriesError
from model_code.core.service import dataset_bytes
from model_code.core.spleen import spleen_metadata
from model_code.segmentation.bundle import write_bundle
from model_code.segmentation.pipeline import SegmentationPipeline, resolve_device
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom
from testkit.models import ThresholdSegmenter


def _series(folder: Path, *, orientation: str = "axial", seed: int = 0, modality: str = "CT", organ_hu: float = 115.0):
    phantom = make_phantom(shape=(12, 40, 36), spacing=(2.5, 1.6, 1.6), orientation=orientation, seed=seed,
                           organ_hu=organ_hu)
    write_dicom_series(phantom.volume_hu, phantom.affine, folder, modality=modality)
    return load_series(folder), phantom


def test_concurrent_runs_match_sequential_runs(tmp_path, pipeline):
    # The serving handler calls one pipeline from several threads.
    inputs = [_series(tmp_path / name, orientation=name, seed=i)[0] for i, name in enumerate(("axial", "sagittal", "coronal"))]
    sequential = [pipeline.run(series).mask for series in inputs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(lambda s: pipeline.run(s).mask, inputs * 2))
    for index, mask in enumerate(concurrent):
        assert np.array_equal(mask, sequential[index % 3])
    assert len({m.sum() for m in sequential}) == 3  # three different answers, not one repeated


@pytest.mark.parametrize("sw_batch_size", [1, 3])
def test_window_batch_size_does_not_change_the_mask(tmp_path, pipeline, threshold_model_dir, sw_batch_size):
    series, _ = _series(tmp_path / "s")
    other = SegmentationPipeline.from_model_dir(threshold_model_dir, device="cpu", sw_batch_size=sw_batch_size)
    assert other.sw_batch_size == sw_batch_size
    assert np.array_equal(other.run(series).mask, pipeline.run(series).mask)


def test_no_spleen_still_gives_a_valid_seg(tmp_path, pipeline, dciodvfy):
    series, _ = _series(tmp_path / "s", organ_hu=40.0)  # the organ looks like soft tissue: nothing to find
    result = pipeline.run(series)
    assert result.mask.sum() == 0
    assert result.summary["spleen_voxel_count"] == 0
    assert result.summary["spleen_volume_ml"] == 0.0
    assert result.summary["spleen_centroid_lps_mm"] is None
    assert result.summary["overlay_slice_index"] is None
    assert int(result.seg_dataset.NumberOfFrames) == series.volume.shape[0]
    assert result.overlay_png.startswith(b"\x89PNG")
    path = tmp_path / "seg.dcm"
    result.seg_dataset.save_as(path, enforce_file_format=True)
    assert dciodvfy(path) == []


def test_input_is_not_modified(tmp_path, pipeline):
    series, _ = _series(tmp_path / "s")
    before = series.volume.copy()
    pipeline.run(series)
    assert np.array_equal(series.volume, before)


def test_non_ct_is_refused(tmp_path, pipeline):
    series, _ = _series(tmp_path / "s", modality="MR")
    with pytest.raises(InvalidSeriesError, match="reads CT"):
        pipeline.run(series)


def test_traced_torchscript_works_too(tmp_path, pipeline):
    # Any TorchScript honouring the contract: here a traced (not scripted) module.
    model_dir = tmp_path / "traced"
    low, high = (80 + 57) / 221, (150 + 57) / 221
    module = ThresholdSegmenter(low=low, high=high).eval()
    network_def = {"_target_": "testkit.models.ThresholdSegmenter", "low": low, "high": high}
    write_bundle(model_dir, network=module, description=spleen_metadata(version="traced-1"), network_def=network_def,
                 scripted=False)
    torch.jit.trace(module, torch.rand(1, 1, 8, 8, 8)).save(str(model_dir / MODEL_TS))
    series, _ = _series(tmp_path / "s")
    traced = SegmentationPipeline.from_model_dir(model_dir, device="cpu")
    result = traced.run(series)
    assert np.array_equal(result.mask, pipeline.run(series).mask)
    assert result.summary["model"] == {"name": "spleen_ct_segmentation", "version": "traced-1"}


def test_untrained_unet_runs_end_to_end(tmp_path, untrained_unet_dir):
    # The real network through the whole pipeline; 32^3 windows instead of 96^3 keep it cheap on CPU.
    model_dir = tmp_path / "unet"
    shutil.copytree(untrained_unet_dir, model_dir)
    config = json.loads((model_dir / INFERENCE_JSON).read_text())
    config["inferer"]["roi_size"] = [32, 32, 32]
    (model_dir / INFERENCE_JSON).write_text(json.dumps(config))
    series, _ = _series(tmp_path / "s")
    unet = SegmentationPipeline.from_model_dir(model_dir, device="cpu", sw_batch_size=2)
    result = unet.run(series)
    assert result.mask.shape == series.volume.shape
    assert set(np.unique(result.mask)) <= {0, 1}
    assert isinstance(result.seg_dataset, pydicom.Dataset)


@pytest.mark.parametrize(
    ("cuda", "device", "expected", "error"),
    [
        (False, "cpu", "cpu", None),
        (True, "cpu", "cpu", None),  # an explicit CPU request stands on a GPU machine
        (False, None, "cpu", None),  # the default falls back to CPU
        (True, None, "cuda", None),  # ... and prefers CUDA where present
        (True, "cuda", "cuda", None),
        (False, "cuda", None, "use --device cpu"),  # asked for CUDA without CUDA: an error, not a fallback
        (False, "tpu", None, "device must be cpu or cuda"),
    ],
)
def test_resolve_device(monkeypatch, cuda, device, expected, error):
    # Both machines' answers on any machine: torch.device("cuda") needs no GPU until a tensor uses it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if error is None:
        assert resolve_device(device).type == expected
    else:
        with pytest.raises((ValueError, RuntimeError), match=error):
            resolve_device(device)


def test_sw_batch_size_must_be_positive(threshold_model_dir):
    with pytest.raises(ValueError, match="sw_batch_size must be >= 1"):
        SegmentationPipeline.from_model_dir(threshold_model_dir, device="cpu", sw_batch_size=0)


def test_a_long_model_name_and_version_still_give_a_valid_seg(tmp_path, dciodvfy):
    # DICOM LO elements hold 64 characters: a CI build version must not make the SEG writer fail.
    from model_code.core.dicom.seg import build_segmentation

    series, phantom = _series(tmp_path / "s")
    metadata = dataclasses.replace(spleen_metadata(), name="spleen_ct_segmentation_" + "x" * 60,
                                   version="1.0.0+build." + "0123456789" * 8)
    seg = build_segmentation(series, phantom.mask, metadata=metadata)
    assert len(seg.ContentDescription) <= 64
    assert seg.SoftwareVersions == metadata.version[:64]
    path = tmp_path / "seg.dcm"
    seg.save_as(path, enforce_file_format=True)
    assert dciodvfy(path) == []


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal"])
def test_int16_volume_gives_the_float32_volume_result(tmp_path, pipeline, orientation):
    # The loader keeps an exact-integer CT as int16 (issue 19: half the bytes); the model grid converts it a slab
    # at a time. Label map, SEG pixels and preview must be bit for bit those of the float32 volume.
    series, _ = _series(tmp_path / "s", orientation=orientation)
    assert series.volume.dtype == np.int16
    as_float = dataclasses.replace(series, volume=series.volume.astype(np.float32))
    ours, theirs = pipeline.run(series), pipeline.run(as_float)
    assert ours.mask.any()
    assert np.array_equal(ours.mask, theirs.mask)
    assert ours.seg_dataset.PixelData == theirs.seg_dataset.PixelData
    assert ours.overlay_png == theirs.overlay_png


def _twin(pipeline: SegmentationPipeline, *, release_volume: bool, bundle: bool) -> SegmentationPipeline:
    """The same network; the bundle's plan or (``bundle`` False) the description's; releasing the volume as
    ``for_server``'s pipeline does or keeping it."""
    return SegmentationPipeline(network=pipeline.network, metadata=pipeline.metadata, device=pipeline.device,
                                sw_batch_size=pipeline.sw_batch_size, inference=pipeline.inference if bundle else None,
                                release_volume=release_volume)


def _without_run_keys(summary: dict) -> dict:
    # The SEG's UIDs are generated per run, the timings measured: everything else must agree.
    return {k: v for k, v in summary.items() if k not in {"seg_series_instance_uid", "seg_sop_instance_uid", "timings_s"}}


@pytest.mark.parametrize("path", ["bundle", "description"])  # the bundle's fast path; the description's spleen one
@pytest.mark.parametrize("orientation", ["axial", "coronal"])
def test_a_releasing_pipeline_lets_go_of_the_volume_before_the_network_and_answers_the_same(
    tmp_path, pipeline, path, orientation
):
    # A server's pipeline (issue 19) drops the series' pixels once they are on the model grid: they must be
    # gone by the time the network runs, and the label map, the SEG pixels and the summary must be the same.
    kept, _ = _series(tmp_path / "s", orientation=orientation)
    given = load_series(tmp_path / "s")  # the same files, loaded once more: a volume of its own
    reference = _twin(pipeline, release_volume=False, bundle=path == "bundle")
    server = _twin(pipeline, release_volume=True, bundle=path == "bundle")
    original = weakref.ref(given.volume)
    alive_when_the_network_ran: list[bool] = []

    def network(windows: torch.Tensor) -> torch.Tensor:
        alive_when_the_network_ran.append(original() is not None)
        return pipeline.network(windows)

    server.network = network  # type: ignore[assignment]  # a probe around the real network
    ours, theirs = server.run(given), reference.run(kept)
    assert alive_when_the_network_ran
    assert not any(alive_when_the_network_ran)
    assert given.volume_released
    assert not kept.volume_released
    assert given.volume.shape == kept.volume.shape
    assert given.volume.dtype == kept.volume.dtype
    assert ours.mask.any()
    assert np.array_equal(ours.mask, theirs.mask)
    assert ours.seg_dataset.PixelData == theirs.seg_dataset.PixelData
    assert _without_run_keys(ours.summary) == _without_run_keys(theirs.summary)
    assert ours.overlay_png == b""
    assert theirs.overlay_png.startswith(b"\x89PNG")


def test_the_server_pipeline_releases_and_the_cli_pipeline_keeps(threshold_model_dir):
    from model_code.core.settings import ServerSettings

    assert SegmentationPipeline.for_server(threshold_model_dir, ServerSettings.from_env({})).release_volume
    assert not SegmentationPipeline.from_model_dir(threshold_model_dir, device="cpu").release_volume


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])  # uint8 0/1: the mask itself is the label map; bool: looked up
def test_a_two_class_mask_gives_the_same_seg_either_way_and_is_left_as_it_was(tmp_path, dtype):
    from model_code.core.dicom.seg import build_segmentation
    from testkit.series import seg_mask

    series, phantom = _series(tmp_path / "s")
    mask = phantom.mask.astype(dtype)
    before = mask.copy()
    seg = build_segmentation(series, mask, metadata=spleen_metadata())
    assert np.array_equal(mask, before)
    read_back = seg_mask(dataset_bytes(seg), [str(ds.SOPInstanceUID) for ds in series.datasets])
    assert read_back.any()
    assert np.array_equal(read_back, before.astype(bool))
