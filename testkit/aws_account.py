"""A rehearsal AWS account for `make deploy` and `monai-platform doctor`, offline: moto plus two simulated services.

moto serves what it emulates (CloudFormation, S3, SSM, ECR, SageMaker, CloudTrail, CloudWatch, SNS, SQS, Lambda,
Step Functions, EC2, IAM). It has no CodePipeline executions and no HealthImaging, so those two run behind real
botocore clients whose requests botocore validates against the service model before a simulated service answers,
and whose answers are validated against the output shape, as botocore's Stubber does. Unlike a Stubber's queue,
a simulation answers any number of polls: the pipeline's progress follows the fake clock.

``FakeCdk`` plays the commands the deployment runs: `cdk deploy` creates, per stack, what that stack holds (the
resources doctor checks) and a CloudFormation stack with the outputs the CLI reads, and fails the way
CloudFormation would when an image URI, a seeded object or a dependency stack is missing; `git archive`,
`make demo` and `make edge-bundle` write small stand-ins. ``break_*`` methods damage a deployed account the ways
doctor must report.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters
from moto import mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"  # moto's, and the rehearsal's region's
IMAGES = ("pytorch-inference", "triton-inference", "training")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# How long the simulated image pipeline takes, stage by stage (seconds of the fake clock).
PIPELINE_STAGES = (("Source", 60.0), ("Build", 1500.0), ("Record", 120.0))
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class FakeClock:
    """Time that moves only when the code under test sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    # Run at each sleep: a test plays what happens in the account meanwhile (a stack update finishing).
    hooks: list[Callable[[], None]] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in self.hooks:
            hook()


def simulated_client(session: boto3.session.Session, service: str, handlers: dict[str, Handler]) -> Any:
    """A real ``service`` client whose calls ``handlers`` (by operation name) answer after botocore validated them."""
    client = session.client(service)  # type: ignore[call-overload]
    events = client.meta.events

    def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["simulated_params"] = dict(params)

    def answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        handler = handlers.get(model.name)
        if handler is None:
            raise NotImplementedError(f"the rehearsal does not simulate {service} {model.name}")
        try:
            parsed = handler(context["simulated_params"])
        except ServiceError as error:
            body = {"Error": {"Code": error.code, "Message": error.message}, "ResponseMetadata": {}}
            return AWSResponse(None, error.status, {}, None), body
        validate_parameters(parsed, model.output_shape)  # the answer as the real service shapes it
        return AWSResponse(None, 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}

    events.register(f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}", keep_params)
    events.register_first(f"before-call.{client.meta.service_model.service_id.hyphenize()}", answer)
    return client


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(1_800_000_000 + seconds, tz=UTC)


@dataclass
class Execution:
    execution_id: str
    started: float
    revision: str | None  # the source object's version; None: the source was missing
    stopped_at: str | None = None  # a stage name where it fails


