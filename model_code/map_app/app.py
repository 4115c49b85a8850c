"""The spleen segmentation app, composed of MONAI Deploy App SDK 4 operators.

    loader (DICOM folder: stock DICOMDataLoaderOperator | HealthImaging: HealthImagingLoaderOperator)
      -> DICOMSeriesSelectorOperator -> DICOMSeriesToVolumeOperator -> SpleenInferenceOperator
      -> DICOMSegmentationWriterOperator (also fed the selected series, for the SEG's source references)

Every operator but the HealthImaging loader is stock. ``SpleenInferenceOperator`` is the stock
``MonaiSegInferenceOperator`` with its documented pre/post-processing hooks filled from the model
directory's ``metadata.json`` (the model contract), so a retrained model with other spacing or window
needs no code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from holoscan.conditions import CountCondition
from monai.deploy.core import AppContext, Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_seg_writer_operator import DICOMSegmentationWriterOperator, SegmentDescription
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator
from monai.deploy.operators.monai_seg_inference_operator import MonaiSegInferenceOperator
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Invertd,
    LoadImaged,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)

from model_code.core.dicom.seg import SPLEEN_CATEGORY, SPLEEN_TYPE
from model_code.core.model_dir import ModelMetadata, model_file
from model_code.core.spleen import SPLEEN_LABEL

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


class SpleenInferenceOperator(MonaiSegInferenceOperator):  # type: ignore[misc]  # the SDK is untyped here
    """The stock inference operator with the contract's pre/post-processing (the spleen bundle's transforms)."""

    def __init__(self, fragment: Any, *args: Any, model_metadata: ModelMetadata, **kwargs: Any) -> None:
        self.model_metadata = model_metadata
        super().__init__(fragment, *args, pre_transforms=None, post_transforms=None, **kwargs)

    def pre_process(self, img_reader: Any, *args: Any, **kwargs: Any) -> Compose:
        key, pre = self.input_dataset_key, self.model_metadata.preprocessing
        low, high = pre.intensity_window
        b_min, b_max = pre.scaled_range
        return Compose(
            [
                LoadImaged(keys=key, reader=img_reader),
                EnsureChannelFirstd(keys=key),
                Orientationd(keys=key, axcodes=pre.orientation),
                Spacingd(keys=key, pixdim=list(pre.spacing_mm), mode="bilinear"),
                ScaleIntensityRanged(keys=key, a_min=low, a_max=high, b_min=b_min, b_max=b_max, clip=pre.clip),
                EnsureTyped(keys=key),
            ]
        )

    def post_process(self, pre_transforms: Compose, *args: Any, **kwargs: Any) -> Compose:
        pred = self.pred_dataset_key
        return Compose(
            [
                EnsureTyped(keys=pred),
                Activationsd(keys=pred, softmax=True),
                Invertd(
                    keys=pred,
                    transform=pre_transforms,
                    orig_keys=self.input_dataset_key,
                    nearest_interp=False,
                    to_tensor=True,
                ),
                AsDiscreted(keys=pred, argmax=True),
            ]
        )


class SpleenSegApp(Application):  # type: ignore[misc]  # the SDK is untyped here
    """One run: one series in, one DICOM SEG (``*.dcm``) in ``output_dir``."""

    def __init__(
        self,
        *,
        model_dir: Path,
        output_dir: Path,
        dicom_dir: Path | None = None,
        healthimaging: HealthImagingSource | None = None,
        sw_batch_size: int | None = None,
    ) -> None:
        if (dicom_dir is None) == (healthimaging is None):
            raise ValueError("give exactly one source: dicom_dir (a folder) or healthimaging (an image set)")
        self.model_dir = Path(model_dir)
        self.output_dir = Path(output_dir)
        self.dicom_dir = dicom_dir
        self.healthimaging = healthimaging
        self.sw_batch_size = sw_batch_size
        # Read before compose so a bad model directory fails here, with the contract's message.
        self.model_metadata = ModelMetadata.load(self.model_dir)
        self.model_path = model_file(self.model_dir)
        super().__init__()

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
        inference_spec = self.model_metadata.inference
        context = AppContext(
            {"input": str(self.dicom_dir or ""), "output": str(self.output_dir), "model": str(self.model_path)}
        )
        loader = self._loader()
        selector = DICOMSeriesSelectorOperator(self, rules=SELECTION_RULES, name="selector")
        to_volume = DICOMSeriesToVolumeOperator(self, name="to_volume")
        inference = SpleenInferenceOperator(
            self,
            model_metadata=self.model_metadata,
            roi_size=tuple(inference_spec.roi_size),
            overlap=inference_spec.overlap,
            sw_batch_size=self.sw_batch_size or inference_spec.sw_batch_size,
            app_context=context,
            model_path=self.model_path,
            name="inference",
        )
        writer = DICOMSegmentationWriterOperator(
            self,
            segment_descriptions=[
                SegmentDescription(
                    segment_label=self.model_metadata.labels.get(SPLEEN_LABEL, "spleen"),
                    # The same codes as the platform's own SEG writer, so both SEGs say the same thing.
                    segmented_property_category=SPLEEN_CATEGORY,
                    segmented_property_type=SPLEEN_TYPE,
                    algorithm_name=self.model_metadata.name,
                    algorithm_version=self.model_metadata.version,
                )
            ],
            output_folder=self.output_dir,
            name="seg_writer",
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(to_volume, inference, {("image", "image")})
        self.add_flow(selector, writer, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(inference, writer, {("seg_image", "seg_image")})
