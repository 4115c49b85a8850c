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
    """What the trainer writes to SM_MODEL_DIR: a MONAI bundle with real configs (the zoo's spleen layout, as
    model_code.segmentation.bundle writes them) and stand-in network bytes (the Lambda never loads them)."""
    from model_code.core.spleen import SPLEEN_UNET_ARGS, spleen_metadata
    from model_code.segmentation.bundle import zoo_inference_config, zoo_metadata

    description = spleen_metadata()
    inference = zoo_inference_config(description, network_def={"_target_": "UNet", **SPLEEN_UNET_ARGS})
    return {
        "configs/metadata.json": json.dumps(zoo_metadata(description)).encode(),
        "configs/inference.json": json.dumps(inference).encode(),
        "models/model.ts": b"torchscript-bytes",
        "models/model.pt": b"state-dict",
    }
