"""The networks of the model contracts, built with MONAI (the core holds their arguments, not MONAI)."""

from __future__ import annotations

import torch
from monai.networks.nets import UNet

from model_code.core.spleen import SPLEEN_UNET_ARGS


def build_spleen_unet() -> torch.nn.Module:
    """A freshly initialised network of the contract (weights come from training, never a hub)."""
    return UNet(**SPLEEN_UNET_ARGS)  # type: ignore[arg-type]
