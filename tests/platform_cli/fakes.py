"""A deployed platform for the CLI tests: stacks created through moto's CloudFormation (their outputs are what
the CLI reads), real S3/SageMaker/Step Functions from moto, HealthImaging through botocore's Stubber, and a fake
clock whose ``sleep`` lets a test play the platform's part (a job finishing, an endpoint writing its output).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from platform_cli.main import main
from platform_cli.project import Deployment
from platform_cli.runtime import Runtime
from testkit.aws_account import FakeClock

REGION = "us-east-1"
PROJECT = "monai-imaging"  # cdk.json's platform.defaults.projectName: the tests run from the repository
REPO_ROOT = Path(__file__).resolve().parents[2]
DATASTORE_ID = "d" * 32
ENDPOINT = f"{PROJECT}-dev-spleen-async"
IMPORT_ALARM_TOPIC = f"arn:aws:sns:{REGION}:123456789012:{PROJECT}-dev-import-alarm"


@dataclass
class Platform:
    session: boto3.session.Session
    s3: Any
    medical_imaging: Any  # wrapped by ``stubber``
    stubber: Stubber
    clock: FakeClock
    outputs: dict[str, dict[str, str]]

    def deploy(self, stack_id: str, outputs: dict[str, Any], *, resources: dict[str, Any] | None = None) -> None:
        """Create ``<project>-dev-<stack>`` with these outputs (values may be intrinsics over ``resources``)."""
        template = {
            # A stack needs a resource; a topic is the cheapest one moto's CloudFormation creates.
            "Resources": resources or {"Placeholder": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        cloudformation = self.session.client("cloudformation")
        cloudformation.create_stack(StackName=f"{PROJECT}-dev-{stack_id.lower()}", TemplateBody=json.dumps(template))
        described = cloudformation.describe_stacks(StackName=f"{PROJECT}-dev-{stack_id.lower()}")["Stacks"][0]
        self.outputs[stack_id] = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}

    def runtime_factory(self, deployment: Deployment, args: argparse.Namespace) -> Runtime:
        return Runtime(
            deployment=deployment,
            session=self.session,
            client_overrides={"medical-imaging": self.medical_imaging},
            sleep=self.clock.sleep,
            clock=self.clock.clock,
        )

    def run(self, *argv: str) -> int:
        return main(list(argv), runtime_factory=self.runtime_factory, cwd=REPO_ROOT)
