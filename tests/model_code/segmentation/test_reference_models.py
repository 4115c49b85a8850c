"""The reference model directories honour the contract: TorchScript in, [B,2,...] logits out, metadata."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from model_code.core.bundle_layout import MODEL_TS
from model_code.core.spleen import MODEL_NAME, SPLEEN_UNET_ARGS
from model_code.segmentation.bundle import ModelBundle
from testkit.models import save_threshold_model


def _scaled(hu: float) -> float:
    return (hu + 57.0) / 221.0


@pytest.mark.parametrize(
    ("hu", "foreground"),
    [
        (115.0, True),  # spleen
        (40.0, False),  # soft tissue
        (700.0, False),  # bone (clipped to 1.0 by the window)
        (-1000.0, False),  # air
    ],
)
def test_threshold_model_segments_the_band(threshold_model_dir, hu, foreground):
    network = torch.jit.load(str(threshold_model_dir / MODEL_TS))
    x = torch.full((1, 1, 6, 6, 6), min(max(_scaled(hu), 0.0), 1.0))
    logits = network(x)
    assert logits.shape == (1, 2, 6, 6, 6)
    assert bool(torch.all((logits[:, 1] > logits[:, 0]) == foreground))


def test_threshold_opening_equals_max_pooling(threshold_model_dir):
    network = torch.jit.load(str(threshold_model_dir / MODEL_TS))
    x = torch.rand(2, 1, 12, 10, 9, generator=torch.Generator().manual_seed(3)) * 0.6 + 0.45
    band = ((x >= _scaled(80.0)) & (x <= _scaled(150.0))).float()
    opened = F.max_pool3d(-F.max_pool3d(-band, 3, 1, 1), 3, 1, 1)
    assert torch.equal((network(x)[:, 1:] > 0).float(), opened)


def test_threshold_opening_drops_one_voxel_shells(threshold_model_dir):
    network = torch.jit.load(str(threshold_model_dir / MODEL_TS))
    x = torch.zeros(1, 1, 12, 12, 12)
    x[..., 6, :, :] = _scaled(115.0)  # a one-voxel sheet: a partial-volume artefact, not an organ
    x[..., 1:5, 1:5, 1:5] = _scaled(115.0)  # a 4-voxel cube: kept
    foreground = network(x)[0, 1] > 0
    assert not foreground[6].any()
    assert foreground[1:5, 1:5, 1:5].all()


def test_threshold_metadata(threshold_model_dir):
    metadata = ModelBundle.load(threshold_model_dir).description
    assert metadata.name == MODEL_NAME
    assert metadata.labels == {0: "background", 1: "spleen"}
    assert metadata.extra["reference_model"] == {"kind": "threshold", "low_hu": 80.0, "high_hu": 150.0}


def test_threshold_band_must_be_ordered(tmp_path):
    with pytest.raises(ValueError, match="low_hu must be below high_hu"):
        save_threshold_model(tmp_path, low_hu=150.0, high_hu=80.0)


def test_untrained_unet_is_the_contract_network(untrained_unet_dir):
    model_dir = untrained_unet_dir
    network = torch.jit.load(str(model_dir / MODEL_TS))
    with torch.inference_mode():
        logits = network(torch.rand(1, 1, 16, 16, 16))
    assert logits.shape == (1, 2, 16, 16, 16)
    metadata = ModelBundle.load(model_dir).description
    assert metadata.network.args == SPLEEN_UNET_ARGS
    assert metadata.extra["reference_model"] == {"kind": "untrained_unet", "seed": 1}
