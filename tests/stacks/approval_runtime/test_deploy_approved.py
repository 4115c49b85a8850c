"""deploy_approved: an approval of our group deploys the package once, guarded; anything else deploys nothing."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY

from model_code.triton_model.package import DEFAULT_MODEL_NAME, MODEL_PY, package_triton_model, render_config
from stacks.approval.runtime import deploy_approved as runtime
from tests.stacks.approval_runtime.conftest import ARTIFACTS, Aws, contract_members, model_archive

ENDPOINT = "monai-imaging-dev-spleen-async"
GROUP = "monai-imaging-dev-spleen"
PACKAGE_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/3"
TRAINED_KEY = "training/output/monai-imaging-dev-train-abc/output/model.tar.gz"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/monai-imaging-dev/pytorch-inference:abc123"
ROLE = "arn:aws:iam::123456789012:role/serving-endpoint-role"
CURRENT_CONFIG = "EndpointConfig-Abc123"
CURRENT_MODEL = "Model-Abc123"
ALARMS = (f"{ENDPOINT}-deploy-invocationfailures", f"{ENDPOINT}-deploy-modelerrors")


def settings(strategy: str = "canary") -> runtime.Settings:
    return runtime.Settings(
        endpoint_name=ENDPOINT,
        model_package_group=GROUP,
        artifacts_bucket=ARTIFACTS,
        serving_model_key="models/spleen/model.tar.gz",
        multi_model_prefix="models/triton/",
        triton_model_name=DEFAULT_MODEL_NAME,
        triton_config=render_config(runtime.TRITON_NAME_PLACEHOLDER),
        triton_model_py=MODEL_PY,
        deployment_strategy=strategy,
        rollback_alarms=ALARMS,
    )


def event(status: str = "Approved", group: str = GROUP) -> dict[str, Any]:
    """A "SageMaker Model Package State Change" event as EventBridge delivers it."""
    return {
        "version": "0",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "detail": {"ModelPackageGroupName": group, "ModelPackageArn": PACKAGE_ARN, "ModelApprovalStatus": status},
    }


def expect_package(aws: Aws, *, status: str = "Approved", model_url: str = f"s3://{ARTIFACTS}/{TRAINED_KEY}") -> None:
    aws.stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": GROUP,
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": 3,
            "ModelPackageArn": PACKAGE_ARN,
            "CreationTime": "2026-11-21T12:00:00Z",
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": [{"Image": IMAGE, "ModelDataUrl": model_url}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        },
        {"ModelPackageName": PACKAGE_ARN},
    )


ASYNC_CONFIG = {
    "OutputConfig": {
        "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/data",
        "S3OutputPath": "s3://inference/output/",
        "S3FailurePath": "s3://inference/failures/",
        "NotificationConfig": {"SuccessTopic": "arn:aws:sns:us-east-1:123456789012:ok",
                               "ErrorTopic": "arn:aws:sns:us-east-1:123456789012:failed"},
    },
    "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
}
VARIANT = {"VariantName": "AllTraffic", "ModelName": CURRENT_MODEL, "InitialInstanceCount": 1,
           "InstanceType": "ml.g4dn.xlarge", "InitialVariantWeight": 1.0}
VPC = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}


def expect_current_endpoint(aws: Aws, *, status: str = "InService") -> None:
    aws.stubber.add_response(
        "describe_endpoint",
        {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
         "EndpointConfigName": CURRENT_CONFIG, "EndpointStatus": status,
         "CreationTime": "2026-11-20T00:00:00Z", "LastModifiedTime": "2026-11-20T00:00:00Z"},
        {"EndpointName": ENDPOINT},
    )


def expect_current_config_and_model(aws: Aws) -> None:
    aws.stubber.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": CURRENT_CONFIG,
         "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{CURRENT_CONFIG.lower()}",
         "ProductionVariants": [VARIANT], "AsyncInferenceConfig": ASYNC_CONFIG,
         "CreationTime": "2026-11-20T00:00:00Z"},
        {"EndpointConfigName": CURRENT_CONFIG},
    )
    aws.stubber.add_response(
        "describe_model",
        {"ModelName": CURRENT_MODEL, "ExecutionRoleArn": ROLE, "VpcConfig": VPC, "EnableNetworkIsolation": False,
         "PrimaryContainer": {"Image": "old-image", "ModelDataUrl": f"s3://{ARTIFACTS}/models/spleen/model.tar.gz",
                              "Environment": {"LOG_LEVEL": "INFO"}},
         "ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{CURRENT_MODEL.lower()}",
         "CreationTime": "2026-11-20T00:00:00Z"},
        {"ModelName": CURRENT_MODEL},
    )


def expect_creates(aws: Aws, *, model_error: str | None = None) -> None:
    name = f"{ENDPOINT}-v3"
    model_request = {
        "ModelName": name,
        "PrimaryContainer": {"Environment": {"LOG_LEVEL": "INFO"}, "Image": IMAGE,
                             "ModelDataUrl": f"s3://{ARTIFACTS}/models/spleen/v3/model.tar.gz"},
        "ExecutionRoleArn": ROLE,
        "EnableNetworkIsolation": False,
        "VpcConfig": VPC,
    }
    if model_error:
        aws.stubber.add_client_error("create_model", "ValidationException", model_error, 400,
                                     expected_params=model_request)
    else:
        aws.stubber.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:::model/{name}"}, model_request)
    aws.stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:::endpoint-config/{name}"},
        {"EndpointConfigName": name, "ProductionVariants": [{**VARIANT, "ModelName": name}],
         "AsyncInferenceConfig": ASYNC_CONFIG},
    )


def expect_update(aws: Aws, deployment_config: Any = ANY) -> None:
    aws.stubber.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"},
        {"EndpointName": ENDPOINT, "EndpointConfigName": f"{ENDPOINT}-v3", "RetainAllVariantProperties": True,
         "DeploymentConfig": deployment_config},
    )


def upload_trained(aws: Aws, members: dict[str, bytes] | None = None) -> bytes:
    body = model_archive(members or contract_members())
    aws.s3.put_object(Bucket=ARTIFACTS, Key=TRAINED_KEY, Body=body)
    return body


ROLLBACK = {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in ALARMS]}}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # Canary: a quarter of the capacity first, baked with the alarms watched, then the rest.
        ("canary", {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
            "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 14400}, **ROLLBACK}),
        # Linear: four equal steps.
        ("linear", {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "LINEAR", "WaitIntervalInSeconds": 600,
                                            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
            "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 14400}, **ROLLBACK}),
        # Rolling: half the instances at a time, all of them back at once on rollback.
        ("rolling", {"RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 14400,
            "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 100}}, **ROLLBACK}),
    ],
)
def test_an_approval_updates_the_endpoint_with_the_guarded_deployment(
    aws: Aws, strategy: str, expected: dict[str, Any]
) -> None:
    trained = upload_trained(aws)
    expect_package(aws)
    expect_current_endpoint(aws)
    expect_current_config_and_model(aws)
    expect_creates(aws)
    # The Stubber validates DeploymentConfig against UpdateEndpoint's service model, then these exact values.
    expect_update(aws, expected)
    result = runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings(strategy))
    assert result["status"] == "UPDATING"
    assert result["previousEndpointConfig"] == CURRENT_CONFIG
    # The model the new config serves is an immutable copy; the serving key follows the latest approval.
    assert aws.read("models/spleen/v3/model.tar.gz") == trained
    assert aws.read("models/spleen/model.tar.gz") == trained


def test_the_triton_archive_matches_what_triton_package_builds(aws: Aws, tmp_path: Path) -> None:
    upload_trained(aws)
    expect_package(aws)
    expect_current_endpoint(aws)
    expect_current_config_and_model(aws)
    expect_creates(aws)
    expect_update(aws)
    result = runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings())
    name = f"{DEFAULT_MODEL_NAME}-v3"
    assert result["targetModel"] == f"{name}.tar.gz"
    published = aws.read(f"models/triton/{name}.tar.gz")

    def contents(archive: bytes) -> dict[str, bytes]:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]

    # The reference: model_code's packager over the same bundle (the config, the backend's model.py, the bundle in
    # the version folder, where the Triton model reads it).
    bundle = tmp_path / "bundle"
    for member, data in contract_members().items():
        (bundle / member).parent.mkdir(parents=True, exist_ok=True)
        (bundle / member).write_bytes(data)
    reference = package_triton_model(bundle, tmp_path / f"{name}.tar.gz").read_bytes()
    assert contents(published) == contents(reference)
    assert contents(published)[f"{name}/config.pbtxt"].decode() == render_config(name)
    assert f"{name}/1/configs/inference.json" in contents(published)


def test_the_published_bundle_loads_as_the_triton_model_loads_it(aws: Aws, tmp_path: Path) -> None:
    # A real (threshold) bundle through the handler, then read from the unpacked version folder with the
    # serving side's reader: what the Triton model's initialize does on the endpoint.
    from model_code.segmentation.bundle import ModelBundle
    from testkit.models import save_threshold_model

    bundle = save_threshold_model(tmp_path / "trained")
    members = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in sorted(bundle.rglob("*"))
               if p.is_file() and p.relative_to(bundle).parts[0] in ("configs", "models")}
    upload_trained(aws, members)
    expect_package(aws)
    expect_current_endpoint(aws)
    expect_current_config_and_model(aws)
    expect_creates(aws)
    expect_update(aws)
    runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings())
    name = f"{DEFAULT_MODEL_NAME}-v3"
    archive = tmp_path / f"{name}.tar.gz"
    archive.write_bytes(aws.read(f"models/triton/{name}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "repository", filter="data")
    loaded = ModelBundle.load(tmp_path / "repository" / name / "1")
    assert loaded.description == ModelBundle.load(bundle).description


@pytest.mark.parametrize(
    "incoming",
    [
        event(status="PendingManualApproval"),  # registered, not yet approved
        event(status="Rejected"),  # a reviewer rejected it
        event(group="someone-elses-group"),  # another team's package group
        {"detail": {}},  # an event without detail fields
    ],
)
def test_anything_but_an_approval_of_our_group_deploys_nothing(aws: Aws, incoming: dict[str, Any]) -> None:
    upload_trained(aws)
    result = runtime.handle(incoming, sagemaker=aws.sagemaker, s3=aws.s3, settings=settings())
    assert result["status"] == "SKIPPED"
    listed = aws.s3.list_objects_v2(Bucket=ARTIFACTS)["Contents"]
    assert [item["Key"] for item in listed] == [TRAINED_KEY]


def test_a_retried_event_reuses_the_model_the_first_attempt_created(aws: Aws) -> None:
    upload_trained(aws)
    expect_package(aws)
    expect_current_endpoint(aws)
    expect_current_config_and_model(aws)
    expect_creates(aws, model_error=f"Cannot create already existing model \"arn:...:model/{ENDPOINT}-v3\".")
    expect_update(aws)
    assert runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings())["status"] == "UPDATING"


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        # The endpoint is mid-update (an earlier deployment still shifting traffic).
        ("updating", "is Updating, not InService"),
        # The package was rejected again between the event and this call.
        ("rejected", "is Rejected, no longer Approved: nothing deployed"),
        # A hand-registered package pointing at some other bucket.
        ("foreign", "outside the model-artifacts bucket model-artifacts-bucket"),
        # An archive that is not a MONAI bundle (configs only, no network).
        ("no-contract", "the model archive lacks ['configs/inference.json', 'models/model.ts or models/model.pt']"),
        # A member that would land outside the version folder.
        ("escape", "has a member outside the bundle"),
    ],
)
def test_undeployable_packages_raise_with_what_to_do(aws: Aws, arrange: str, message: str) -> None:
    members = {"no-contract": {"configs/metadata.json": b"{}"},
               "escape": {**contract_members(), "configs/../../x": b"x"}}.get(arrange)
    upload_trained(aws, members)
    if arrange == "rejected":
        expect_package(aws, status="Rejected")
    elif arrange == "foreign":
        expect_package(aws, model_url="s3://elsewhere/model.tar.gz")
    else:
        expect_package(aws)
    if arrange == "updating":
        expect_current_endpoint(aws, status="Updating")
    with pytest.raises(runtime.DeploymentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings())


def test_an_unexpected_create_error_is_raised_for_a_retry(aws: Aws) -> None:
    from botocore.exceptions import ClientError

    upload_trained(aws)
    expect_package(aws)
    expect_current_endpoint(aws)
    expect_current_config_and_model(aws)
    aws.stubber.add_client_error("create_model", "ResourceLimitExceeded", "too many models", 400)
    with pytest.raises(ClientError, match="too many models"):
        runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings())


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "are not set: deploy this function with the approval stack"),
        ({"DEPLOYMENT_STRATEGY": "allAtOnce"}, "DEPLOYMENT_STRATEGY must be one of ['canary', 'linear', 'rolling']"),
    ],
)
def test_settings_refuse_a_broken_environment(environ: dict[str, str], message: str) -> None:
    complete = {
        "ENDPOINT_NAME": ENDPOINT, "MODEL_PACKAGE_GROUP": GROUP, "ARTIFACTS_BUCKET": ARTIFACTS,
        "SERVING_MODEL_KEY": "models/spleen/model.tar.gz", "MULTI_MODEL_PREFIX": "models/triton/",
        "TRITON_MODEL_NAME": DEFAULT_MODEL_NAME, "TRITON_CONFIG": render_config(runtime.TRITON_NAME_PLACEHOLDER),
        "TRITON_MODEL_PY": MODEL_PY, "DEPLOYMENT_STRATEGY": "canary", "ROLLBACK_ALARMS": ",".join(ALARMS),
    }
    given = {**complete, **environ} if environ else {"ENDPOINT_NAME": ENDPOINT}
    with pytest.raises(RuntimeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        runtime.Settings.from_environment(given)
    # Must: the complete environment parses, alarms split into names.
    assert runtime.Settings.from_environment(complete).rollback_alarms == ALARMS


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://bucket/model.tar.gz", r"the ModelDataUrl of arn:p must look like s3://bucket/key \(an object\)"),  # not S3
        ("s3://model-artifacts-bucket/", r"the ModelDataUrl of arn:p must name an object \(s3://bucket/key\)"),  # a bucket
    ],
)
def test_a_package_whose_model_is_not_an_s3_object_is_refused(url: str, message: str) -> None:
    package = runtime.Package(arn="arn:p", version=1, image="i", model_data_url=url)
    with pytest.raises(runtime.DeploymentError, match=message):
        runtime.model_location(package)
    # Must: an archive in a bucket is read as (bucket, key) by the platform's one parser.
    good = runtime.Package(arn="arn:p", version=1, image="i", model_data_url="s3://b-1/training/output/model.tar.gz")
    assert runtime.model_location(good) == ("b-1", "training/output/model.tar.gz")
