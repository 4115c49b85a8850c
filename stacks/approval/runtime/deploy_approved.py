"""Deploy an approved model package: new model + endpoint config, a guarded UpdateEndpoint, a Triton archive.

EventBridge delivers "SageMaker Model Package State Change" for the platform's package group when a package
is Approved. The handler then:

1. reads the package (DescribeModelPackage): its serving image and ``model.tar.gz`` in the artifacts bucket;
2. copies the archive to ``<serving prefix>/v<version>/model.tar.gz`` (immutable, what the new model reads) and
   to the serving stack's ``modelDataKey`` (so a later ``cdk deploy`` of the serving stack serves the same model);
3. repackages it as a Triton model archive ``<multi-model prefix><name>-v<version>.tar.gz`` for the
   multi-model endpoint (``TargetModel``): the MONAI bundle (configs/ + models/) in the version folder;
4. creates a model and an endpoint config copied from the endpoint's current ones with the new model, and calls
   UpdateEndpoint with a canary, linear or rolling DeploymentConfig whose AutoRollbackConfiguration names the
   approval stack's alarms: SageMaker shifts traffic step by step and rolls back when an alarm fires. An endpoint
   scaled to zero is updated with the config's instance count, so the new model must pass /ping on a real
   instance before the update completes (a model that cannot load never takes traffic).

Names derive from the package version, so a retried event reuses what a first attempt created.
AWS errors raise: the asynchronous invocation retries, then the event lands in the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import boto3
from botocore.exceptions import ClientError

# Beside this module in the function's asset (stacks/components/function_shared: the settings helper and the
# platform's one S3-URI parser, model_code/core/s3_uri.py).
from function_settings import EnvironmentSettings
from s3_uri import parse_s3_uri

ENV_ENDPOINT_NAME = "ENDPOINT_NAME"
ENV_MODEL_PACKAGE_GROUP = "MODEL_PACKAGE_GROUP"
ENV_ARTIFACTS_BUCKET = "ARTIFACTS_BUCKET"
ENV_SERVING_MODEL_KEY = "SERVING_MODEL_KEY"
ENV_MULTI_MODEL_PREFIX = "MULTI_MODEL_PREFIX"
ENV_TRITON_MODEL_NAME = "TRITON_MODEL_NAME"
ENV_TRITON_CONFIG = "TRITON_CONFIG"
ENV_TRITON_MODEL_PY = "TRITON_MODEL_PY"
ENV_DEPLOYMENT_STRATEGY = "DEPLOYMENT_STRATEGY"
ENV_ROLLBACK_ALARMS = "ROLLBACK_ALARMS"

APPROVED = "Approved"
STRATEGIES = ("canary", "linear", "rolling")
# The stack renders config.pbtxt (model_code.triton_model.package) with this name; the handler puts the
# archive's model name in its place, so the template has one source.
TRITON_NAME_PLACEHOLDER = "MODEL_NAME_PLACEHOLDER"
TRITON_VERSION = "1"
# The MONAI bundle a training job's model.tar.gz holds at its top (model_code/core/bundle_layout.py): both configs,
# and the network as TorchScript and/or a state dict for network_def. The whole bundle goes to Triton.
BUNDLE_CONFIGS = ("configs/metadata.json", "configs/inference.json")
BUNDLE_NETWORKS = ("models/model.ts", "models/model.pt")
BUNDLE_FOLDERS = ("configs/", "models/")
ARCHIVE_SUFFIX = ".tar.gz"
SAGEMAKER_NAME_MAX = 63

# Traffic shifting: a quarter of the capacity first (canary) or per step (linear), each step baked for
# WAIT_SECONDS with the alarms watched; the old fleet stays until the new one has baked.
STEP_PERCENT = 25
WAIT_SECONDS = 600
TERMINATION_WAIT_SECONDS = 600
MAX_EXECUTION_SECONDS = 4 * 3600
ROLLING_BATCH_PERCENT = 50

logger = logging.getLogger()
logger.setLevel(logging.INFO)


class DeploymentError(RuntimeError):
    """The package or the endpoint cannot be deployed as they are; the message says what to do."""


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "approval"

    endpoint_name: str
    model_package_group: str
    artifacts_bucket: str
    serving_model_key: str
    multi_model_prefix: str
    triton_model_name: str
    triton_config: str
    triton_model_py: str
    deployment_strategy: str
    rollback_alarms: tuple[str, ...]

    @classmethod
    def parse(cls, values: dict[str, str]) -> dict[str, Any]:
        strategy = values["deployment_strategy"]
        if strategy not in STRATEGIES:
            raise RuntimeError(f"{ENV_DEPLOYMENT_STRATEGY} must be one of {list(STRATEGIES)}, got {strategy!r}")
        return {**values, "rollback_alarms": tuple(a for a in values["rollback_alarms"].split(",") if a)}


@dataclass(frozen=True)
class Package:
    arn: str
    version: int
    image: str
    model_data_url: str


def approved_package_arn(event: dict[str, Any], settings: Settings) -> str | None:
    """The package ARN when the event approves a package of our group; None for anything else."""
    detail = event.get("detail") or {}
    if detail.get("ModelPackageGroupName") != settings.model_package_group:
        return None
    if detail.get("ModelApprovalStatus") != APPROVED:
        return None
    arn = detail.get("ModelPackageArn")
    if not isinstance(arn, str) or not arn:
        raise DeploymentError(f"the event names no ModelPackageArn: {json.dumps(detail)[:500]}")
    return arn


def describe_package(sagemaker: Any, arn: str) -> Package:
    response = sagemaker.describe_model_package(ModelPackageName=arn)
    if response.get("ModelApprovalStatus") != APPROVED:
        # Approved, then rejected again before this ran: deploy nothing.
        raise DeploymentError(f"{arn} is {response.get('ModelApprovalStatus')}, no longer Approved: nothing deployed")
    containers = response.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1 or not containers[0].get("ModelDataUrl"):
        raise DeploymentError(
            f"{arn} must have exactly one inference container with a ModelDataUrl (the training workflow registers "
            f"one), found {len(containers)}: register the package again"
        )
    return Package(
        arn=arn,
        version=int(response["ModelPackageVersion"]),
        image=containers[0]["Image"],
        model_data_url=containers[0]["ModelDataUrl"],
    )


def model_location(package: Package) -> tuple[str, str]:
    """(bucket, key) of the package's model archive."""
    try:
        return parse_s3_uri(package.model_data_url, what=f"the ModelDataUrl of {package.arn}", require_key=True)
    except ValueError as error:
        raise DeploymentError(str(error)) from error


