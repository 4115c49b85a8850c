"""Real S3 from moto; SageMaker through botocore's Stubber, which checks every request against the service model
(moto's SageMaker lacks DescribeModelPackage and UpdateEndpoint's DeploymentConfig)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.stacks.fake_aws import REGION, mocked_aws, stubbed_client

ARTIFACTS = "model-artifacts-bucket"


@dataclass
class Aws:
    s3: Any
    sagemaker: Any
    stubber: Stubber

    def read(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with mocked_aws(monkeypatch):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=ARTIFACTS)
        # Every SageMaker call the test expected is made, and no other.
        with stubbed_client("sagemaker") as (sagemaker, stubber):
            yield Aws(s3, sagemaker, stubber)


def model_archive(members: dict[str, bytes]) -> bytes:
    """A training job's model.tar.gz: the model directory's files at the archive's top level."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def contract_members() -> dict[str, bytes]:
    """What the trainer writes to SM_MODEL_DIR: real contract metadata, stand-in network bytes."""
    from model_code.core.spleen import spleen_metadata  # the core: numpy, no torch

    return {
        "model.ts": b"torchscript-bytes",
        "metadata.json": json.dumps(spleen_metadata().to_json()).encode(),
        "model.pt": b"state-dict",
    }
