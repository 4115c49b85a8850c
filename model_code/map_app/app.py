"""The segmentation app, composed of MONAI Deploy App SDK 4 operators, running a MONAI bundle as is.

    loader (DICOM folder: stock DICOMDataLoaderOperator | HealthImaging: HealthImagingLoaderOperator)
      -> DICOMSeriesSelectorOperator -> DICOMSeriesToVolumeOperator -> MonaiBundleInferenceOperator
      -> DICOMSegmentationWriterOperator (also fed the selected series, for the SEG's source references)

Every operator but the HealthImaging loader is stock. The inference is the SDK's own
``MonaiBundleInferenceOperator``: it parses the bundle's ``configs/inference.json`` with MONAI's
``ConfigParser`` and runs its pre-processing (minus the file loader), inferer and post-processing (Invertd
back onto the series' grid, argmax), so a retrained or zoo model needs no code change. The SEG's segments
are the bundle's foreground labels (``channel_def``), coded as the platform's own SEG writer codes them
(``core.segment_codes``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from holoscan.conditions import CountCondition
from monai.deploy.core import AppContext, Application, Image, IOType
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_seg_writer_operator import DICOMSegmentationWriterOperator, SegmentDescription
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator
from monai.deploy.operators.monai_bundle_inference_operator import IOMapping, MonaiBundleInferenceOperator

from model_code.core.bundle_layout import INFERENCE_JSON, LAYOUT, METADATA_JSON, MODEL_PT, MODEL_TS, open_bundle
from model_code.core.errors import ModelDirectoryError
from model_code.core.segment_codes import SegmentCode, bundle_codes, resolve_codes

if TYPE_CHECKING:
    from model_code.map_app.healthimaging_operator import ClientFactory

# The first CT series of the study (the stock selector's rule language).
SELECTION_RULES = '{"selections": [{"name": "CT Series", "conditions": {"Modality": "(?i)CT"}}]}'


@dataclass(frozen=True)
class HealthImagingSource:
    """Where the app reads its series when it is not a DICOM folder."""

    datastore_id: str
    image_set_id: str
    client_factory: ClientFactory
    series_instance_uid: str | None = None


# The bundle's tensor names (network_data_format inputs.image / outputs.pred), which the operator's ports carry.
BUNDLE_INPUT, BUNDLE_OUTPUT = "image", "pred"


class BundleInferenceOperator(MonaiBundleInferenceOperator):  # type: ignore[misc]  # the SDK is untyped here
    """The stock bundle operator; ``sw_batch_size`` optionally overrides the bundle inferer's (benchmarks compare
    equal batches), everything else is the bundle's."""

    def __init__(self, *args: Any, sw_batch_size: int | None = None, **kwargs: Any) -> None:
        self._sw_batch_size = sw_batch_size
        super().__init__(*args, **kwargs)

    def _init_config(self, config_names: Any) -> None:
        super()._init_config(config_names)
        if self._sw_batch_size is not None and hasattr(self._inferer, "sw_batch_size"):
            self._inferer.sw_batch_size = self._sw_batch_size


@dataclass(frozen=True)
class BundleLabels:
    """What the SEG writer needs from configs/metadata.json (read with MONAI's ConfigParser)."""

    name: str
    version: str
    labels: dict[int, str]
    codes: dict[int, SegmentCode]