class PipelineService:
    """CodePipeline executions of the image pipelines: Source -> Build -> Record on the fake clock; Record writes the
    image URIs to SSM and pushes the images to ECR, as the buildspec does."""

    def __init__(self, account: RehearsalAccount) -> None:
        self.account = account
        self.pipelines: dict[str, dict[str, Any]] = {}  # name -> {"bucket", "key", "prefix", "executions"}
        self.started: list[str] = []  # executions started by StartPipelineExecution
        self.fail_next_build = False

    def create(self, name: str, *, bucket: str, key: str, prefix: str) -> None:
        self.pipelines[name] = {"bucket": bucket, "key": key, "prefix": prefix, "executions": [], "recorded": set()}
        # CodePipeline starts a new pipeline at once: with no source archive yet, that run fails at Source.
        self._start(name)

    def _source_version(self, name: str) -> str | None:
        pipeline = self.pipelines[name]
        try:
            head = self.account.client("s3").head_object(Bucket=pipeline["bucket"], Key=pipeline["key"])
            return str(head.get("VersionId"))
        except ClientError:
            return None

    def _start(self, name: str) -> Execution:
        executions = self.pipelines[name]["executions"]
        revision = self._source_version(name)
        stopped = None
        if revision is None:
            stopped = "Source"
        elif self.fail_next_build:
            stopped, self.fail_next_build = "Build", False
        execution = Execution(f"{len(executions) + 1:08d}-0000-4000-8000-000000000000", self.account.clock.now,
                              revision, stopped)
        executions.append(execution)
        return execution

    def _poll_source(self, name: str) -> None:
        """The S3 source action's polling: a version no execution has used starts one."""
        version = self._source_version(name)
        if version is not None and all(e.revision != version for e in self.pipelines[name]["executions"]):
            self._start(name)

    def _stage(self, execution: Execution) -> tuple[str, str]:
        """(stage name, status) of the execution now: the running or last stage."""
        elapsed = self.account.clock.now - execution.started
        for stage, duration in PIPELINE_STAGES:
            if execution.stopped_at == stage and elapsed >= duration / 2:
                return stage, "Failed"
            if elapsed < duration:
                return stage, "InProgress"
            elapsed -= duration
        return PIPELINE_STAGES[-1][0], "Succeeded"

    def _status(self, name: str, execution: Execution) -> str:
        _, status = self._stage(execution)
        if status == "Succeeded" and execution.execution_id not in self.pipelines[name]["recorded"]:
            self.pipelines[name]["recorded"].add(execution.execution_id)
            self.account.push_images(self.pipelines[name]["prefix"])
        return status

    def _pipeline(self, params: dict[str, Any], key: str) -> str:
        name = str(params[key])
        if name not in self.pipelines:
            raise ServiceError("PipelineNotFoundException", f"Account '{ACCOUNT}' does not have a pipeline with name "
                               f"'{name}'")
        return name

    def _summary(self, name: str, execution: Execution) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "pipelineExecutionId": execution.execution_id, "status": self._status(name, execution),
            "startTime": _time(execution.started), "lastUpdateTime": _time(self.account.clock.now),
        }
        if execution.revision is not None:
            summary["sourceRevisions"] = [{"actionName": "Source", "revisionId": execution.revision}]
        return summary

    def handlers(self) -> dict[str, Handler]:
        def list_executions(params: dict[str, Any]) -> dict[str, Any]:
            name = self._pipeline(params, "pipelineName")
            self._poll_source(name)
            newest = list(reversed(self.pipelines[name]["executions"]))[: int(params.get("maxResults", 100))]
            return {"pipelineExecutionSummaries": [self._summary(name, e) for e in newest]}

        def start(params: dict[str, Any]) -> dict[str, Any]:
            execution = self._start(self._pipeline(params, "name"))
            self.started.append(execution.execution_id)
            return {"pipelineExecutionId": execution.execution_id}

        def get_execution(params: dict[str, Any]) -> dict[str, Any]:
            name = self._pipeline(params, "pipelineName")
            [execution] = [e for e in self.pipelines[name]["executions"]
                           if e.execution_id == params["pipelineExecutionId"]]
            return {"pipelineExecution": {"pipelineName": name, "pipelineExecutionId": execution.execution_id,
                                          "status": self._status(name, execution)}}

        def state(params: dict[str, Any]) -> dict[str, Any]:
            name = self._pipeline(params, "name")
            latest = self.pipelines[name]["executions"][-1]
            current, status = self._stage(latest)
            stages = []
            for stage, _ in PIPELINE_STAGES:
                done = [s for s, _ in PIPELINE_STAGES].index(stage) < [s for s, _ in PIPELINE_STAGES].index(current)
                stage_status = "Succeeded" if done else status if stage == current else None
                entry: dict[str, Any] = {"stageName": stage}
                if stage_status:
                    entry["latestExecution"] = {"pipelineExecutionId": latest.execution_id, "status": stage_status}
                    action: dict[str, Any] = {"status": stage_status}
                    if stage_status == "Failed":
                        action["errorDetails"] = {"code": "JobFailed", "message": (
                            "The source archive does not exist in the source bucket" if stage == "Source"
                            else "Build failed: docker build exited with 1")}
                    entry["actionStates"] = [{"actionName": f"{stage}Action", "latestExecution": action}]
                stages.append(entry)
            return {"pipelineName": name, "stageStates": stages}

        return {"ListPipelineExecutions": list_executions, "StartPipelineExecution": start,
                "GetPipelineExecution": get_execution, "GetPipelineState": state}


class DatastoreService:
    """HealthImaging data stores, as GetDatastore describes them."""

    def __init__(self) -> None:
        self.datastores: dict[str, str] = {}  # id -> status

    def handlers(self) -> dict[str, Handler]:
        def get(params: dict[str, Any]) -> dict[str, Any]:
            datastore_id = str(params["datastoreId"])
            if datastore_id not in self.datastores:
                raise ServiceError("ResourceNotFoundException", f"Datastore {datastore_id} not found", 404)
            return {"datastoreProperties": {
                "datastoreId": datastore_id, "datastoreName": "monai-imaging-dev-dicom",
                "datastoreStatus": self.datastores[datastore_id],
                "datastoreArn": f"arn:{PARTITION}:medical-imaging:{REGION}:{ACCOUNT}:datastore/{datastore_id}",
            }}

        return {"GetDatastore": get}


