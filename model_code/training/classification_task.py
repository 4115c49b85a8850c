"""Image classification with DenseNet121: 2D RGB images or 3D volumes, validation ROC-AUC."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from model_code.training import bundle_configs as bc
from model_code.training.config import TrainConfig
from model_code.training.data_classification import ClassificationCase, read_channel
from model_code.training.data_common import split_items
from model_code.training.data_errors import TrainingDataError
from model_code.training.task_base import TrainingTask


def _stratified_split(
    cases: list[ClassificationCase], *, val_fraction: float, seed: int
) -> tuple[list[ClassificationCase], list[ClassificationCase]]:
    # Per class, so validation sees every class and ROC-AUC is defined.
    by_label: dict[str, list[ClassificationCase]] = defaultdict(list)
    for case in cases:
        by_label[case.label].append(case)
    train: list[ClassificationCase] = []
    val: list[ClassificationCase] = []
    for label in sorted(by_label):
        group = by_label[label]
        if len(group) < 2:
            train.extend(group)
            continue
        group_train, group_val = split_items(group, val_fraction=val_fraction, seed=seed, source=group[0].image.parent)
        train.extend(group_train)
        val.extend(group_val)
    return train, val


class ClassificationTask(TrainingTask):
    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        channel = read_channel(config.training_dir)
        self.spatial_dims = channel.spatial_dims
        if config.validation_dir is not None:
            validation = read_channel(config.validation_dir)
            if validation.spatial_dims != channel.spatial_dims:
                raise TrainingDataError(
                    f"{validation.csv_path} lists {validation.spatial_dims}D data but {channel.csv_path} "
                    f"lists {channel.spatial_dims}D: both channels must hold the same kind"
                )
            train, val = channel.cases, validation.cases
        else:
            train, val = _stratified_split(channel.cases, val_fraction=config.val_fraction, seed=config.seed)
        self.classes = sorted({case.label for case in train})
        if len(self.classes) < 2:
            raise TrainingDataError(
                f"{channel.csv_path} has a single class {self.classes}: classification needs at least two"
            )
        unknown = sorted({case.label for case in val} - set(self.classes))
        if unknown:
            raise TrainingDataError(f"validation labels {unknown} never occur in training ({channel.csv_path})")
        index = {name: i for i, name in enumerate(self.classes)}
        self.train_items = [case.as_dict(index) for case in train]
        self.val_items = [case.as_dict(index) for case in val]
        self.data_files = [channel.csv_path, *(case.image for case in [*train, *val])]
        self.in_channels = 3 if self.spatial_dims == 2 else 1

    @property
    def network_args(self) -> dict[str, Any]:
        return {"spatial_dims": self.spatial_dims, "in_channels": self.in_channels, "out_channels": len(self.classes)}

    def _deterministic(self) -> list[Any]:
        from monai.transforms import (
            EnsureTyped,
            LoadImaged,
            Orientationd,
            Resized,
            ScaleIntensityd,
            ScaleIntensityRanged,
        )

        size = (self.config.image_size,) * self.spatial_dims
        steps: list[Any] = [LoadImaged(keys="image", image_only=True, ensure_channel_first=True)]
        if self.spatial_dims == 2:
            # 8-bit RGB: a fixed 0..255 window keeps colour meaning comparable between images.
            steps.append(ScaleIntensityRanged(keys="image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True))
        else:
            # MR volumes have no absolute unit (unlike CT's HU): normalise each volume to 0..1.
            steps += [Orientationd(keys="image", axcodes="RAS"), ScaleIntensityd(keys="image")]
        steps += [Resized(keys="image", spatial_size=size), EnsureTyped(keys="image", track_meta=False)]
        return steps

    def train_transforms(self) -> Any:
        from monai.transforms import Compose, RandFlipd

        return Compose([*self._deterministic(), RandFlipd(keys="image", prob=0.5, spatial_axis=0)])

    def val_transforms(self) -> Any:
        from monai.transforms import Compose

        return Compose(self._deterministic())

    def build_network(self) -> torch.nn.Module:
        from monai.networks.nets import DenseNet121

        return DenseNet121(**self.network_args)

    def build_loss(self) -> torch.nn.Module:
        return torch.nn.CrossEntropyLoss()

    def evaluate(self, model: torch.nn.Module, loader: Any, device: torch.device) -> dict[str, float]:
        from monai.metrics import ROCAUCMetric
        from monai.networks.utils import one_hot

        metric = ROCAUCMetric(average="macro")
        model.eval()
        with torch.no_grad():
            for batch in loader:
                label = batch["label"].to(device).long()
                probabilities = torch.softmax(model(batch["image"].to(device)), dim=1)
                metric(y_pred=probabilities, y=one_hot(label[:, None], num_classes=len(self.classes)))
        # The buffers are gathered over ranks, so accuracy counts every rank's cases like the AUC does.
        y_pred, y = metric.get_buffer()  # type: ignore[misc]
        accuracy = float((y_pred.argmax(dim=1) == y.argmax(dim=1)).float().mean())
        auc = metric.aggregate()
        auc_value = auc if isinstance(auc, float) else float(torch.as_tensor(auc).item())
        return {"val_auc": auc_value, "val_accuracy": accuracy}

    def example_input(self) -> torch.Tensor:
        return torch.rand(1, self.in_channels, *(self.config.image_size,) * self.spatial_dims)

    def network_def(self) -> dict[str, Any]:
        return bc.component("DenseNet121", **self.network_args)

    def inference_config(self) -> dict[str, Any]:
        size = [self.config.image_size] * self.spatial_dims
        load = bc.component("LoadImaged", keys="image", image_only=True, ensure_channel_first=True)
        if self.spatial_dims == 2:
            scaling = [bc.component("ScaleIntensityRanged", keys="image", a_min=0.0, a_max=255.0, b_min=0.0,
                                    b_max=1.0, clip=True)]
        else:
            scaling = [bc.component("Orientationd", keys="image", axcodes="RAS"),
                       bc.component("ScaleIntensityd", keys="image")]
        # The validation transforms of this run (_deterministic), in the same order.
        preprocessing = [load, *scaling, bc.component("Resized", keys="image", spatial_size=size),
                         bc.component("EnsureTyped", keys="image")]
        postprocessing = [bc.component("Activationsd", keys="pred", softmax=True)]
        return bc.inference_document(network_def=self.network_def(), preprocessing=preprocessing,
                                     inferer=bc.component("SimpleInferer"), postprocessing=postprocessing)

    def bundle_metadata(self, *, metrics: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
        size = [self.config.image_size] * self.spatial_dims
        kind = "RGB images" if self.spatial_dims == 2 else "volumes"
        channels = {0: "R", 1: "G", 2: "B"} if self.spatial_dims == 2 else {0: "image"}
        image = bc.tensor_format(type_="image", format_="RGB" if self.spatial_dims == 2 else "magnitude",
                                 num_channels=self.in_channels, spatial_shape=size, value_range=(0, 1),
                                 is_patch_data=False, channel_def=channels)
        labels = dict(enumerate(self.classes))
        pred = bc.tensor_format(type_="probabilities", format_="classes", num_channels=len(self.classes),
                                spatial_shape=[len(self.classes)], value_range=(0, 1), is_patch_data=False,
                                channel_def=labels)
        return bc.metadata_document(
            name=f"densenet121_{self.spatial_dims}d_classifier", version=self.config.model_version,
            task="classification",
            description=f"DenseNet121 classifying {self.spatial_dims}D {kind} into {', '.join(self.classes)}",
            image=image, pred=pred, eval_metrics=metrics,
            extra={**extra, "spatial_dims": self.spatial_dims, "image_size": self.config.image_size},
        )
