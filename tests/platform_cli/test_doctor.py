"""monai-platform doctor against the rehearsal account (testkit/aws_account.py): a healthy platform passes, and each
kind of damage is reported with its fix; every call doctor makes is a read."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from platform_cli.main import main
from platform_cli.project import Deployment
from platform_cli.runtime import Runtime
from testkit.aws_account import ACCOUNT, REGION, RehearsalAccount, deploy_platform, rehearsal_account

PREFIX = "monai-imaging-dev"


@pytest.fixture
def account() -> Iterator[RehearsalAccount]:
    with rehearsal_account() as account:
        deploy_platform(account)
        yield account


def doctor(account: RehearsalAccount, *extra: str) -> tuple[int, str]:
    stdout = io.StringIO()

    def factory(deployment: Deployment, args: Any) -> Runtime:
        return Runtime(deployment=deployment, session=account.session, client_overrides=account.overrides,
                       sleep=account.clock.sleep, clock=account.clock.clock, stdout=stdout, stderr=io.StringIO())

    code = main(["doctor", "--stage", "dev", "--project", "monai-imaging", *extra], runtime_factory=factory)
    return code, stdout.getvalue()


def test_a_healthy_platform_passes_with_the_demo_model_flagged(account: RehearsalAccount) -> None:
    code, out = doctor(account)
    assert code == 0, out
    assert "FAIL" not in out
    lines = out.splitlines()
    assert lines[-1].endswith("0 failed, 1 warnings")
    for fragment in (
        "data store 0123456789abcdef0123456789abcdef is ACTIVE",
        f"endpoint {PREFIX}-spleen-async is InService, 1 instance(s)",
        f"trail arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{PREFIX}-audit is logging",
        "records all 18 probed data events",
        f"rollback alarm {PREFIX}-spleen-async-deploy-modelerrors is in place",
        "6 alarms in place",
    ):
        assert any(fragment in line for line in lines), fragment
    assert "serves the demo model" in out
    assert "NOT FOR CLINICAL USE" in out


def set_endpoint(account: RehearsalAccount, *, status: str, reason: str = "", instances: int | None = None) -> None:
    from moto.backends import get_backend

    endpoint = get_backend("sagemaker")[ACCOUNT][REGION].endpoints[f"{PREFIX}-spleen-async"]
    endpoint.endpoint_status = status
    setattr(endpoint, "failure_reason", reason or None)  # noqa: B010 - moto types it as always None
    if instances is not None:
        for variant in endpoint.production_variants:
            variant["CurrentInstanceCount"] = instances


DAMAGE: list[tuple[str, Callable[[RehearsalAccount], None], str, str]] = [
    # (case, damage, the finding's line, its fix)
    ("trail stopped", lambda a: a.break_trail(), "FAIL  Audit       trail arn:aws:cloudtrail:us-east-1:123456789012:trail/"
     "monai-imaging-dev-audit is not logging", "aws cloudtrail start-logging --name"),
    ("trail narrowed", lambda a: a.break_trail(), "does not record 15 of 18 data events",
     "add advanced event selectors for the buckets"),
    ("endpoint failed", lambda a: a.break_endpoint("did not pass the ping health check"),
     "FAIL  Serving     endpoint monai-imaging-dev-spleen-async is Failed: did not pass the ping health check",
     "read the endpoint's CloudWatch log"),
    ("alarm deleted", lambda a: a.break_alarm(), "rollback alarm monai-imaging-dev-spleen-async-deploy-modelerrors is "
     "missing", "aws cloudformation detect-stack-drift --stack-name monai-imaging-dev-approval"),
    ("data store deleted", lambda a: a.break_datastore(), "FAIL  Imaging     data store "
     "0123456789abcdef0123456789abcdef is DELETED", "then import the studies again"),
    ("dead letters", lambda a: a.break_dead_letters(), "warn  Inference   2 message(s) wait in "
     "monai-imaging-dev-inference-dlq", "then redrive"),
    ("image gone", lambda a: a.client("ecr").batch_delete_image(
        repositoryName=f"{PREFIX}/training", imageIds=[{"imageTag": "0123456789abcdef0123456789abcdef01234567"}]),
     "FAIL  Images      image 123456789012.dkr.ecr.us-east-1.amazonaws.com/monai-imaging-dev/training", "run the image "
     "pipeline again"),
    ("stack deleted", lambda a: a.client("cloudformation").delete_stack(StackName=f"{PREFIX}-monitoring"),
     "FAIL  Monitoring  stack monai-imaging-dev-monitoring does not exist", "run `make deploy STAGE=dev`"),
    ("model archive gone", lambda a: a.client("s3").delete_object(
        Bucket=f"{PREFIX}-data-modelartifacts", Key="models/spleen/model.tar.gz"),
     "FAIL  Serving     model archive s3://monai-imaging-dev-data-modelartifacts/models/spleen/model.tar.gz",
     "seeds the demo model"),
]


def test_each_kind_of_damage_is_reported_with_its_fix(account: RehearsalAccount) -> None:
    healthy = doctor(account)[1]
    for _, damage, line, _ in DAMAGE:
        assert line not in healthy  # must not: the healthy platform has no such finding
        damage(account)
    code, out = doctor(account)
    assert code == 1
    lines = out.splitlines()
    for case, _, line, fix in DAMAGE:
        assert line in out, f"{case}: {out}"
        fix_line = lines[next(i for i, text in enumerate(lines) if line in text) + 1]
        assert fix_line.strip().startswith("fix: "), case
        assert fix in fix_line, case


def test_a_rolled_back_canary_and_an_endpoint_at_zero_are_reported_as_such(account: RehearsalAccount) -> None:
    set_endpoint(account, status="InService", instances=0)
    code, out = doctor(account)
    assert (code, "is InService, scaled to zero (wakes on the first request)" in out) == (0, True)
    assert "was rolled back" not in out
    # SageMaker's answer after a canary whose new model never passed /ping: the old model serves, the reason stays.
    set_endpoint(account, status="InService", reason="The primary container for production variant AllTraffic did "
                 "not pass the ping health check.", instances=1)
    code, out = doctor(account)
    assert code == 0
    assert "warn  Serving     the last update of monai-imaging-dev-spleen-async failed and was rolled back: The " \
           "primary container" in out


def test_an_organization_trail_without_healthimaging_selectors_fails_the_audit_check(account: RehearsalAccount) -> None:
    # A typical organization trail: basic selectors, every S3 object of the account; HealthImaging needs advanced ones.
    cloudtrail = account.client("cloudtrail")
    arn = cloudtrail.create_trail(Name="org-audit", S3BucketName=f"{PREFIX}-audit-logfiles")["TrailARN"]
    cloudtrail.put_event_selectors(TrailName="org-audit", EventSelectors=[{
        "ReadWriteType": "All", "IncludeManagementEvents": True,
        "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}])
    cloudtrail.start_logging(Name="org-audit")
    # What the Audit stack holds with platform.audit.organizationTrailArn: the trail's ARN, no trail of its own.
    cloudformation = account.client("cloudformation")
    cloudformation.delete_stack(StackName=f"{PREFIX}-audit")
    cloudformation.create_stack(StackName=f"{PREFIX}-audit", TemplateBody=json.dumps({
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"TrailArn": {"Value": arn}}}))
    code, out = doctor(account)
    assert code == 1
    assert f"ok    Audit       trail {arn} is logging" in out
    [line] = [text for text in out.splitlines() if "does not record" in text]
    assert "does not record 3 of 18 data events" in line
    assert "GetImageSetMetadata on arn:aws:medical-imaging" in line


def test_every_call_doctor_makes_is_a_read(account: RehearsalAccount) -> None:
    operations: list[str] = []

    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    account.session.events.register("before-parameter-build", record)
    for client in account.overrides.values():
        client.meta.events.register("before-parameter-build", record)
    assert doctor(account)[0] == 0
    assert len(operations) > 30
    writes = sorted({op for op in operations if not op.startswith(("Describe", "Get", "List", "Head"))})
    assert writes == []
    assert {"GetTrailStatus", "GetEventSelectors", "GetDatastore", "DescribeEndpoint", "DescribeAlarms"} <= set(
        operations)


def test_json_output_lists_every_finding(account: RehearsalAccount) -> None:
    code, out = doctor(account, "--json")
    findings = json.loads(out)
    assert code == 0
    assert {f["status"] for f in findings} == {"ok", "warn"}
    assert {f["stack"] for f in findings} >= {"Data", "Imaging", "Audit", "Serving", "Approval", "Monitoring", "Edge"}
