"""The core's model description: JSON round trip, the dataclasses' defaults for absent keys, unknown keys kept,
clear errors."""

from __future__ import annotations

import json

import pytest

from model_code.core.errors import ModelDirectoryError
from model_code.core.model_dir import InferenceSpec, ModelMetadata, Preprocessing

MINIMAL = {"name": "spleen", "version": "1", "task": "segmentation", "network": {"name": "UNet", "args": {}}, "labels": {"1": "spleen"}}


def test_absent_sections_take_the_dataclass_defaults_and_unknown_keys_are_kept(tmp_path):
    metadata = ModelMetadata.from_json({**MINIMAL, "trainer": {"epochs": 3}})
    assert metadata.preprocessing == Preprocessing()
    assert metadata.inference == InferenceSpec()
    assert metadata.labels == {1: "spleen"}
    assert metadata.extra == {"trainer": {"epochs": 3}}
    assert ModelMetadata.from_json(json.loads(json.dumps(metadata.to_json()))) == metadata


def test_given_values_win_over_defaults():
    document = {**MINIMAL, "preprocessing": {"spacing_mm": [1, 1, 1], "clip": False}, "inference": {"overlap": 0.25}}
    metadata = ModelMetadata.from_json(document)
    assert metadata.preprocessing.spacing_mm == (1.0, 1.0, 1.0)
    assert metadata.preprocessing.clip is False
    assert metadata.preprocessing.orientation == Preprocessing().orientation
    assert metadata.inference.overlap == 0.25


@pytest.mark.parametrize("missing", ["name", "network", "labels"])
def test_a_missing_required_key_names_the_contract(missing):
    document = {k: v for k, v in MINIMAL.items() if k != missing}
    with pytest.raises(ModelDirectoryError, match="does not follow the model contract"):
        ModelMetadata.from_json(document)
