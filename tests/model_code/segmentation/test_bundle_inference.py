"""The pipeline follows the bundle: every answer checked against MONAI running the same bundle itself.

The reference is MONAI's own objects from the bundle's inference.json (``ConfigParser``): its pre-processing
``Compose`` (without ``LoadImaged``) on a ``MetaTensor`` of the volume, its ``SlidingWindowInferer``, its
post-processing (``Activationsd``, ``Invertd``), then argmax. The volume is handed over in the series' own
voxel order here, not in ``LoadImaged``'s, so the check does not lean on our loader's layout either.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import AsDiscreted, Compose, LoadImaged, SaveImaged

from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_TS
from model_code.core.errors import ModelDirectoryError
from model_code.core.geometry import LPS_TO_RAS
from model_code.core.model_dir import InferenceSpec, Preprocessing
from model_code.core.spleen import spleen_metadata
from model_code.segmentation.bundle import ModelBundle
from model_code.segmentation.bundle_inference import BundleInference, Scale
from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.synthetic.phantom import make_phantom
from testkit.models import SmoothBand, save_bundle

# Not the spleen bundle's settings anywhere: another orientation, spacing, window, range, ROI, overlap, batch.
OTHER = dataclasses.replace(
    spleen_metadata(version="other-1"),
    preprocessing=Preprocessing(orientation="LPS", spacing_mm=(2.0, 1.2, 3.0), intensity_window=(-100.0, 250.0),
                                scaled_range=(0.0, 1.0), clip=True),
    inference=InferenceSpec(roi_size=(24, 20, 16), overlap=0.25, sw_batch_size=3),
)
NETWORK_DEF = {"_target_": "testkit.models.SmoothBand", "channels": 2}


def phantom() -> tuple[np.ndarray, np.ndarray]:
    scan = make_phantom(shape=(12, 40, 36), spacing=(2.5, 1.6, 1.6), orientation="sagittal", seed=2)
    return scan.volume_hu, scan.affine


def monai_reference(bundle_dir: Path, volume: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label map, class probabilities) on the volume's grid, as MONAI runs the bundle's own objects."""
    parser = ConfigParser()
    parser.read_meta(str(bundle_dir / METADATA_JSON))
    parser.read_config(str(bundle_dir / INFERENCE_JSON))
    pre = parser.get_parsed_content("preprocessing")
    chain = Compose([t for t in pre.flatten().transforms if not isinstance(t, LoadImaged)])
    # What LoadImaged's meta says of a volume, given at construction: MONAI counts spatial axes from it.
    meta = {"original_channel_dim": "no_channel", "spatial_shape": np.asarray(volume.shape)}
    image = MetaTensor(torch.from_numpy(volume.astype(np.float32)), affine=torch.from_numpy(LPS_TO_RAS @ affine_lps),
                       meta=meta)
    data = chain({"image": image})
    network = torch.jit.load(str(bundle_dir / MODEL_TS))
    with torch.inference_mode():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], network)[0]
        post = parser.get_parsed_content("postprocessing").flatten().transforms
        probabilities = Compose([t for t in post if not isinstance(t, (AsDiscreted, SaveImaged))])(data)["pred"]
    probabilities = torch.as_tensor(probabilities).float().numpy()
    return probabilities.argmax(axis=0).astype(np.uint8), probabilities


def assert_same_labels(ours: np.ndarray, probabilities: np.ndarray, reference: np.ndarray) -> None:
    """Label for label, but for voxels whose two best classes MONAI itself puts within 1e-4 (float order)."""
    top = np.sort(probabilities, axis=0)
    decided = (top[-1] - top[-2]) > 1e-4
    assert ours.shape == reference.shape
    assert np.array_equal(ours[decided], reference[decided])
    assert decided.mean() > 0.99


def predict(
    bundle_dir: Path, volume: np.ndarray, affine: np.ndarray, *, inverse_slab: int | None = None
) -> tuple[BundleInference, np.ndarray]:
    bundle = ModelBundle.load(bundle_dir)
    plan = BundleInference.plan(bundle)
    if inverse_slab is not None:
        plan.inverse_slab = inverse_slab
    with torch.inference_mode():
        labels = plan.predict(bundle.network("cpu"), volume, affine, device=torch.device("cpu"), amp=False)
    return plan, labels


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bundle(tmp_path_factory.mktemp("other"), SmoothBand(), description=OTHER, network_def=NETWORK_DEF)


def test_the_description_reads_the_bundles_settings_back(other_bundle: Path):
    description = ModelBundle.load(other_bundle).description
    assert description.preprocessing == OTHER.preprocessing
    assert description.inference == OTHER.inference


def test_pre_processing_unlike_the_spleen_defaults_is_followed_on_the_fast_path(other_bundle: Path, tmp_path: Path):
    volume, affine = phantom()
    plan, ours = predict(other_bundle, volume, affine)
    assert plan.route == "fast"
    assert (plan.axcodes, plan.pixdim) == ("LPS", (2.0, 1.2, 3.0))
    assert plan.steps == [Scale((-100.0, 250.0), (0.0, 1.0), True)]
    reference, probabilities = monai_reference(other_bundle, volume, affine)
    assert_same_labels(ours, probabilities, reference)
    assert 0 < ours.sum() < ours.size
    # The same network on the spleen defaults answers differently: the output follows the bundle.
    defaults = save_bundle(tmp_path / "defaults", SmoothBand(), description=spleen_metadata(), network_def=NETWORK_DEF)
    _, spleen = predict(defaults, volume, affine)
    assert (spleen != ours).mean() > 0.01


