"""Fixtures: a platform deployed in moto (see fakes.py), one per test, and its stacks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.platform_cli.fakes import DATASTORE_ID, ENDPOINT, IMPORT_ALARM_TOPIC, REGION, FakeClock, Platform


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(), warnings.catch_warnings():
        # moto's CloudFormation warns about resource types it does not model; the outputs are what matter here.
        warnings.simplefilter("ignore", UserWarning)
        session = boto3.session.Session(region_name=REGION)
        medical_imaging = session.client("medical-imaging")
        with Stubber(medical_imaging) as stubber:
            yield Platform(session, session.client("s3"), medical_imaging, stubber, FakeClock(), {})
            stubber.assert_no_pending_responses()


@pytest.fixture
def data_stack(platform: Platform) -> dict[str, str]:
    """The Data stack's buckets, created by moto's CloudFormation; outputs are their generated names."""
    names = ("DicomInbox", "ImportOutput", "Inference", "ModelArtifacts")
    platform.deploy(
        "Data",
        {f"{name}BucketName": {"Ref": name} for name in names},
        resources={name: {"Type": "AWS::S3::Bucket"} for name in names},
    )
    return platform.outputs["Data"]


@pytest.fixture
def imaging_stack(platform: Platform) -> dict[str, str]:
    platform.deploy("Imaging", {"DatastoreId": DATASTORE_ID, "ImportAlarmTopicArn": IMPORT_ALARM_TOPIC})
    return platform.outputs["Imaging"]


@pytest.fixture
def serving_stack(platform: Platform, data_stack: dict[str, str]) -> dict[str, str]:
    platform.deploy(
        "Serving",
        {"EndpointName": ENDPOINT, "MultiModelArchivePrefix": f"s3://{data_stack['ModelArtifactsBucketName']}/multi-model/"},
    )
    return platform.outputs["Serving"]
