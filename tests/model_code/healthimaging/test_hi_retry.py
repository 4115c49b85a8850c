"""Throttling and 5xx answers are retried by botocore's retry mode, proven over real HTTP.

The Stubber answers above botocore's retry handler, so these tests use the loopback HealthImaging, which
answers the injected errors on the wire like the service does (status, x-amzn-ErrorType, JSON message).
"""

from __future__ import annotations

import numpy as np
import pytest
from botocore.exceptions import ClientError

from model_code.healthimaging import load_image_set
from testkit.healthimaging import (
    INTERNAL_ERROR,
    THROTTLED,
    UNAVAILABLE,
    build_image_set,
    loopback_client,
    serve,
)
from tests.model_code.healthimaging.hi_helpers import synthetic_series


@pytest.fixture(scope="module")
def image_set():
    datasets, arrays = synthetic_series(3, dtype="int16", slope="1", intercept="-1024")
    return build_image_set(datasets, pixel_arrays=arrays), arrays


@pytest.mark.parametrize(
    ("faults", "max_attempts", "succeeds"),
    [
        # metadata: one 500; one frame: throttled then 503. Standard mode retries both (3 attempts each).
        (
            [("GetImageSetMetadata", INTERNAL_ERROR), ("GetImageFrame", THROTTLED), ("GetImageFrame", UNAVAILABLE)],
            3,
            True,
        ),
        # Retries switched off (one attempt in all): the throttling reaches the caller.
        ([("GetImageFrame", THROTTLED)], 1, False),
    ],
)
def test_throttling_and_server_errors_are_retried_by_botocore(image_set, faults, max_attempts, succeeds):
    fake, arrays = image_set
    with serve([fake]) as server:
        for operation, (status, code) in faults:
            server.fail_next(operation, status, code)
        client = loopback_client(server.url, max_workers=1, max_attempts=max_attempts)
        if succeeds:
            loaded = load_image_set(client, fake.datastore_id, fake.image_set_id, max_workers=1)
            np.testing.assert_array_equal(loaded.volume, np.stack(arrays).astype(np.float32) - 1024)
            # Every fault cost one extra request: botocore retried, the connector did not loop itself.
            assert server.requests["GetImageSetMetadata"] == 2
            assert server.requests["GetImageFrame"] == len(arrays) + 2
        else:
            with pytest.raises(ClientError) as raised:
                load_image_set(client, fake.datastore_id, fake.image_set_id, max_workers=1)
            assert raised.value.response["Error"]["Code"] == "ThrottlingException"
            assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_client_config_uses_a_botocore_retry_mode_and_sizes_the_pool():
    from model_code.healthimaging import client_config

    config = client_config(max_workers=24, retry_mode="adaptive", max_attempts=5)
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 5}
    assert config.max_pool_connections == 24
    with pytest.raises(ValueError, match="retry_mode must be 'standard' or 'adaptive'"):
        client_config(retry_mode="legacy")
