"""Fixtures for the HealthImaging connector: real CT slices and Stubber clients (builders: hi_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pydicom
import pytest
from botocore.stub import Stubber

from testkit.healthimaging import ct_series


@pytest.fixture(scope="session")
def ct_slices() -> tuple[list[pydicom.Dataset], list[np.ndarray]]:
    """Four real 512x512 CT slices (pydicom's J2K_pixelrep_mismatch.dcm, shifted), ascending."""
    return ct_series(4)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    """A medical-imaging client wrapped in a Stubber that must be fully consumed by the test."""
    client = boto3.client(
        "medical-imaging", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