@dataclass
class RehearsalAccount:
    """One account and region, bootstrapped for CDK, under moto; ``session``, ``clock`` and ``overrides`` (the
    simulated clients) are what a platform_cli Runtime takes."""

    prefix: str = "monai-imaging-dev"
    clock: FakeClock = field(default_factory=FakeClock)
    session: boto3.session.Session = field(init=False)
    pipelines: PipelineService = field(init=False)
    datastores: DatastoreService = field(init=False)
    overrides: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.session = boto3.session.Session(region_name=REGION)
        self.pipelines = PipelineService(self)
        self.datastores = DatastoreService()
        self.overrides = {
            "codepipeline": simulated_client(self.session, "codepipeline", self.pipelines.handlers()),
            "medical-imaging": simulated_client(self.session, "medical-imaging", self.datastores.handlers()),
        }
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service in self.overrides:
            return self.overrides[service]
        if service not in self._clients:
            self._clients[service] = self.session.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    def bootstrap(self, version: int = 30) -> None:
        """What `cdk bootstrap` leaves: the CDKToolkit stack and its version parameter."""
        template = {"Resources": {"StagingBucket": {"Type": "AWS::SNS::Topic"}}}
        self.client("cloudformation").create_stack(StackName="CDKToolkit", TemplateBody=json.dumps(template))
        self.client("ssm").put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value=str(version), Type="String")

    def push_images(self, prefix: str) -> None:
        ecr, ssm = self.client("ecr"), self.client("ssm")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "config": {}, "layers": []})
        for image in IMAGES:
            repository = f"{prefix}/{image}"
            ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=COMMIT)
            ssm.put_parameter(Name=f"/{prefix}/images/{image}/uri", Type="String", Overwrite=True,
                              Value=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}:{COMMIT}")

    # -- damage doctor must report --------------------------------------------------------------------------------

    def break_trail(self) -> None:
        trail = f"{self.prefix}-audit"
        self.client("cloudtrail").stop_logging(Name=trail)
        # Someone narrowed the selectors to one bucket.
        self.client("cloudtrail").put_event_selectors(TrailName=trail, AdvancedEventSelectors=[{
            "Name": "inbox only", "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Data"]},
                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                {"Field": "resources.ARN", "StartsWith": [f"arn:{PARTITION}:s3:::{self.prefix}-data-dicominbox/"]}]}])

    def break_endpoint(self, reason: str) -> None:
        from moto.backends import get_backend

        endpoint = get_backend("sagemaker")[ACCOUNT][REGION].endpoints[f"{self.prefix}-spleen-async"]
        endpoint.endpoint_status = "Failed"
        setattr(endpoint, "failure_reason", reason)  # noqa: B010 - moto types the attribute as always None

    def break_alarm(self) -> None:
        self.client("cloudwatch").delete_alarms(AlarmNames=[f"{self.prefix}-spleen-async-deploy-modelerrors"])

    def break_datastore(self) -> None:
        for datastore_id in self.datastores.datastores:
            self.datastores.datastores[datastore_id] = "DELETED"

    def break_dead_letters(self, count: int = 2) -> None:
        url = self.client("sqs").get_queue_url(QueueName=f"{self.prefix}-inference-dlq")["QueueUrl"]
        for index in range(count):
            self.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"failed": index}))


