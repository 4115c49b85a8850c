"""`make deploy` (scripts/deploy): order, waits and resume, offline, on the rehearsal account (testkit/aws_account.py).

The stacks and their dependencies are the synthesized platform's (one synth per session); `cdk deploy`, git and
make are played by FakeCdk, which records every command and fails as CloudFormation would when a stack comes too
early (an image URI or a seeded object missing, a dependency not deployed).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_code.core.errors import ModelDirectoryError
from platform_cli.errors import CommandFailedError
from platform_cli.project import Deployment
from platform_cli.runtime import Runtime
from scripts.deploy.demo_bundle import INTENDED_USE, package_demo_bundle
from scripts.deploy.plan import SEEDED, DeployPlan, read_plan
from scripts.deploy.steps import Deployer, DeployError, DeployOptions
from stacks.config import PlatformConfig, build_config
from testkit.aws_account import ACCOUNT, REGION, FakeCdk, RehearsalAccount, rehearsal_account
from tests.stacks.assembly import cdk_json_context, synthesize

PREFIX = "monai-imaging-dev"
FOUNDATION = ["Data", "Network", "Imaging", "Audit", "Images"]
REST = ["Serving", "Training", "Approval", "Inference", "Monitoring", "Edge"]
POLL = 30.0


@pytest.fixture(scope="session")
def plan(tmp_path_factory: pytest.TempPathFactory) -> DeployPlan:
    outdir = tmp_path_factory.mktemp("cdk-out-deploy")
    synthesize(outdir)
    return read_plan(outdir, image_parameter_prefix=f"/{PREFIX}/images")


@pytest.fixture(scope="session")
def config() -> PlatformConfig:
    return build_config(cdk_json_context())


@pytest.fixture
def account() -> Iterator[RehearsalAccount]:
    with rehearsal_account() as account:
        yield account


def rig(account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path,
        **options: object) -> tuple[Deployer, FakeCdk, io.StringIO]:
    notes = io.StringIO()
    runtime = Runtime(deployment=Deployment(project="monai-imaging", stage="dev"), session=account.session,
                      client_overrides=account.overrides, sleep=account.clock.sleep, clock=account.clock.clock,
                      stdout=io.StringIO(), stderr=notes)
    cdk = FakeCdk(account, {s.stack_id: s.dependencies for s in plan.stacks}, print_line=lambda line: None)
    settings = DeployOptions(cdk_out=Path("cdk.out"), require_approval="never", poll_interval_s=POLL,
                             demo_output=tmp_path / "demo-output", workdir=tmp_path)
    for name, value in options.items():
        setattr(settings, name, value)
    return Deployer(runtime, config, plan, cdk, settings), cdk, notes


def kinds(commands: list[list[str]]) -> list[str]:
    """Each command by what it does: "cdk <ids>", "git archive", "make demo", "make edge-bundle"."""
    out = []
    for command in commands:
        if "cdk" in command:
            after = command.index("never") if "never" in command else command.index("deploy")
            out.append("cdk " + " ".join(command[after + 1:]))
        else:
            out.append(" ".join(command[:2]))
    return out


def executions(account: RehearsalAccount) -> int:
    return sum(len(p["executions"]) for p in account.pipelines.pipelines.values())


def test_the_plan_deploys_what_needs_images_or_seeded_objects_after_them(plan: DeployPlan) -> None:
    assert plan.ids(plan.foundation) == FOUNDATION
    assert plan.ids(plan.rest) == REST
    by_id = {s.stack_id: s for s in plan.stacks}
    # Why each late stack is late: it reads images, reads a seeded object, or depends on a late stack.
    assert {s for s, stack in by_id.items() if stack.reads_images} == {"Serving", "Training"}
    assert set(SEEDED) <= set(REST)
    assert set(by_id["Approval"].dependencies) >= {"Serving", "Training"}
    assert (plan.bootstrap_parameter, plan.bootstrap_version) == ("/cdk-bootstrap/hnb659fds/version", 6)


def small_assembly(tmp_path: Path, stacks: dict[str, tuple[list[str], bool]]) -> Path:
    """An assembly of stacks (id -> dependencies, reads an image URI) as CDK writes it."""
    artifacts = {}
    for stack_id, (dependencies, reads) in stacks.items():
        parameters = {"Image": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/p-dev/images/x/uri"}}
        (tmp_path / f"{stack_id}.template.json").write_text(json.dumps({"Parameters": parameters if reads else {}}))
        artifacts[stack_id] = {"type": "aws:cloudformation:stack", "dependencies": dependencies,
                               "properties": {"templateFile": f"{stack_id}.template.json", "stackName": stack_id}}
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    return tmp_path


def test_a_stack_depending_on_an_image_reader_is_late_and_an_unrelated_one_is_not(tmp_path: Path) -> None:
    outdir = small_assembly(tmp_path, {"Reader": ([], True), "AfterReader": (["Reader"], False),
                                       "Base": ([], False), "OnBase": (["Base"], False)})
    plan = read_plan(outdir, image_parameter_prefix="/p-dev/images")
    assert (plan.ids(plan.foundation), plan.ids(plan.rest)) == (["Base", "OnBase"], ["Reader", "AfterReader"])


@pytest.mark.parametrize(
    ("stacks", "message"),
    [
        ({"A": (["B"], False), "B": (["A"], False)}, "a dependency cycle among ['A', 'B']"),
        ({}, "holds no stack"),
    ],
)
def test_a_broken_assembly_is_refused(tmp_path: Path, stacks: dict[str, tuple[list[str], bool]], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_plan(small_assembly(tmp_path, stacks), image_parameter_prefix="/p-dev/images")
    with pytest.raises(FileNotFoundError, match="run `make synth STAGE=<stage>` first"):
        read_plan(tmp_path / "nowhere", image_parameter_prefix="/p-dev/images")


def test_the_first_deploy_builds_images_and_seeds_before_the_stacks_that_need_them(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path
) -> None:
    deploy, cdk, notes = rig(account, config, plan, tmp_path)
    assert deploy.run() == 0, notes.getvalue()
    assert kinds(cdk.commands) == [
        f"cdk {' '.join(FOUNDATION)}", "git archive", "make demo", "make edge-bundle", f"cdk {' '.join(REST)}"]
    assert cdk.deployed == FOUNDATION + REST
    # The execution CodePipeline starts when the stack creates the pipeline (no source yet: it fails), then the one
    # the source upload triggers; nothing started by hand.
    assert (executions(account), account.pipelines.started) == (2, [])
    # Waits: the build is polled every POLL seconds on the fake clock until it succeeds (28 minutes).
    assert set(account.clock.sleeps) == {POLL}
    assert account.clock.now >= 28 * 60
    log = notes.getvalue()
    assert "monai-imaging-dev-images 00000002: InProgress at Build" in log
    assert "monai-imaging-dev-images 00000002: Succeeded (28 min)" in log
    tags = account.client("s3").get_object_tagging(Bucket=f"{PREFIX}-data-modelartifacts",
                                                   Key="models/spleen/model.tar.gz")["TagSet"]
    assert {"Key": "intended-use", "Value": "not-for-clinical-use"} in tags


def test_deploying_every_stack_at_once_fails_where_the_images_are_read(
    account: RehearsalAccount, plan: DeployPlan
) -> None:
    # Must-not twin: the order `cdk deploy --all` used (what make deploy did) on an empty account.
    cdk = FakeCdk(account, {s.stack_id: s.dependencies for s in plan.stacks}, print_line=lambda line: None)
    lines: list[str] = []
    cdk.print_line = lines.append
    assert cdk(["npx", "cdk", "deploy", *plan.ids(plan.stacks)]) == 1
    assert cdk.deployed == FOUNDATION
    assert "Unable to fetch parameters [/monai-imaging-dev/images/pytorch-inference/uri]" in lines[-1]


def test_a_second_run_after_a_failed_stack_resumes_without_building_or_seeding_again(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path
) -> None:
    deploy, cdk, _ = rig(account, config, plan, tmp_path)
    cdk.fail_stack_once = {"Approval"}
    with pytest.raises(DeployError, match=r"cdk deploy of Serving, .* failed .* run `make deploy STAGE=dev` again"):
        deploy.run()
    first = len(cdk.commands)
    again, _, notes = rig(account, config, plan, tmp_path)
    again.runner = cdk
    assert again.run() == 0
    # Only the two cdk deploys again: the images and the seeded objects are found in the account.
    assert kinds(cdk.commands[first:]) == [f"cdk {' '.join(FOUNDATION)}", f"cdk {' '.join(REST)}"]
    assert executions(account) == 2
    assert "every image is in ECR with its URI in SSM: nothing to build" in notes.getvalue()
    assert cdk.deployed[-4:] == ["Approval", "Inference", "Monitoring", "Edge"]


def test_a_run_stopped_while_the_pipeline_builds_waits_for_that_build_next_time(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path
) -> None:
    deploy, cdk, _ = rig(account, config, plan, tmp_path, pipeline_timeout_s=600.0)
    with pytest.raises(CommandFailedError, match=r"not finished after 600 s .* run `make deploy STAGE=dev` again"):
        deploy.run()
    again, _, notes = rig(account, config, plan, tmp_path)
    again.runner = cdk
    assert again.run() == 0
    assert "execution 00000002 of monai-imaging-dev-images is already running: waiting for it" in notes.getvalue()
    assert [k for k in kinds(cdk.commands) if k == "git archive"] == ["git archive"]  # one upload, one build
    assert executions(account) == 2


def test_a_failed_build_stops_the_deploy_with_the_failed_action(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path
) -> None:
    deploy, cdk, _ = rig(account, config, plan, tmp_path)
    account.pipelines.fail_next_build = True
    with pytest.raises(DeployError, match="Failed: Build/BuildAction failed: Build failed: docker build exited with 1"):
        deploy.run()
    assert cdk.deployed == FOUNDATION  # must not: no stack that needs the images


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-toolkit", "the CDKToolkit stack is missing in us-east-1: the account is not bootstrapped for CDK: run "
         "`make bootstrap STAGE=dev`"),
        ("old-toolkit", "the bootstrap stack is version 5, the templates need 6 or later"),
    ],
)
def test_an_account_that_is_not_bootstrapped_is_refused_before_anything_deploys(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path, damage: str, message: str
) -> None:
    if damage == "no-toolkit":
        account.client("cloudformation").delete_stack(StackName="CDKToolkit")
    else:
        account.client("ssm").put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="5", Overwrite=True)
    deploy, cdk, _ = rig(account, config, plan, tmp_path)
    with pytest.raises(DeployError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deploy.run()
    assert cdk.commands == []


def test_an_approved_package_is_served_instead_of_the_demo_model(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path
) -> None:
    bucket = f"{PREFIX}-data-modelartifacts"
    deploy, cdk, _ = rig(account, config, plan, tmp_path)
    cdk(["cdk", "deploy", "Data"])  # the bucket the approved package lives in
    account.client("s3").put_object(Bucket=bucket, Key="training/output/job-1/model.tar.gz", Body=b"trained model")
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=f"{PREFIX}-spleen")
    sagemaker.create_model_package(
        ModelPackageGroupName=f"{PREFIX}-spleen", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "image", "ModelDataUrl":
                                                f"s3://{bucket}/training/output/job-1/model.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/dicom"]})
    assert deploy.run() == 0
    served = account.client("s3").get_object(Bucket=bucket, Key="models/spleen/model.tar.gz")["Body"].read()
    assert served == b"trained model"
    # The demo model is still trained for the edge bundle (the edge stack is on by default), but never served.
    assert kinds(cdk.commands).count("make demo") == 1


def test_a_stack_left_in_progress_is_waited_for_before_cdk_deploy(
    account: RehearsalAccount, config: PlatformConfig, plan: DeployPlan, tmp_path: Path
) -> None:
    from moto.backends import get_backend

    deploy, cdk, notes = rig(account, config, plan, tmp_path)
    cdk(["cdk", "deploy", "Data"])
    [stack] = [s for s in get_backend("cloudformation")[ACCOUNT][REGION].stacks.values()
               if s.name == f"{PREFIX}-data"]
    stack.status = "UPDATE_IN_PROGRESS"

    def finish() -> None:
        if len(account.clock.sleeps) == 3:
            stack.status = "UPDATE_COMPLETE"

    account.clock.hooks.append(finish)
    assert deploy.run() == 0
    log = notes.getvalue()
    assert "monai-imaging-dev-data is UPDATE_IN_PROGRESS (an earlier run): waiting for it" in log
    assert "monai-imaging-dev-data is UPDATE_COMPLETE" in log
    assert account.clock.sleeps[:3] == [POLL] * 3
    assert kinds(cdk.commands)[1] == f"cdk {' '.join(FOUNDATION)}"  # after the wait, not before


def test_the_demo_bundle_carries_the_model_and_its_not_for_clinical_use_label(tmp_path: Path) -> None:
    import tarfile

    from model_code.segmentation.bundle import ModelBundle
    from testkit.models import save_threshold_model

    model_dir = save_threshold_model(tmp_path / "model")
    archive = package_demo_bundle(model_dir, tmp_path / "out" / "model.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        metadata = json.loads(tar.extractfile("configs/metadata.json").read())  # type: ignore[union-attr]
    assert {"configs/metadata.json", "configs/inference.json", "models/model.ts", "models/model.pt"} <= names
    assert metadata["intended_use"] == INTENDED_USE
    assert "Not for clinical use" in INTENDED_USE
    # What the endpoint's model_fn does with it: SageMaker unpacks it, the bundle reader loads it.
    unpacked = ModelBundle.load(archive, workdir=tmp_path / "unpacked")
    assert unpacked.description.name == ModelBundle.load(model_dir).description.name
    assert unpacked.metadata["intended_use"] == INTENDED_USE
    # Must not: a folder that is no bundle, or one whose network does not load.
    with pytest.raises(ModelDirectoryError, match=r"configs/metadata\.json is missing"):
        package_demo_bundle(tmp_path / "out", tmp_path / "again.tar.gz")
    (model_dir / "models/model.ts").write_bytes(b"not torchscript")
    with pytest.raises(ModelDirectoryError, match=r"model\.ts cannot be loaded as TorchScript"):
        package_demo_bundle(model_dir, tmp_path / "again.tar.gz")
