"""`make deploy STAGE=<stage>`: a working platform from an account that has only been bootstrapped.

    1. bootstrap   the CDKToolkit stack and a bootstrap version the templates accept
    2. foundation  `cdk deploy` of every stack that needs no image and no seeded artifact (plan.py)
    3. images      the stage's image pipeline run once and awaited, unless the images are in ECR already
    4. seed        the model archive the endpoint loads (the latest approved package, else the demo model) and,
                   with the Edge stack, the edge bundle
    5. stacks      `cdk deploy` of the rest (serving, training, approval, inference, monitoring, edge)
    6. doctor      `monai-platform doctor`: every stack's key resources exist and answer

Re-running after a failure picks up where it stopped, from what exists in the account rather than from a local
file (so it resumes from any machine, and nothing can disagree with the account): a stack still in progress is
waited for; `cdk deploy` leaves unchanged stacks alone and replaces one whose first creation failed; images in
ECR skip the pipeline, an execution in progress is awaited instead of started again; seeded objects are kept.

AWS calls go through a platform_cli ``Runtime`` (clients, stack outputs, clock, output streams) and commands
(cdk, git, make) through an injected ``runner``, so tests and `make deploy-rehearsal` drive the real code offline.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from model_code.core.bundle_layout import is_bundle
from model_code.core.s3_uri import parse_s3_uri
from platform_cli import doctor
from platform_cli.errors import CommandFailedError
from platform_cli.outputs import OutputRef
from platform_cli.polling import wait_for
from platform_cli.runtime import Runtime
from scripts.deploy.demo_bundle import TAG_KEY, TAG_VALUE, package_demo_bundle
from scripts.deploy.plan import SEEDED, DeployPlan, PlannedStack
from stacks.config import PlatformConfig
from stacks.container_images.names import IMAGES, image_uri_parameter_name
from stacks.edge.recipe import artifact_key

Runner = Callable[[Sequence[str]], int]  # runs a command with its output on the terminal; returns the exit code

CDK = ("npx", "--no-install", "cdk")
BOOTSTRAP_STACK = "CDKToolkit"
RUNNING = "InProgress"
# Where `make demo` writes (mk/training.mk: DEMO_OUTPUT, the model in its model/ folder).
DEMO_OUTPUT = Path("demo-output")


class DeployError(RuntimeError):
    """A step cannot go on; the message says what happened and what to do (then run `make deploy` again)."""


@dataclass
class DeployOptions:
    cdk_out: Path = Path("cdk.out")
    # `cdk deploy --require-approval`: "broadening" asks before IAM or security-group widening, "never" for CI.
    require_approval: str = "broadening"
    stack_timeout_s: float = 2 * 3600
    pipeline_timeout_s: float = 3 * 3600
    poll_interval_s: float = 30
    # After a source upload, how long the pipeline's S3 polling has to start an execution before one is started.
    trigger_wait_s: float = 300
    demo_output: Path = DEMO_OUTPUT
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


@dataclass
class Deployer:
    runtime: Runtime
    config: PlatformConfig
    plan: DeployPlan
    runner: Runner
    options: DeployOptions = field(default_factory=DeployOptions)
    steps_total: int = 6
    _step: int = 0
    _started: float = 0.0  # when the awaited pipeline execution began (runtime clock)

    # -- the steps ----------------------------------------------------------------------------------------------

    def run(self) -> int:
        self.step("bootstrap", "is the account bootstrapped for CDK?")
        self.check_bootstrap()
        self.step("foundation", ", ".join(self.plan.ids(self.plan.foundation)))
        self.deploy(self.plan.foundation)
        self.step("images", "the stage's image pipeline, once")
        self.images()
        self.step("seed", "what the endpoint and the edge component read when they are created")
        self.seed()
        self.step("stacks", ", ".join(self.plan.ids(self.plan.rest)))
        self.deploy(self.plan.rest)
        self.step("doctor", "does every stack answer?")
        findings = doctor.examine(self.runtime)
        for line in doctor.render(findings):
            self.runtime.emit(line)
        return 1 if any(f.status == doctor.FAIL for f in findings) else 0

    def step(self, name: str, what: str) -> None:
        self._step += 1
        self.runtime.note(f"[{self._step}/{self.steps_total}] {name}: {what}")

    def check_bootstrap(self) -> None:
        stage = self.config.stage
        fix = f"run `make bootstrap STAGE={stage}` with credentials of account {self.config.account or '(yours)'}"
        status = self.stack_status(BOOTSTRAP_STACK)
        if status is None or not status.endswith("_COMPLETE") or "ROLLBACK" in status:
            raise DeployError(f"the {BOOTSTRAP_STACK} stack is {status or 'missing'} in "
                              f"{self.region}: the account is not bootstrapped for CDK: {fix}")
        try:
            version = int(self.client("ssm").get_parameter(Name=self.plan.bootstrap_parameter)["Parameter"]["Value"])
        except ClientError as error:
            raise DeployError(f"{self.plan.bootstrap_parameter} cannot be read ({error}): {fix}") from error
        if version < self.plan.bootstrap_version:
            raise DeployError(f"the bootstrap stack is version {version}, the templates need "
                              f"{self.plan.bootstrap_version} or later: {fix}")
        self.runtime.note(f"  {BOOTSTRAP_STACK} is {status}, bootstrap version {version}")

    def deploy(self, stacks: tuple[PlannedStack, ...]) -> None:
        for stack in stacks:
            self.wait_until_stable(stack)
        ids = self.plan.ids(stacks)
        command = [*CDK, "deploy", "--app", str(self.options.cdk_out), "--exclusively",
                   "--require-approval", self.options.require_approval, *ids]
        self.runtime.note(f"  $ {' '.join(command)}")
        if self.runner(command) != 0:
            raise DeployError(f"cdk deploy of {', '.join(ids)} failed (its output is above): fix the cause, then "
                              f"run `make deploy STAGE={self.config.stage}` again; stacks already deployed stay")

    def wait_until_stable(self, stack: PlannedStack) -> None:
        """A stack another run left in progress is waited for: cdk deploy refuses to update it meanwhile."""
        status = self.stack_status(stack.stack_name)
        if status is None or not status.endswith("_IN_PROGRESS"):
            return

        def poll() -> tuple[str | None, str]:
            current = self.stack_status(stack.stack_name) or "DELETED"
            return (None if current.endswith("_IN_PROGRESS") else current), current

        self.runtime.note(f"  {stack.stack_name} is {status} (an earlier run): waiting for it")
        settled = wait_for(self.runtime, poll, what=f"stack {stack.stack_name}", timeout_s=self.options.stack_timeout_s,
                           interval_s=self.options.poll_interval_s, on_timeout="check it in CloudFormation")
        self.runtime.note(f"  {stack.stack_name} is {settled}")

    def images(self) -> None:
        missing = self.missing_images()
        if not missing:
            self.runtime.note("  every image is in ECR with its URI in SSM: nothing to build")
            return
        self.runtime.note(f"  missing: {'; '.join(missing)}")
        pipeline = self.runtime.output(OutputRef("Images", "PipelineName"))
        codepipeline = self.client("codepipeline")
        latest = codepipeline.list_pipeline_executions(pipelineName=pipeline, maxResults=1)[
            "pipelineExecutionSummaries"]
        if latest and latest[0]["status"] == RUNNING:
            # Started by an earlier run, or by CodePipeline itself when the stack created the pipeline (with no
            # source archive yet, that one fails at Source): wait for it, then build ourselves if it did not.
            execution = latest[0]["pipelineExecutionId"]
            self.runtime.note(f"  execution {execution[:8]} of {pipeline} is already running: waiting for it")
            status = self.await_execution(pipeline, execution)
            if status == "Succeeded" and not self.missing_images():
                return
            self.runtime.note(f"  that execution {status}: starting one with this checkout's source")
        self.check_execution(pipeline, self.start_pipeline(pipeline))
        still = self.missing_images()
        if still:
            raise DeployError(f"the pipeline succeeded but {'; '.join(still)}: read its Record stage's log")

    def missing_images(self) -> list[str]:
        ssm, ecr = self.client("ssm"), self.client("ecr")
        missing = []
        for image in IMAGES:
            name = image_uri_parameter_name(self.config.prefix, image)
            try:
                uri = ssm.get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
                    raise
                missing.append(f"{image} (no {name})")
                continue
            repository, _, tag = uri.split("/", 1)[1].rpartition(":")
            try:
                ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("ImageNotFoundException",
                                                                       "RepositoryNotFoundException"):
                    raise
                missing.append(f"{image} ({uri} is not in ECR)")
        return missing

    def start_pipeline(self, pipeline: str) -> str:
        codepipeline = self.client("codepipeline")
        if self.config.images.source.kind != "s3":
            self.runtime.note(f"  starting {pipeline} on {self.config.images.source.repository}")
            return str(codepipeline.start_pipeline_execution(name=pipeline)["pipelineExecutionId"])
        version = self.upload_source()

        def triggered() -> tuple[str | None, str]:
            # The pipeline polls its source bucket: the new version usually starts an execution by itself.
            for summary in codepipeline.list_pipeline_executions(
                    pipelineName=pipeline, maxResults=5)["pipelineExecutionSummaries"]:
                if any(r.get("revisionId") == version for r in summary.get("sourceRevisions", [])):
                    return str(summary["pipelineExecutionId"]), "started by the source upload"
            return None, "waiting for the source poll"

        try:
            return wait_for(self.runtime, triggered, what="pipeline trigger", timeout_s=self.options.trigger_wait_s,
                            interval_s=self.options.poll_interval_s, on_timeout="")
        except CommandFailedError:  # the poll started nothing: start the execution ourselves
            self.runtime.note(f"  the source poll started nothing in {self.options.trigger_wait_s:g} s: starting "
                              f"{pipeline}")
            return str(codepipeline.start_pipeline_execution(name=pipeline)["pipelineExecutionId"])

    def upload_source(self) -> str:
        """A zip of the checkout's HEAD (`git archive`) at the pipeline's source key; returns the object version."""
        archive = self.options.workdir / f"{self.config.prefix}-source.zip"
        command = ["git", "archive", "--format=zip", "-o", str(archive), "HEAD"]
        self.runtime.note(f"  $ {' '.join(command)}")
        if self.runner(command) != 0:
            raise DeployError("git archive failed: run make deploy from a git checkout of the platform")
        bucket = self.runtime.output(OutputRef("Images", "SourceBucketName"))
        key = self.config.images.source.bucket_key or ""
        s3 = self.client("s3")
        s3.upload_file(str(archive), bucket, key)
        version = str(s3.head_object(Bucket=bucket, Key=key).get("VersionId", ""))
        self.runtime.note(f"  uploaded s3://{bucket}/{key} (version {version})")
        return version

    def check_execution(self, pipeline: str, execution: str) -> None:
        status = self.await_execution(pipeline, execution)
        if status != "Succeeded":
            raise DeployError(f"image pipeline {pipeline} execution {execution} {status}: "
                              f"{self.failed_action(pipeline)}; fix it, then run `make deploy STAGE="
                              f"{self.config.stage}` again")

    def await_execution(self, pipeline: str, execution: str) -> str:
        """The execution's final status (Succeeded, Failed, Stopped, Superseded), with progress on stderr."""
        codepipeline = self.client("codepipeline")
        seen: list[str] = []

        def poll() -> tuple[str | None, str]:
            status = codepipeline.get_pipeline_execution(pipelineName=pipeline, pipelineExecutionId=execution)[
                "pipelineExecution"]["status"]
            where = status if status != RUNNING else f"{status} at {self.running_stage(pipeline)}"
            if not seen or seen[-1] != where:
                seen.append(where)
                self.runtime.note(f"  {pipeline} {execution[:8]}: {where} ({self.elapsed()})")
            return (status if status != RUNNING else None), where

        self._started = self.runtime.clock()
        status = wait_for(self.runtime, poll, what=f"image pipeline {pipeline}",
                          timeout_s=self.options.pipeline_timeout_s, interval_s=self.options.poll_interval_s,
                          on_timeout=f"it may still finish: run `make deploy STAGE={self.config.stage}` again to "
                          "keep waiting")
        return status

    def elapsed(self) -> str:
        return f"{(self.runtime.clock() - self._started) / 60:.0f} min"

    def running_stage(self, pipeline: str) -> str:
        for stage in self.client("codepipeline").get_pipeline_state(name=pipeline).get("stageStates", []):
            if stage.get("latestExecution", {}).get("status") == RUNNING:
                return str(stage["stageName"])
        return "?"

    def failed_action(self, pipeline: str) -> str:
        for stage in self.client("codepipeline").get_pipeline_state(name=pipeline).get("stageStates", []):
            for action in stage.get("actionStates", []):
                latest = action.get("latestExecution", {})
                if latest.get("status") == "Failed":
                    message = latest.get("errorDetails", {}).get("message", "")
                    return f"{stage['stageName']}/{action['actionName']} failed: {message}"
        return "no failed action recorded (open the execution in CodePipeline)"

    def seed(self) -> None:
        bucket = self.runtime.output(OutputRef("Data", "ModelArtifactsBucketName"))
        s3 = self.client("s3")
        key = self.config.serving.model_data_key
        if self.exists(s3, bucket, key):
            self.runtime.note(f"  s3://{bucket}/{key} exists: the endpoint serves it")
        elif (approved := self.latest_approved()) is not None:
            source_bucket, source_key = parse_s3_uri(approved["url"], what="the approved package's model",
                                                     require_key=True)
            s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key})
            self.runtime.note(f"  approved package {approved['arn']} copied to s3://{bucket}/{key}")
        else:
            archive = package_demo_bundle(self.demo_model_dir(), self.options.workdir / "demo-model.tar.gz")
            s3.upload_file(str(archive), bucket, key, ExtraArgs={
                "Tagging": f"{TAG_KEY}={TAG_VALUE}", "Metadata": {TAG_KEY: TAG_VALUE}})
            self.runtime.note(f"  no model approved yet: the demo model (NOT FOR CLINICAL USE) is at s3://{bucket}/{key}")
        if "Edge" not in self.plan.ids(self.plan.rest):
            return
        edge = self.config.edge
        edge_key = artifact_key(edge.artifact_prefix, edge.component_version)
        if self.exists(s3, bucket, edge_key):
            self.runtime.note(f"  s3://{bucket}/{edge_key} exists: the edge component installs it")
            return
        bundle = self.options.workdir / "edge-bundle"  # mk/edge.mk writes EDGE_BUNDLE and EDGE_BUNDLE.zip
        command = ["make", "edge-bundle", f"EDGE_MODEL_DIR={self.demo_model_dir()}", f"EDGE_BUNDLE={bundle}"]
        self.runtime.note(f"  $ {' '.join(command)}   ({SEEDED['Edge']})")
        if self.runner(command) != 0:
            raise DeployError("make edge-bundle failed (its output is above): fix it, or set "
                              "platform.edge.enabled to false, then run make deploy again")
        s3.upload_file(f"{bundle}.zip", bucket, edge_key, ExtraArgs={"Tagging": f"{TAG_KEY}={TAG_VALUE}"})
        self.runtime.note(f"  the demo edge bundle (NOT FOR CLINICAL USE) is at s3://{bucket}/{edge_key}")

    def demo_model_dir(self) -> Path:
        model_dir = self.options.demo_output / "model"
        if not is_bundle(model_dir):
            self.runtime.note(f"  {model_dir} has no model: training the demo model ($ make demo, a few minutes)")
            command = ["make", "demo", f"DEMO_OUTPUT={self.options.demo_output}"]
            if self.runner(command) != 0 or not is_bundle(model_dir):
                raise DeployError(f"make demo left no model in {model_dir}: run it alone to see why")
        return model_dir

    def latest_approved(self) -> dict[str, str] | None:
        sagemaker = self.client("sagemaker")
        group = f"{self.config.prefix}-spleen"  # stacks/training/stack.py
        try:
            summaries = sagemaker.list_model_packages(
                ModelPackageGroupName=group, ModelApprovalStatus="Approved", SortBy="CreationTime",
                SortOrder="Descending", MaxResults=1)["ModelPackageSummaryList"]
        except ClientError:
            return None  # the group does not exist before the training stack does
        if not summaries:
            return None
        arn = summaries[0]["ModelPackageArn"]
        described = sagemaker.describe_model_package(ModelPackageName=arn)
        return {"arn": arn, "url": described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]}

    # -- helpers ------------------------------------------------------------------------------------------------

    @property
    def region(self) -> str:
        return str(self.client("cloudformation").meta.region_name)

    def client(self, service: str) -> Any:
        return self.runtime.client(service)

    def stack_status(self, name: str) -> str | None:
        try:
            return str(self.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
        except ClientError as error:
            if "does not exist" in str(error):
                return None
            raise

    @staticmethod
    def exists(s3: Any, bucket: str, key: str) -> bool:
        try:
            s3.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