# moto accepts any credentials; real ones must never reach it (or AWS).
FAKE_ENVIRONMENT = {name: "rehearsal" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
FAKE_ENVIRONMENT["AWS_DEFAULT_REGION"] = REGION


@contextmanager
def rehearsal_account() -> Iterator[RehearsalAccount]:
    """A bootstrapped rehearsal account while the block runs (fake credentials, moto)."""
    import os

    saved = {name: os.environ.get(name) for name in (*FAKE_ENVIRONMENT, "AWS_PROFILE")}
    os.environ.update(FAKE_ENVIRONMENT)
    os.environ.pop("AWS_PROFILE", None)
    try:
        with mock_aws():
            account = RehearsalAccount()
            account.bootstrap()
            yield account
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class CdkDeployError(Exception):
    """What CloudFormation would refuse; FakeCdk prints it as cdk does and exits 1."""


@dataclass
class FakeCdk:
    """The ``runner`` of a rehearsal: records every command and plays cdk, git and make against the account."""

    account: RehearsalAccount
    dependencies: dict[str, tuple[str, ...]]  # stack ID -> the stack IDs it reads outputs of (the assembly's)
    print_line: Callable[[str], None] = print
    commands: list[list[str]] = field(default_factory=list)
    deployed: list[str] = field(default_factory=list)  # stack IDs, in the order they were (re)deployed
    fail_stack_once: set[str] = field(default_factory=set)  # stack IDs whose next deploy fails (a transient error)

    def __call__(self, command: Sequence[str]) -> int:
        self.commands.append(list(command))
        if "cdk" in command and "deploy" in command:
            return self.cdk_deploy(list(command))
        if command[:2] == ["git", "archive"]:
            with zipfile.ZipFile(command[command.index("-o") + 1], "w") as archive:
                archive.writestr("README.md", "the platform's source at HEAD\n")
            return 0
        if command[:2] == ["make", "demo"]:
            # A real (untrained, threshold) MONAI bundle where `make demo` leaves its trained one.
            from testkit.models import save_threshold_model

            save_threshold_model(Path(self._value(command, "DEMO_OUTPUT")) / "model")
            return 0
        if command[:2] == ["make", "edge-bundle"]:
            with zipfile.ZipFile(f"{self._value(command, 'EDGE_BUNDLE')}.zip", "w") as archive:
                archive.writestr("bundle.json", "{}")
            return 0
        raise NotImplementedError(f"the rehearsal does not play {command}")

    @staticmethod
    def _value(command: Sequence[str], name: str) -> str:
        [value] = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
        return value

    def cdk_deploy(self, command: list[str]) -> int:
        ids, skip = [], False
        for arg in command[command.index("deploy") + 1:]:
            if skip:
                skip = False
            elif arg in ("--app", "--require-approval"):
                skip = True
            elif not arg.startswith("-"):
                ids.append(arg)
        for stack_id in ids:
            stack_name = f"{self.account.prefix}-{stack_id.lower()}"
            self.print_line(f"{stack_id} ({stack_name}): deploying...")
            try:
                if stack_id in self.fail_stack_once:
                    self.fail_stack_once.discard(stack_id)
                    raise CdkDeployError("Rate exceeded (the rehearsal's transient failure)")
                missing = [d for d in self.dependencies.get(stack_id, ()) if not self._exists(d)]
                if missing:
                    stack = f"{self.account.prefix}-{missing[0].lower()}"
                    raise CdkDeployError(f"Fn::GetStackOutput: stack {stack} does not exist")
                if not self._exists(stack_id):
                    outputs = BUILDERS[stack_id](self.account)
                    self._stack(stack_name, outputs)
            except CdkDeployError as error:
                self.print_line(f" ❌  {stack_id} ({stack_name}) failed: {error}")
                return 1
            self.deployed.append(stack_id)
            self.print_line(f" ✅  {stack_id} ({stack_name})")
        return 0

    def _exists(self, stack_id: str) -> bool:
        try:
            self.account.client("cloudformation").describe_stacks(StackName=f"{self.account.prefix}-{stack_id.lower()}")
            return True
        except ClientError:
            return False

    def _stack(self, stack_name: str, outputs: dict[str, str]) -> None:
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
        self.account.client("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(template))


S3_OBJECT, DATASTORE, IMAGE_SET = "AWS::S3::Object", "AWS::MedicalImaging::Datastore", "AWS::MedicalImaging::Imageset"


# -- what each stack holds in the account (the resources doctor checks) and its outputs ----------------------------

def _bucket(account: RehearsalAccount, name: str) -> str:
    s3 = account.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _topic(account: RehearsalAccount, name: str) -> str:
    return str(account.client("sns").create_topic(Name=name)["TopicArn"])


def _queue(account: RehearsalAccount, name: str) -> str:
    return str(account.client("sqs").create_queue(QueueName=name)["QueueUrl"])


def _role(account: RehearsalAccount, name: str) -> str:
    return str(account.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"])


def _alarm(account: RehearsalAccount, name: str) -> None:
    account.client("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="AWS/SageMaker", MetricName="InvocationFailures", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")


def _needs_parameter(account: RehearsalAccount, image: str) -> None:
    name = f"/{account.prefix}/images/{image}/uri"
    try:
        account.client("ssm").get_parameter(Name=name)
    except ClientError as error:
        raise CdkDeployError(f"Unable to fetch parameters [{name}] from parameter store for this account.") from error


def _needs_object(account: RehearsalAccount, bucket: str, key: str, why: str) -> None:
    try:
        account.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        raise CdkDeployError(f"s3://{bucket}/{key} does not exist: {why}") from error


DATA_BUCKETS = ("DicomInbox", "ImportOutput", "TrainingData", "ModelArtifacts", "Inference")


def build_data(account: RehearsalAccount) -> dict[str, str]:
    outputs = {f"{name}BucketName": _bucket(account, f"{account.prefix}-data-{name.lower()}") for name in DATA_BUCKETS}
    _bucket(account, f"{account.prefix}-data-accesslogs")
    key = account.client("kms").create_key(Description="data key")["KeyMetadata"]["Arn"]
    return {**outputs, "DataKeyArn": key}


def build_network(account: RehearsalAccount) -> dict[str, str]:
    return {"VpcId": account.client("ec2").create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]}


def build_imaging(account: RehearsalAccount) -> dict[str, str]:
    datastore_id = "0123456789abcdef0123456789abcdef"
    account.datastores.datastores[datastore_id] = "ACTIVE"
    return {
        "DatastoreId": datastore_id,
        "ImportRoleArn": _role(account, f"{account.prefix}-import"),
        "ImportSummaryTopicArn": _topic(account, f"{account.prefix}-import-summary"),
        "ImportAlarmTopicArn": _topic(account, f"{account.prefix}-import-alarm"),
        "ImageSetCreatedTopicArn": _topic(account, f"{account.prefix}-image-set-created"),
        "DeadLetterQueueUrl": _queue(account, f"{account.prefix}-imaging-dlq"),
    }


def build_audit(account: RehearsalAccount) -> dict[str, str]:
    bucket = _bucket(account, f"{account.prefix}-audit-logfiles")
    trail = f"{account.prefix}-audit"
    cloudtrail = account.client("cloudtrail")
    arn = str(cloudtrail.create_trail(Name=trail, S3BucketName=bucket, IsMultiRegionTrail=True,
                                      EnableLogFileValidation=True)["TrailARN"])
    datastore_id = next(iter(account.datastores.datastores))
    datastore = f"arn:{PARTITION}:medical-imaging:{REGION}:{ACCOUNT}:datastore/{datastore_id}"
    data = {"Field": "eventCategory", "Equals": ["Data"]}
    buckets = [f"arn:{PARTITION}:s3:::{account.prefix}-data-{name.lower()}/" for name in DATA_BUCKETS]
    cloudtrail.put_event_selectors(TrailName=trail, AdvancedEventSelectors=[
        {"Name": "Management events", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
        {"Name": "objects", "FieldSelectors": [data, {"Field": "resources.type", "Equals": [S3_OBJECT]},
                                               {"Field": "resources.ARN", "StartsWith": buckets}]},
        {"Name": "data store", "FieldSelectors": [data, {"Field": "resources.type", "Equals": [DATASTORE]},
                                                  {"Field": "resources.ARN", "Equals": [datastore]}]},
        {"Name": "image sets", "FieldSelectors": [
            data, {"Field": "resources.type", "Equals": [IMAGE_SET]},
            {"Field": "resources.ARN", "StartsWith": [f"{datastore}/imageset/"]}]},
    ])
    cloudtrail.start_logging(Name=trail)
    account.client("ssm").put_parameter(Name=f"/{account.prefix}/audit/trail-arn", Value=arn, Type="String")
    return {"TrailArn": arn, "TrailBucketName": bucket}


def build_images(account: RehearsalAccount) -> dict[str, str]:
    outputs = {}
    for image in IMAGES:
        repository = account.client("ecr").create_repository(repositoryName=f"{account.prefix}/{image}")
        outputs[f"{image.title().replace('-', '')}RepositoryUri"] = repository["repository"]["repositoryUri"]
    source = _bucket(account, f"{account.prefix}-images-source")
    pipeline = f"{account.prefix}-images"
    account.pipelines.create(pipeline, bucket=source, key="source/platform.zip", prefix=account.prefix)
    return {**outputs, "PipelineName": pipeline, "SourceBucketName": source}


def build_serving(account: RehearsalAccount) -> dict[str, str]:
    _needs_parameter(account, "pytorch-inference")
    bucket = f"{account.prefix}-data-modelartifacts"
    _needs_object(account, bucket, "models/spleen/model.tar.gz",
                  "the endpoint's model could not be downloaded; the endpoint failed to create")
    sagemaker = account.client("sagemaker")
    endpoint = f"{account.prefix}-spleen-async"
    sagemaker.create_model(ModelName=f"{endpoint}-model", ExecutionRoleArn=_role(account, f"{account.prefix}-endpoint"),
                           PrimaryContainer={"Image": "image", "ModelDataUrl": f"s3://{bucket}/models/spleen/model.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName=f"{endpoint}-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{endpoint}-model", "InitialInstanceCount": 1,
        "InstanceType": "ml.g4dn.xlarge"}])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")
    return {
        "EndpointName": endpoint,
        "ModelDataUrl": f"s3://{bucket}/models/spleen/model.tar.gz",
        "SuccessTopicArn": _topic(account, f"{endpoint}-succeeded"),
        "ErrorTopicArn": _topic(account, f"{endpoint}-failed"),
    }


def build_training(account: RehearsalAccount) -> dict[str, str]:
    _needs_parameter(account, "training")
    role = _role(account, f"{account.prefix}-training-workflow")
    definition = json.dumps({"StartAt": "Train", "States": {"Train": {"Type": "Pass", "End": True}}})
    machine = account.client("stepfunctions").create_state_machine(
        name=f"{account.prefix}-training", definition=definition, roleArn=role)["stateMachineArn"]
    group = f"{account.prefix}-spleen"
    account.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    return {"StateMachineArn": machine, "ModelPackageGroupName": group,
            "NotificationTopicArn": _topic(account, f"{account.prefix}-training")}


def build_approval(account: RehearsalAccount) -> dict[str, str]:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("deploy_approved.py", "def handler(event, context):\n    return None\n")
    function = f"{account.prefix}-deploy-approved"
    account.client("lambda").create_function(
        FunctionName=function, Runtime="python3.13", Role=_role(account, f"{account.prefix}-deploy"),
        Handler="deploy_approved.handler", Code={"ZipFile": code.getvalue()})
    alarms = [f"{account.prefix}-spleen-async-deploy-{name}" for name in ("invocationfailures", "modelerrors")]
    for alarm in alarms:
        _alarm(account, alarm)
    return {"DeployFunctionName": function, "RollbackAlarmNames": ",".join(alarms),
            "DeadLetterQueueUrl": _queue(account, f"{account.prefix}-approval-dlq")}


def build_inference(account: RehearsalAccount) -> dict[str, str]:
    return {"DeadLetterQueueUrl": _queue(account, f"{account.prefix}-inference-dlq"),
            "FailureQueueUrl": _queue(account, f"{account.prefix}-inference-failures")}


def build_monitoring(account: RehearsalAccount) -> dict[str, str]:
    for name in ("BacklogSize", "BacklogAge", "InvocationFailures", "Invocation5XXErrors"):
        _alarm(account, f"{account.prefix}-{name}")
    return {"NotificationTopicArn": _topic(account, f"{account.prefix}-alarms"),
            "DashboardName": f"{account.prefix}-operations"}


def build_edge(account: RehearsalAccount) -> dict[str, str]:
    bucket = f"{account.prefix}-data-modelartifacts"
    _needs_object(account, bucket, "edge/spleen/1.0.0/bundle.zip",
                  "Greengrass could not read the component's artifact")
    return {"BundleS3Uri": f"s3://{bucket}/edge/spleen/1.0.0/bundle.zip"}


BUILDERS: dict[str, Callable[[RehearsalAccount], dict[str, str]]] = {
    "Data": build_data, "Network": build_network, "Imaging": build_imaging, "Audit": build_audit,
    "Images": build_images, "Serving": build_serving, "Training": build_training, "Approval": build_approval,
    "Inference": build_inference, "Monitoring": build_monitoring, "Edge": build_edge,
}


def deploy_platform(account: RehearsalAccount) -> FakeCdk:
    """A deployed, healthy platform in ``account`` (doctor's subject): images pushed, the demo model and edge bundle
    seeded, every stack created. The deployment itself is scripts/deploy's, tested on its own."""
    cdk = FakeCdk(account, dependencies={}, print_line=lambda line: None)
    cdk(["cdk", "deploy", "Data", "Network", "Imaging", "Audit", "Images"])
    account.push_images(account.prefix)
    bucket = f"{account.prefix}-data-modelartifacts"
    s3 = account.client("s3")
    for key in ("models/spleen/model.tar.gz", "edge/spleen/1.0.0/bundle.zip"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"demo", Tagging="intended-use=not-for-clinical-use")
    cdk(["cdk", "deploy", "Serving", "Training", "Approval", "Inference", "Monitoring", "Edge"])
    return cdk
