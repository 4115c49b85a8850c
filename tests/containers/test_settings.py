"""Serving settings: parsed once from the environment; a wrong value names the variable."""

from __future__ import annotations

import pytest

from model_code.core.settings import InputLimits, ServerSettings
from model_code.serving.settings import ServingSettings


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        # nothing configured: AWS endpoints and region from the SDK, device chosen by the pipeline
        ({}, ServingSettings()),
        # local endpoint overrides and the pipeline's knobs
        (
            {
                "HEALTHIMAGING_ENDPOINT_URL": "http://127.0.0.1:9999",
                "AWS_REGION": "eu-west-1",
                "SERVING_DEVICE": "cpu",
                "SERVING_SW_BATCH_SIZE": "2",
                "SERVING_MAX_EXPANDED_BYTES": "1048576",
            },
            ServingSettings(
                healthimaging_endpoint_url="http://127.0.0.1:9999",
                region="eu-west-1",
                device="cpu",
                sw_batch_size=2,
                limits=InputLimits(max_expanded_bytes=1 << 20),
            ),
        ),
    ],
)
def test_settings_from_env(environ: dict[str, str], expected: ServingSettings) -> None:
    assert ServingSettings.from_env(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SERVING_SW_BATCH_SIZE": "0"}, "SERVING_SW_BATCH_SIZE must be an integer >= 1"),
        ({"SERVING_MAX_EXPANDED_BYTES": "4GiB"}, "SERVING_MAX_EXPANDED_BYTES must be an integer >= 1"),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServingSettings.from_env(environ)


def test_the_triton_model_reads_the_same_server_settings() -> None:
    # The Triton image reads the model server's part only; the SageMaker runtime's settings extend it.
    environ = {"SERVING_DEVICE": "cpu", "SERVING_SW_BATCH_SIZE": "3", "HEALTHIMAGING_ENDPOINT_URL": "http://x"}
    assert ServerSettings.from_env(environ) == ServerSettings(device="cpu", sw_batch_size=3)
    with pytest.raises(ValueError, match="SERVING_SW_BATCH_SIZE must be an integer >= 1"):
        ServerSettings.from_env({"SERVING_SW_BATCH_SIZE": "two"})