def versioned_key(settings: Settings, version: int) -> str:
    """``models/spleen/model.tar.gz`` -> ``models/spleen/v3/model.tar.gz``: under the prefix the endpoint reads."""
    prefix, _, name = settings.serving_model_key.rpartition("/")
    return f"{prefix}/v{version}/{name}"


def triton_archive_name(settings: Settings, version: int) -> str:
    return f"{settings.triton_model_name}-v{version}"


def resource_name(settings: Settings, version: int) -> str:
    """Model and endpoint-config name: deterministic per version (retries reuse it), 63 characters at most."""
    suffix = f"-v{version}"
    return f"{settings.endpoint_name[: SAGEMAKER_NAME_MAX - len(suffix)]}{suffix}"


def render_triton_config(settings: Settings, name: str) -> str:
    quoted = f'"{TRITON_NAME_PLACEHOLDER}"'
    if settings.triton_config.count(quoted) != 1:
        raise RuntimeError(f"{ENV_TRITON_CONFIG} must name the model {quoted} exactly once: redeploy the stack")
    return settings.triton_config.replace(quoted, f'"{name}"')


def _bundle_members(source: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The bundle's regular files under configs/ and models/, by normalised name; nothing outside them is read."""
    members: dict[str, tarfile.TarInfo] = {}
    for member in source.getmembers():
        name = Path(member.name).as_posix().removeprefix("./")
        if not member.isfile() or not name.startswith(BUNDLE_FOLDERS):
            continue
        parts = Path(name).parts
        if ".." in parts or Path(name).is_absolute():
            raise DeploymentError(f"the model archive has a member outside the bundle ({member.name!r}): reject it")
        members[name] = member
    return members


def build_triton_archive(model_archive: Path, out_path: Path, *, settings: Settings, name: str) -> Path:
    """``name/config.pbtxt``, ``name/1/model.py``, ``name/1/{configs,models}/...`` (the bundle, triton_package's
    layout: the Triton model reads the bundle from its version folder)."""
    staging = out_path.parent / "triton-staging"
    version_dir = staging / name / TRITON_VERSION
    version_dir.mkdir(parents=True)
    with tarfile.open(model_archive, "r:gz") as source:
        members = _bundle_members(source)
        missing = [member for member in BUNDLE_CONFIGS if member not in members]
        if not any(network in members for network in BUNDLE_NETWORKS):
            missing.append(" or ".join(BUNDLE_NETWORKS))
        if missing:
            raise DeploymentError(
                f"the model archive lacks {missing} at its top level (a MONAI bundle: configs/ and models/): "
                "the package was not made by the trainer; reject it"
            )
        # Only the bundle's regular files are read, each written under the version folder by its checked name.
        for member_name, member in sorted(members.items()):
            extracted = source.extractfile(member)
            assert extracted is not None  # a regular file always has content
            target = version_dir / member_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(extracted.read())
    (staging / name / "config.pbtxt").write_text(render_triton_config(settings, name))
    (version_dir / "model.py").write_text(settings.triton_model_py)
    with tarfile.open(out_path, "w:gz") as archive:
        archive.add(staging / name, arcname=name)
    return out_path


def publish_artifacts(s3: Any, settings: Settings, package: Package) -> dict[str, str]:
    """Copy the model where the endpoint reads it and publish its Triton archive; returns the S3 URLs."""
    bucket, key = model_location(package)
    if bucket != settings.artifacts_bucket:
        raise DeploymentError(
            f"{package.arn} points at s3://{bucket}/, outside the model-artifacts bucket {settings.artifacts_bucket} "
            "that the endpoints read: register a package trained by the training workflow"
        )
    source = {"Bucket": bucket, "Key": key}
    versioned = versioned_key(settings, package.version)
    for target in (versioned, settings.serving_model_key):
        s3.copy_object(Bucket=settings.artifacts_bucket, Key=target, CopySource=source)
    name = triton_archive_name(settings, package.version)
    triton_key = f"{settings.multi_model_prefix}{name}{ARCHIVE_SUFFIX}"
    with tempfile.TemporaryDirectory(prefix="deploy-approved-") as workdir:
        model_archive = Path(workdir) / "model.tar.gz"
        s3.download_file(bucket, key, str(model_archive))
        triton = build_triton_archive(model_archive, Path(workdir) / f"{name}{ARCHIVE_SUFFIX}", settings=settings,
                                      name=name)
        s3.upload_file(str(triton), settings.artifacts_bucket, triton_key)
    return {
        "modelDataUrl": f"s3://{settings.artifacts_bucket}/{versioned}",
        "tritonArchiveUrl": f"s3://{settings.artifacts_bucket}/{triton_key}",
        "targetModel": f"{name}{ARCHIVE_SUFFIX}",
    }


def deployment_config(strategy: str, alarms: tuple[str, ...]) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: guarded traffic shifting, rolled back when any alarm fires."""
    rollback = {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm} for alarm in alarms]}}
    if strategy == "rolling":
        return {
            "RollingUpdatePolicy": {
                "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": ROLLING_BATCH_PERCENT},
                "WaitIntervalInSeconds": WAIT_SECONDS,
                "MaximumExecutionTimeoutInSeconds": MAX_EXECUTION_SECONDS,
                "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 100},
            },
            **rollback,
        }
    step = {"Type": "CAPACITY_PERCENT", "Value": STEP_PERCENT}
    routing: dict[str, Any] = {"Type": strategy.upper(), "WaitIntervalInSeconds": WAIT_SECONDS}
    routing["CanarySize" if strategy == "canary" else "LinearStepSize"] = step
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": TERMINATION_WAIT_SECONDS,
            "MaximumExecutionTimeoutInSeconds": MAX_EXECUTION_SECONDS,
        },
        **rollback,
    }


def _create_once(call: Any, **kwargs: Any) -> None:
    """Create a SageMaker resource, accepting the one a previous attempt of this event created."""
    try:
        call(**kwargs)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if error.response.get("Error", {}).get("Code") != "ValidationException" or "already exist" not in message:
            raise


def scaled_to_zero(endpoint: dict[str, Any]) -> set[str]:
    """The variants of a DescribeEndpoint answer that run no instance now (the async endpoint scales to zero)."""
    return {
        variant["VariantName"]
        for variant in endpoint.get("ProductionVariants", [])
        if variant.get("CurrentInstanceCount") == 0
    }


def update_endpoint(sagemaker: Any, settings: Settings, package: Package, model_data_url: str) -> dict[str, str]:
    endpoint = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
    if endpoint["EndpointStatus"] != "InService":
        raise DeploymentError(
            f"endpoint {settings.endpoint_name} is {endpoint['EndpointStatus']}, not InService: it cannot take an "
            "update now; the event is retried and then kept in the dead-letter queue for a redrive"
        )
    current = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = current["ProductionVariants"]
    idle = scaled_to_zero(endpoint)
    model = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
    name = resource_name(settings, package.version)

    container = {k: v for k, v in model["PrimaryContainer"].items() if k in ("Environment", "Mode")}
    model_request: dict[str, Any] = {
        "ModelName": name,
        "PrimaryContainer": {**container, "Image": package.image, "ModelDataUrl": model_data_url},
        # Same role, network and isolation as the model the endpoint runs now: only the weights change.
        "ExecutionRoleArn": model["ExecutionRoleArn"],
        "EnableNetworkIsolation": model.get("EnableNetworkIsolation", False),
    }
    if model.get("VpcConfig"):
        model_request["VpcConfig"] = model["VpcConfig"]
    _create_once(sagemaker.create_model, **model_request)

    config_request: dict[str, Any] = {
        "EndpointConfigName": name,
        # Same variant names (deployment guardrails require them), instance types and counts (at least one:
        # SageMaker's minimum for InitialInstanceCount).
        "ProductionVariants": [{**variant, "ModelName": name} for variant in variants],
    }
    for key in ("AsyncInferenceConfig", "KmsKeyId", "DataCaptureConfig"):
        if current.get(key):
            config_request[key] = current[key]
    _create_once(sagemaker.create_endpoint_config, **config_request)

    sagemaker.update_endpoint(
        EndpointName=settings.endpoint_name,
        EndpointConfigName=name,
        # Keep the instance count autoscaling has set instead of the config's initial count, unless a variant is
        # at zero: a fleet of zero instances runs no canary and no health check, and would switch to a model no
        # instance has loaded; with the config's count (>= 1) the new fleet must answer /ping first. Autoscaling
        # takes the idle endpoint back to zero after its scale-in cooldown.
        RetainAllVariantProperties=not idle,
        DeploymentConfig=deployment_config(settings.deployment_strategy, settings.rollback_alarms),
    )
    return {"model": name, "endpointConfig": name, "previousEndpointConfig": endpoint["EndpointConfigName"],
            "scaledToZero": sorted(idle)}


def handle(event: dict[str, Any], *, sagemaker: Any, s3: Any, settings: Settings) -> dict[str, Any]:
    arn = approved_package_arn(event, settings)
    if arn is None:
        return {"status": "SKIPPED", "reason": "not an approval of this platform's model package group"}
    package = describe_package(sagemaker, arn)
    published = publish_artifacts(s3, settings, package)
    deployed = update_endpoint(sagemaker, settings, package, published["modelDataUrl"])
    result = {"status": "UPDATING", "modelPackageArn": arn, "endpoint": settings.endpoint_name,
              "strategy": settings.deployment_strategy, **published, **deployed}
    logger.info(json.dumps(result))
    return result


@cache
def _clients() -> tuple[Any, Any]:
    # Created on first use, never at import: tests and cold starts without credentials import this module.
    return boto3.client("sagemaker"), boto3.client("s3")


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sagemaker, s3 = _clients()
    return handle(event, sagemaker=sagemaker, s3=s3, settings=_settings())