@pytest.mark.parametrize(
    "extra",
    [
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True},
        {"_target_": "GaussianSmoothd", "keys": "image", "sigma": 1.0},
    ],
    ids=["NormalizeIntensityd", "GaussianSmoothd"],
)
def test_a_stock_transform_only_compose_implements_runs_through_monai_in_the_bundles_order(tmp_path: Path, extra):
    bundle_dir = save_bundle(tmp_path / "b", SmoothBand(), description=OTHER, network_def=NETWORK_DEF,
                             extra_preprocessing=(extra,))
    volume, affine = phantom()
    plan, ours = predict(bundle_dir, volume, affine)
    assert plan.route == "fast"
    assert isinstance(plan.steps[0], Scale)
    assert isinstance(plan.steps[1], Compose)
    assert [type(t).__name__ for t in plan.steps[1].transforms] == [extra["_target_"]]
    reference, probabilities = monai_reference(bundle_dir, volume, affine)
    assert_same_labels(ours, probabilities, reference)


def test_a_grid_changing_transform_we_do_not_implement_runs_the_whole_bundle_through_monai(tmp_path: Path):
    pad = {"_target_": "SpatialPadd", "keys": "image", "spatial_size": [40, 48, 24]}
    bundle_dir = save_bundle(tmp_path / "b", SmoothBand(), description=OTHER, network_def=NETWORK_DEF,
                             extra_preprocessing=(pad,))
    volume, affine = phantom()
    plan, ours = predict(bundle_dir, volume, affine)
    assert plan.route == "monai"
    assert "SpatialPadd" in plan.reason
    reference, probabilities = monai_reference(bundle_dir, volume, affine)
    assert_same_labels(ours, probabilities, reference)


@pytest.mark.parametrize("inverse_slab", [None, 5], ids=["default-slab", "slabs-of-5"])
def test_a_gaussian_inferer_and_a_three_class_model_use_the_bundles_own_inferer(tmp_path: Path, inverse_slab):
    def gaussian(config: dict[str, Any]) -> None:
        config["inferer"]["mode"] = "gaussian"

    labels = {0: "background", 1: "liver", 2: "spleen"}
    description = dataclasses.replace(OTHER, labels=labels)
    bundle_dir = save_bundle(tmp_path / "b", SmoothBand(channels=3), description=description,
                             network_def={**NETWORK_DEF, "channels": 3}, edit=gaussian)
    volume, affine = phantom()
    plan, ours = predict(bundle_dir, volume, affine, inverse_slab=inverse_slab)
    assert plan.route == "fast"
    assert plan._two_class_fast_window() is None
    reference, probabilities = monai_reference(bundle_dir, volume, affine)
    assert_same_labels(ours, probabilities, reference)
    assert set(np.unique(ours)) == {0, 1, 2}


def test_the_spleen_bundle_takes_the_fast_window_and_the_pipeline_reports_the_bundles_batch(
    threshold_model_dir: Path, other_bundle: Path
):
    plan = BundleInference.plan(ModelBundle.load(threshold_model_dir))
    assert plan.route == "fast"
    assert plan._two_class_fast_window() == {"roi_size": (96, 96, 96), "overlap": 0.5, "sw_batch_size": 4}
    pipeline = SegmentationPipeline.from_bundle(other_bundle, device="cpu")
    assert pipeline.sw_batch_size == 3
    overridden = SegmentationPipeline.from_bundle(other_bundle, device="cpu", sw_batch_size=5).inference
    assert overridden is not None
    assert overridden.sw_batch_size == 5


def _edited(tmp_path: Path, edit) -> Path:
    return save_bundle(tmp_path / "b", SmoothBand(), description=OTHER, network_def=NETWORK_DEF, edit=edit)


def _insert(transform: dict[str, Any], at: int = 3):
    def edit(config: dict[str, Any]) -> None:
        config["preprocessing"]["transforms"].insert(at, transform)

    return edit


REFUSED = [
    ("a second loader", _insert({"_target_": "LoadImaged", "keys": "image"}),
     r"'preprocessing' transform 3 \(LoadImaged\) reads or writes files"),
    ("a writer", _insert({"_target_": "SaveImaged", "keys": "image", "output_dir": "/tmp/x"}),
     r"'preprocessing' transform 3 \(SaveImaged\) reads or writes files"),
    ("another key", _insert({"_target_": "ScaleIntensityd", "keys": ["image", "label"]}),
     r"'preprocessing' transform 3 \(ScaleIntensityd\) reads label"),
    ("fails in memory", _insert({"_target_": "Lambdad", "keys": "image", "func": "$lambda x: x.no_such_attribute"}, 5),
     r"'preprocessing' cannot run on an in-memory volume \(.*Lambdad"),
    ("no Invertd", lambda c: c["postprocessing"]["transforms"].__setitem__(1, {"_target_": "Identityd", "keys": "pred"}),
     r"'postprocessing' has no Invertd"),
]


@pytest.mark.parametrize(("edit", "expected"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_what_cannot_run_on_an_in_memory_volume_is_refused_at_load_naming_it(tmp_path: Path, edit, expected):
    bundle_dir = _edited(tmp_path, edit)
    with pytest.raises(ModelDirectoryError, match=expected) as raised:
        SegmentationPipeline.from_bundle(bundle_dir, device="cpu")
    assert "configs/inference.json" in str(raised.value)
