"""What the training loop needs from a task; segmentation and classification implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from model_code.training.config import TrainConfig


class TrainingTask(ABC):
    """Data, network, loss, validation and metadata of one kind of model."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.train_items: list[dict[str, Any]] = []
        self.val_items: list[dict[str, Any]] = []
        self.data_files: list[Path] = []

    @abstractmethod
    def train_transforms(self) -> Callable[..., Any]: ...

    @abstractmethod
    def val_transforms(self) -> Callable[..., Any]: ...

    @abstractmethod
    def build_network(self) -> torch.nn.Module: ...

    @abstractmethod
    def build_loss(self) -> torch.nn.Module: ...

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, loader: Any, device: torch.device) -> dict[str, float]: ...

    @abstractmethod
    def example_input(self) -> torch.Tensor:
        """A small input of the right layout, to check the exported TorchScript."""

    @abstractmethod
    def network_def(self) -> dict[str, Any]:
        """The network as a MONAI config component (inference.json's ``network_def``); builds build_network()'s."""

    @abstractmethod
    def inference_config(self) -> dict[str, Any]:
        """The bundle's configs/inference.json: network_def, pre-processing, inferer, post-processing."""

    @abstractmethod
    def bundle_metadata(self, *, metrics: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
        """The bundle's configs/metadata.json: network_data_format (labels in channel_def) and the run's metrics."""
