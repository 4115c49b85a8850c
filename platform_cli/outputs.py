"""Stack outputs the CLI needs, read once per stack with CloudFormation DescribeStacks.

One table names every output a command uses, so a renamed output breaks one line here (and its test), and a
missing one fails with the stack and output named instead of a KeyError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from platform_cli.errors import CommandFailedError
from platform_cli.project import Deployment


@dataclass(frozen=True)
class OutputRef:
    stack_id: str  # the construct id in stacks/platform.py ("Data"), lower-cased into the stack name
    key: str  # the CfnOutput id
    hint: str = ""  # why a deployed stack may lack the output, when that can be a configuration choice


# stacks/data/stack.py
DICOM_INBOX_BUCKET = OutputRef("Data", "DicomInboxBucketName")
INFERENCE_BUCKET = OutputRef("Data", "InferenceBucketName")
# stacks/healthimaging/stack.py
DATASTORE_ID = OutputRef("Imaging", "DatastoreId")
IMPORT_ALARM_TOPIC = OutputRef("Imaging", "ImportAlarmTopicArn")
# stacks/serving/stack.py
ENDPOINT_NAME = OutputRef("Serving", "EndpointName")
# s3://bucket/prefix/ of the Triton model archives; the output exists only with the multi-model endpoint on.
MULTI_MODEL_PREFIX = OutputRef(
    "Serving",
    "MultiModelArchivePrefix",
    hint="the multi-model endpoint is off in this stage: set platform.serving.multiModelEnabled to true and deploy",
)
# stacks/training/stack.py
TRAINING_STATE_MACHINE = OutputRef("Training", "StateMachineArn")
MODEL_PACKAGE_GROUP = OutputRef("Training", "ModelPackageGroupName")

# stacks/inference/stack.py (the backfill workflow and the results index live there)
BACKFILL_STATE_MACHINE = OutputRef("Inference", "BackfillStateMachineArn")

ALL_OUTPUTS = (
    DICOM_INBOX_BUCKET,
    INFERENCE_BUCKET,
    DATASTORE_ID,
    IMPORT_ALARM_TOPIC,
    ENDPOINT_NAME,
    MULTI_MODEL_PREFIX,
    TRAINING_STATE_MACHINE,
    MODEL_PACKAGE_GROUP,
    BACKFILL_STATE_MACHINE,
)


class StackOutputs:
    """Outputs of one deployment's stacks; each stack is described at most once per command."""

    def __init__(self, cloudformation: Any, deployment: Deployment) -> None:
        self._cloudformation = cloudformation
        self._deployment = deployment
        self._cache: dict[str, dict[str, str]] = {}

    def get(self, ref: OutputRef) -> str:
        stack_name = self._deployment.stack_name(ref.stack_id)
        outputs = self._outputs(stack_name)
        if ref.key not in outputs:
            advice = ref.hint or (
                f"deploy the current {ref.stack_id} stack of stage {self._deployment.stage!r}, "
                "or check --project/--stage"
            )
            raise CommandFailedError(
                f"stack {stack_name} has no output {ref.key!r} (it has {sorted(outputs) or 'none'}): {advice}"
            )
        return outputs[ref.key]

    def _outputs(self, stack_name: str) -> dict[str, str]:
        if stack_name not in self._cache:
            try:
                stacks = self._cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
            except ClientError as error:
                # CloudFormation answers a missing stack with a generic ValidationError "... does not exist".
                if "does not exist" not in str(error):
                    raise
                region = self._cloudformation.meta.region_name
                raise CommandFailedError(
                    f"stack {stack_name} does not exist in {region}: deploy stage {self._deployment.stage!r} "
                    "(make deploy STAGE=...), or pass the right --project/--stage/--region"
                ) from error
            self._cache[stack_name] = {
                item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])
            }
        return self._cache[stack_name]
