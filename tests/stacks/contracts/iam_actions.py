"""A recorded AWS call (service, operation, parameters in deployed names) -> the IAM requests it makes: (action, every
resource it is authorized against, request context), for its caller and for the roles AWS then acts with.

The rules, each with its authority:

1. Action: ``<signing name>:<Operation>`` (botocore's signingName is the IAM prefix: sagemaker-runtime signs as
   ``sagemaker``), except the operations of OPERATION_ACTIONS (S3's list, head and multipart calls). The action must
   exist in the Service Authorization Reference (service_authorization.py).
2. Resources: one ARN per resource type the reference marks required for the action (an action marked
   ``endpoint*`` and ``endpoint-config*`` is authorized against both), from the reference's ARN format with its
   variables filled from the call's parameters (ARN_VARIABLES; a derived request names the variables itself). An action without a required type is judged on
   its optional types that the parameters name, else on ``*``.
3. Derived requests of the caller:
   * ``iam:PassRole`` on each role a call hands to a service (ROLE_PARAMETERS), with ``iam:PassedToService``;
   * SSE-KMS buckets (S3 User Guide, "Permissions for SSE-KMS"): reads need ``kms:Decrypt``, writes
     ``kms:GenerateDataKey`` on the bucket's key, a multipart upload both;
   * KMS-encrypted topics and queues (SNS "Key management", SQS "Key management"): a publisher or sender needs
     ``kms:GenerateDataKey`` and ``kms:Decrypt`` on the key;
   * a GetObject/HeadObject answered NoSuchKey that the code relies on needs ``s3:ListBucket`` (GetObject API
     reference: without it S3 answers 403 AccessDenied instead of 404);
   * UpdateEndpoint to a config with a volume ``KmsKeyId`` (SageMaker API permissions reference: CreateEndpoint
     needs ``kms:CreateGrant`` when its config names one; an update provisions the new fleet the same way).
What AWS then does with other roles (the endpoint's, the import role) is tests/stacks/contracts/service_side.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from tests.stacks.contracts.resolve import ACCOUNT, PARTITION
from tests.stacks.contracts.service_authorization import arn_variables, known, resource_types
from tests.stacks.contracts.world import World

SERVICE_PRINCIPALS = {"sagemaker": "sagemaker.amazonaws.com", "medical-imaging": "medical-imaging.amazonaws.com"}


@dataclass(frozen=True)
class Requirement:
    action: str
    resources: tuple[str, ...]  # every one must be allowed
    context: tuple[tuple[str, str], ...] = ()
    reason: str = "the call itself"
    # One more resource, named in any of these forms: an action whose resource types are all optional is allowed
    # on any of them (Service Authorization Reference); a log group is named with and without ":*".
    alternatives: tuple[str, ...] = ()


# Operations whose IAM action is not <prefix>:<Operation> (S3 User Guide, "Required permissions for S3 API
# operations").
OPERATION_ACTIONS: dict[tuple[str, str], str] = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPartCopy"): "s3:PutObject",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "CopyObject"): "s3:PutObject",  # and s3:GetObject on the source (iam_actions._s3)
    # CloudWatch signs as "monitoring"; its IAM prefix is cloudwatch (Service Authorization Reference).
    ("monitoring", "PutMetricData"): "cloudwatch:PutMetricData",
    ("monitoring", "GetMetricData"): "cloudwatch:GetMetricData",
    ("monitoring", "GetMetricStatistics"): "cloudwatch:GetMetricStatistics",
}
S3_READS = {"GetObject", "HeadObject"}
S3_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def _sagemaker_name(key: str) -> Callable[[dict[str, Any]], str | None]:
    # SageMaker writes resource names in lower case in its ARNs.
    return lambda p: str(p[key]).lower() if key in p else None


def _model_package(params: dict[str, Any]) -> str | None:
    name = params.get("ModelPackageName") or params.get("ModelPackageArn")
    return None if name is None else str(name).split(":model-package/")[-1].lower()


# (IAM prefix, ARN variable) -> its value from a call's parameters.
ARN_VARIABLES: dict[tuple[str, str], Callable[[dict[str, Any]], str | None]] = {
    ("s3", "BucketName"): lambda p: p.get("Bucket"),
    ("s3", "ObjectName"): lambda p: p.get("Key"),
    ("medical-imaging", "DatastoreId"): lambda p: p.get("datastoreId"),
    ("medical-imaging", "ImageSetId"): lambda p: p.get("imageSetId"),
    ("sagemaker", "EndpointName"): _sagemaker_name("EndpointName"),
    ("sagemaker", "EndpointConfigName"): _sagemaker_name("EndpointConfigName"),
    ("sagemaker", "ModelName"): _sagemaker_name("ModelName"),
    ("sagemaker", "TrainingJobName"): _sagemaker_name("TrainingJobName"),
    ("sagemaker", "ModelPackageGroupName"): _sagemaker_name("ModelPackageGroupName"),
    ("sagemaker", "ModelPackageName"): _model_package,
    ("sns", "TopicName"): lambda p: str(p["TopicArn"]).rsplit(":", 1)[-1] if "TopicArn" in p else None,
    ("sqs", "QueueName"): lambda p: str(p["QueueUrl"]).rsplit("/", 1)[-1] if "QueueUrl" in p else None,
    ("ssm", "ParameterNameWithoutLeadingSlash"): lambda p: str(p["Name"]).lstrip("/") if "Name" in p else None,
    ("kms", "KeyId"): lambda p: p.get("KeyId"),
}
# Parameters that hand a role to the service called.
ROLE_PARAMETERS = ("ExecutionRoleArn", "RoleArn", "dataAccessRoleArn")


def _fill(arn_format: str, prefix: str, params: dict[str, Any], world: World) -> str | None:
    values = {"Partition": PARTITION, "Region": params.get("Region", world.region),
              "Account": params.get("Account", ACCOUNT)}
    arn = arn_format
    for variable in arn_variables(arn_format):
        if variable not in values:
            # A call's parameters through ARN_VARIABLES; a derived request names the variable itself.
            rule = ARN_VARIABLES.get((prefix, variable))
            value = rule(params) if rule else None
            values[variable] = params.get(variable) if value is None else value
        if values[variable] is None:
            return None
        arn = arn.replace("${" + variable + "}", str(values[variable]))
    return arn


def request(action: str, params: dict[str, Any], world: World, *, reason: str = "the call itself",
            context: tuple[tuple[str, str], ...] = ()) -> Requirement:
    """The request ``action`` makes for a call with ``params`` (rule 2): every required resource type's ARN, or any
    of the optional ones the parameters name, or ``*``."""
    prefix = action.split(":", 1)[0]
    required: list[str] = []
    optional: list[str] = []
    for resource_type in resource_types(action):
        arn = _fill(resource_type.arn_format, prefix, params, world)
        if arn is None and resource_type.required:
            raise KeyError(
                f"{action} is authorized against its {resource_type.name} ({resource_type.arn_format}), but the "
                f"parameters {sorted(params)} fill no ARN_VARIABLES rule for it: add one in "
                "tests/stacks/contracts/iam_actions.py"
            )
        if arn is not None:
            (required if resource_type.required else optional).append(arn)
    if required:
        alternatives: tuple[str, ...] = ()
        log_group = next((arn for arn in required if ":log-group:" in arn and ":log-stream:" not in arn), None)
        if log_group is not None:
            # CloudWatch Logs names a group as the reference's format does and with ":*" (CloudFormation's Arn
            # attribute, DescribeLogGroups' arn): policies write either.
            required.remove(log_group)
            alternatives = (log_group, f"{log_group}:*")
        return Requirement(action, tuple(required), context, reason, alternatives)
    if optional:
        return Requirement(action, (), context, reason, tuple(optional))
    return Requirement(action, ("*",), context, reason)


def action_of(call: dict[str, Any]) -> str:
    signing, operation = call["signing_name"], call["operation"]
    action = OPERATION_ACTIONS.get((signing, operation), f"{signing}:{operation}")
    if not known(action):
        raise KeyError(f"{signing} {operation} has no IAM action {action} in the Service Authorization Reference: "
                       "add its action to OPERATION_ACTIONS in tests/stacks/contracts/iam_actions.py")
    return action


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _s3(call: dict[str, Any], action: str, world: World) -> list[Requirement]:
    params, operation = call["params"], call["operation"]
    bucket = params.get("Bucket", "")
    out = []
    if operation == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, str):
            source_bucket, _, source_key = source.lstrip("/").partition("/")
        else:
            source_bucket, source_key = source["Bucket"], source["Key"]
        source_params = {"Bucket": source_bucket, "Key": source_key}
        out.append(request("s3:GetObject", source_params, world, reason="CopyObject reads"))
        out.append(request("s3:PutObject", params, world, reason="CopyObject writes"))
        out += bucket_key(source_bucket, "kms:Decrypt", world, "the copy's source is SSE-KMS")
        out += bucket_key(bucket, "kms:GenerateDataKey", world, "the copy's target is SSE-KMS")
        return out
    context = (("s3:prefix", str(params["Prefix"])),) if action == "s3:ListBucket" and "Prefix" in params else ()
    if operation == "DeleteObjects":
        for item in params.get("Delete", {}).get("Objects", []):
            out.append(request(action, {"Bucket": bucket, "Key": item["Key"]}, world))
        return out
    out.append(request(action, params, world, context=context))
    if operation in S3_READS:
        out += bucket_key(bucket, "kms:Decrypt", world, "reads an SSE-KMS object")
        if call["outcome"] in ("NoSuchKey", "404", "NotFound"):
            out.append(request("s3:ListBucket", {"Bucket": bucket}, world,
                               reason=f"{operation} answered {call['outcome']}: without s3:ListBucket S3 answers "
                                      "403 AccessDenied instead"))
    if operation in S3_WRITES:
        out += bucket_key(bucket, "kms:GenerateDataKey", world, "writes an SSE-KMS object")
        if operation == "CreateMultipartUpload":
            out += bucket_key(bucket, "kms:Decrypt", world, "an SSE-KMS multipart upload decrypts its data key")
    if params.get("Tagging"):
        out.append(request("s3:PutObjectTagging", params, world, reason="an object written with tags"))
    return out


def bucket_key(bucket: str, action: str, world: World, reason: str) -> list[Requirement]:
    key = world.bucket_keys.get(bucket)
    return [Requirement(action, (key,), reason=reason)] if key else []


def encrypted_send(key: str | None, what: str) -> list[Requirement]:
    if key is None:
        return []
    return [Requirement(action, (key,), reason=f"sends to a KMS-encrypted {what}")
            for action in ("kms:GenerateDataKey", "kms:Decrypt")]


def caller_requirements(call: dict[str, Any], world: World) -> list[Requirement]:
    """What the calling role needs for one call (rules 1-3)."""
    action = action_of(call)
    params = call["params"]
    if call["signing_name"] == "s3":
        return _s3(call, action, world)
    # PutMetricData is authorized against the namespace it writes (CloudWatch User Guide, "cloudwatch:namespace").
    context = (("cloudwatch:namespace", str(params["Namespace"])),) if action == "cloudwatch:PutMetricData" else ()
    out = [request(action, params, world, context=context)]
    service = SERVICE_PRINCIPALS.get(call["signing_name"])
    for name in ROLE_PARAMETERS:
        if name in params and service:
            out.append(Requirement("iam:PassRole", (str(params[name]),), (("iam:PassedToService", service),),
                                   reason=f"{call['operation']} hands {name} to {service}"))
    if action == "sns:Publish":
        out += encrypted_send(world.topic_keys.get(params.get("TopicArn", "")), "topic")
    if action in ("sqs:SendMessage", "sqs:SendMessageBatch"):
        out += encrypted_send(world.queue_keys.get(world.queue_arns.get(params.get("QueueUrl", ""), "")), "queue")
    if action == "sagemaker:UpdateEndpoint":
        endpoint = world.endpoints.get(params.get("EndpointName", ""))
        if endpoint is not None and endpoint.config.get("KmsKeyId"):
            out.append(Requirement("kms:CreateGrant", (world.key_arn(endpoint.config["KmsKeyId"]),),
                                   (("kms:GrantIsForAWSResource", "true"),),
                                   reason="the new config copies the endpoint's volume KmsKeyId (SageMaker API "
                                          "permissions reference: kms:CreateGrant for a config with a KmsKeyId)"))
    return out


def describe(requirement: Requirement) -> str:
    context = f" {json.dumps(dict(requirement.context))}" if requirement.context else ""
    return f"{requirement.action} on {', '.join(requirement.resources)}{context} ({requirement.reason})"
