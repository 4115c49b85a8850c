"""Spleen segmentation: the model-zoo bundle's transforms, DiceCE loss, sliding-window Dice."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from model_code.core.model_dir import Preprocessing
from model_code.core.spleen import MODEL_NAME, SPLEEN_UNET_ARGS, spleen_metadata
from model_code.segmentation.networks import build_spleen_unet
from model_code.training import bundle_configs as bc
from model_code.training.config import TrainConfig
from model_code.training.data_common import split_items
from model_code.training.data_segmentation import discover_cases
from model_code.training.task_base import TrainingTask

_KEYS = ("image", "label")


class SegmentationTask(TrainingTask):
    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.preprocessing = Preprocessing()  # the contract's: inference applies exactly these
        cases = discover_cases(config.training_dir)
        if config.validation_dir is not None:
            train, val = cases, discover_cases(config.validation_dir)
        else:
            train, val = split_items(cases, val_fraction=config.val_fraction, seed=config.seed,
                                     source=config.training_dir)
        self.train_items = [case.as_dict() for case in train]
        self.val_items = [case.as_dict() for case in val]
        self.data_files = [p for case in [*train, *val] for p in (case.image, case.label)]

    def _deterministic(self) -> list[Any]:
        from monai.transforms import (
            CropForegroundd,
            EnsureChannelFirstd,
            EnsureTyped,
            LoadImaged,
            Orientationd,
            ScaleIntensityRanged,
            Spacingd,
        )

        pre = self.preprocessing
        return [
            LoadImaged(keys=_KEYS, image_only=True),
            EnsureChannelFirstd(keys=_KEYS),
            Orientationd(keys=_KEYS, axcodes=pre.orientation),
            Spacingd(keys=_KEYS, pixdim=pre.spacing_mm, mode=("bilinear", "nearest")),
            ScaleIntensityRanged(keys="image", a_min=pre.intensity_window[0], a_max=pre.intensity_window[1],
                                 b_min=pre.scaled_range[0], b_max=pre.scaled_range[1], clip=pre.clip),
            # The bundle crops to the body (scaled intensity > 0) so patches land on anatomy, not air.
            CropForegroundd(keys=_KEYS, source_key="image", allow_smaller=True),
            EnsureTyped(keys=_KEYS, track_meta=False),
        ]

    def train_transforms(self) -> Any:
        from monai.transforms import Compose, RandCropByPosNegLabeld, RandShiftIntensityd, SpatialPadd

        roi = (self.config.roi_size,) * 3
        return Compose([
            *self._deterministic(),
            # A body smaller than the patch would give ragged crops that cannot be batched.
            SpatialPadd(keys=_KEYS, spatial_size=roi),
            RandCropByPosNegLabeld(keys=_KEYS, label_key="label", spatial_size=roi, pos=1, neg=1,
                                   num_samples=self.config.samples_per_volume, image_key="image",
                                   image_threshold=0),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ])

    def val_transforms(self) -> Any:
        from monai.transforms import Compose

        return Compose(self._deterministic())

    def build_network(self) -> torch.nn.Module:
        return build_spleen_unet()

    def build_loss(self) -> torch.nn.Module:
        from monai.losses import DiceCELoss

        return DiceCELoss(to_onehot_y=True, softmax=True)

    def evaluate(self, model: torch.nn.Module, loader: Any, device: torch.device) -> dict[str, float]:
        from monai.inferers import sliding_window_inference
        from monai.metrics import DiceMetric
        from monai.networks.utils import one_hot

        metric = DiceMetric(include_background=False, reduction="mean")
        roi = (self.config.roi_size,) * 3
        model.eval()
        with torch.no_grad():
            for batch in loader:
                image, label = batch["image"].to(device), batch["label"].to(device)
                logits = torch.as_tensor(sliding_window_inference(image, roi, 4, model, overlap=0.5))
                prediction = one_hot(torch.argmax(logits, dim=1, keepdim=True), num_classes=2)
                metric(y_pred=prediction, y=one_hot(label.long(), num_classes=2))
        dice = float(metric.aggregate().item())  # type: ignore[union-attr]
        return {"val_dice": dice}

    def example_input(self) -> torch.Tensor:
        return torch.rand(1, 1, 32, 32, 32)

    def network_def(self) -> dict[str, Any]:
        return bc.component("UNet", **SPLEEN_UNET_ARGS)

    def inference_config(self) -> dict[str, Any]:
        from model_code.segmentation.bundle import zoo_inference_config

        # The zoo spleen bundle's inference config (the serving side reads the same) with the values this model
        # was trained with; inference keeps the contract's 96^3 windows whatever patch side trained it (the
        # UNet is fully convolutional, and 96^3 holds a whole abdomen's context).
        description = replace(spleen_metadata(), preprocessing=self.preprocessing)
        return zoo_inference_config(description, network_def=self.network_def())

    def bundle_metadata(self, *, metrics: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
        labels = spleen_metadata().labels
        # Any side divisible by 16 (the UNet halves the grid four times); verify_net_in_out tries 16*n.
        shape = ["16*n"] * 3
        image = bc.tensor_format(type_="image", format_="hounsfield", modality="CT", num_channels=1,
                                 spatial_shape=shape, value_range=self.preprocessing.scaled_range,
                                 is_patch_data=True, channel_def={0: "image"})
        pred = bc.tensor_format(type_="image", format_="segmentation", num_channels=len(labels), spatial_shape=shape,
                                value_range=(0, 1), is_patch_data=True, channel_def=labels)
        return bc.metadata_document(
            name=MODEL_NAME, version=self.config.model_version, task="Spleen CT segmentation",
            description="A 3D UNet segmenting the spleen in CT, trained with model_code.training",
            image=image, pred=pred, eval_metrics=metrics, extra=extra,
        )
