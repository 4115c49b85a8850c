"""The spleen model contract (../shared/DESIGN.md): network, labels and default metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

from model_code.model_dir import InferenceSpec, ModelMetadata, NetworkSpec, Preprocessing

if TYPE_CHECKING:
    # Only an annotation: the edge runner imports this module on devices without torch.
    import torch

MODEL_NAME = "spleen_ct_segmentation"
SPLEEN_LABEL = 1

# The MONAI model-zoo spleen_ct_segmentation UNet, exactly as its bundle builds it.
SPLEEN_UNET_ARGS: dict[str, object] = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128, 256],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
    "norm": "batch",
}


def build_spleen_unet() -> torch.nn.Module:
    """A freshly initialised network of the contract (weights come from training, never a hub)."""
    from monai.networks.nets import UNet

    return UNet(**SPLEEN_UNET_ARGS)  # type: ignore[arg-type]


def spleen_metadata(*, version: str = "0.1.0", metrics: dict[str, float] | None = None) -> ModelMetadata:
    """metadata.json for a spleen model honouring the contract."""
    return ModelMetadata(
        name=MODEL_NAME,
        version=version,
        task="segmentation",
        network=NetworkSpec(name="UNet", args=dict(SPLEEN_UNET_ARGS)),
        labels={0: "background", SPLEEN_LABEL: "spleen"},
        preprocessing=Preprocessing(),
        inference=InferenceSpec(),
        metrics=dict(metrics or {}),
    )