def read_bundle(root: Path) -> BundleLabels:
    """The bundle's name, version and labels (``outputs.pred.channel_def``); a clear error for a bundle the
    operator could not run (the operator itself reads inference.json and the weights when it first runs)."""
    from monai.bundle import ConfigParser

    missing = [str(m) for m in (METADATA_JSON, INFERENCE_JSON) if not (root / m).is_file()]
    if not (root / MODEL_TS).is_file() and not (root / MODEL_PT).is_file():
        missing.append(f"{MODEL_TS} or {MODEL_PT}")
    if missing:
        raise ModelDirectoryError(f"{root} lacks {', '.join(missing)}: a MONAI bundle holds {LAYOUT}")
    parser = ConfigParser()
    try:
        parser.read_meta(str(root / METADATA_JSON))
        channel_def = parser["_meta_"]["network_data_format"]["outputs"]["pred"]["channel_def"]
        labels = {int(k): str(v) for k, v in channel_def.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelDirectoryError(
            f"{root / METADATA_JSON} has no usable network_data_format.outputs.pred.channel_def "
            f"({type(error).__name__}: {error}): the SEG's labels come from there"
        ) from error
    meta = parser["_meta_"]
    # The platform's own SEG writer codes segments the same way (core.segment_codes): the bundle's codes, then the
    # table of common structures; an uncoded foreground label is refused here, naming it.
    codes = resolve_codes(labels, bundle_codes(meta))
    return BundleLabels(name=str(meta.get("name") or root.name), version=str(meta.get("version", "0.0.0")),
                        labels=labels, codes=codes)


def segment_descriptions(bundle: BundleLabels) -> list[Any]:
    """One SEG segment per coded foreground label of the bundle, in channel order (the SEG's segment numbers)."""
    lateral = [bundle.labels[i] for i, code in bundle.codes.items() if code.modifier is not None]
    if lateral:
        # The stock writer's SegmentDescription has no type modifier: "left kidney" would be coded as "kidney".
        raise ModelDirectoryError(
            f"labels {lateral} need a laterality modifier, which MONAI Deploy's DICOMSegmentationWriterOperator "
            "cannot write: serve this bundle from the platform's endpoints (their SEG writer carries it)"
        )
    return [
        SegmentDescription(
            segment_label=bundle.labels[index],
            segmented_property_category=code.category,
            segmented_property_type=code.type,
            algorithm_name=bundle.name,
            algorithm_version=bundle.version,
        )
        for index, code in sorted(bundle.codes.items())
    ]


class BundleSegApp(Application):  # type: ignore[misc]  # the SDK is untyped here
    """One run: one series in, one DICOM SEG (``*.dcm``) in ``output_dir``; ``bundle`` a MONAI bundle directory,
    ``.zip`` or ``model.tar.gz``."""

    def __init__(
        self,
        *,
        bundle: Path,
        output_dir: Path,
        dicom_dir: Path | None = None,
        healthimaging: HealthImagingSource | None = None,
        sw_batch_size: int | None = None,
    ) -> None:
        # holoscan's Application must be initialised before anything can raise (its __del__ reads its own state).
        super().__init__()
        if (dicom_dir is None) == (healthimaging is None):
            raise ValueError("give exactly one source: dicom_dir (a folder) or healthimaging (an image set)")
        self.output_dir = Path(output_dir)
        self.dicom_dir = dicom_dir
        self.healthimaging = healthimaging
        self.sw_batch_size = sw_batch_size
        # Read before compose so a bad bundle fails here, naming the file; an archive is unpacked for the app's life
        # (the operator reads the directory when it first runs).
        self._workdir = tempfile.TemporaryDirectory(prefix="map-bundle-")
        self.bundle_root = open_bundle(Path(bundle), Path(self._workdir.name))
        self.bundle_labels = read_bundle(self.bundle_root)
        self.segments = segment_descriptions(self.bundle_labels)

    def _loader(self) -> Any:
        once = CountCondition(self, 1)
        if self.healthimaging is not None:
            # Imported here: the HealthImaging connector needs boto3, which a folder-only run (and the
            # segmentation benchmark's venv) does without.
            from model_code.map_app.healthimaging_operator import HealthImagingLoaderOperator

            source = self.healthimaging
            return HealthImagingLoaderOperator(
                self,
                once,
                datastore_id=source.datastore_id,
                image_set_id=source.image_set_id,
                client_factory=source.client_factory,
                series_instance_uid=source.series_instance_uid,
                name="healthimaging_loader",
            )
        return DICOMDataLoaderOperator(self, once, input_folder=Path(str(self.dicom_dir)), name="dicom_loader")

    def compose(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        context = AppContext(
            {"input": str(self.dicom_dir or ""), "output": str(self.output_dir), "model": str(self.bundle_root)}
        )
        # The SDK's model factory takes any directory for a predictor-less model; with none in the context the
        # bundle operator loads the bundle from bundle_path itself (models/model.ts, else network_def + model.pt).
        context.models = None
        loader = self._loader()
        selector = DICOMSeriesSelectorOperator(self, rules=SELECTION_RULES, name="selector")
        to_volume = DICOMSeriesToVolumeOperator(self, name="to_volume")
        inference = BundleInferenceOperator(
            self,
            sw_batch_size=self.sw_batch_size,
            app_context=context,
            input_mapping=[IOMapping(BUNDLE_INPUT, Image, IOType.IN_MEMORY)],
            output_mapping=[IOMapping(BUNDLE_OUTPUT, Image, IOType.IN_MEMORY)],
            bundle_path=self.bundle_root,
            name="inference",
        )
        writer = DICOMSegmentationWriterOperator(
            self, segment_descriptions=self.segments, output_folder=self.output_dir, name="seg_writer"
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(to_volume, inference, {("image", BUNDLE_INPUT)})
        self.add_flow(selector, writer, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(inference, writer, {(BUNDLE_OUTPUT, "seg_image")})
