"""The composition root (stacks/platform.py): which stack's resources each stack is handed, the deployed stack
names, and that no stack takes another stack. Each stack's own behaviour is tested from its props alone."""

from __future__ import annotations

import inspect
import json
import typing
from typing import Any

import aws_cdk as cdk
import pytest

import stacks.platform
from stacks.config import build_config
from stacks.platform import Platform, build_platform
from tests.stacks.assembly import Assembly, cdk_json_context, flatten

PREFIX = "monai-imaging-dev"


def producer(value: Any) -> tuple[str, str]:
    """(stack name, output name) of the cross-stack reference ``value``."""
    output = value["Fn::GetStackOutput"]
    return str(output["StackName"]), str(output["OutputName"])


def test_construct_ids_and_stack_names_are_the_deployed_ones(assembly: Assembly) -> None:
    # The classes were renamed (HealthImagingStack, ContainerImagesStack); the IDs are the deployed stacks'
    # identity, and a new ID would replace a whole stack on the next deploy.
    manifest = json.loads((assembly.outdir / "manifest.json").read_text())
    names = {
        artifact_id: artifact["properties"]["stackName"]
        for artifact_id, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    ids = ("Data", "Network", "Imaging", "Audit", "Images", "Serving", "Training", "Approval", "Inference", "Monitoring",
           "Edge")
    assert names == {stack_id: f"{PREFIX}-{stack_id.lower()}" for stack_id in ids}


@pytest.mark.parametrize(
    ("stack", "type_", "prefix", "path", "expected"),
    [
        # (consumer, resource, logical-ID prefix, property path, (producing stack, output fragment))
        ("Imaging", "AWS::HealthImaging::Datastore", "Datastore", ("KmsKeyArn",), ("data", "KeysDataKey")),
        ("Serving", "AWS::SageMaker::Model", "Model", ("VpcConfig", "Subnets", 0), ("network", "VpcPrivateSubnet1")),
        ("Inference", "AWS::Events::Rule", "ImageSetCreatedRule",
         ("EventPattern", "detail", "datastoreId", 0), ("imaging", "DatastoreDatastoreId")),
        ("Inference", "AWS::SNS::Subscription", "FailureQueue", ("TopicArn",), ("serving", "InferenceFailed")),
        ("Approval", "AWS::IAM::Policy", "EndpointReadsRollbackAlarms", ("Roles", 0), ("serving", "EndpointRole")),
        ("Monitoring", "AWS::CloudWatch::Alarm", "ImportJobFailures", ("Dimensions", 0, "Value"),
         ("imaging", "ImportJobFailedRule")),
        ("Monitoring", "AWS::CloudWatch::Alarm", "BuildImagesFailures", ("Dimensions", 0, "Value"),
         ("images", "BuildImages")),
        ("Edge", "AWS::IAM::ManagedPolicy", "DeviceArtifactRead",
         ("PolicyDocument", "Statement", 1, "Resource"), ("data", "KeysDataKey")),
        # The audit trail: the data stack's access-log bucket, its log group the data stack's logs key.
        ("Audit", "AWS::S3::Bucket", "AuditLogFiles", ("LoggingConfiguration", "DestinationBucketName"),
         ("data", "AccessLogs")),
        ("Audit", "AWS::Logs::LogGroup", "AuditLogs", ("KmsKeyId",), ("data", "KeysLogsKey")),
    ],
)
def test_each_stack_is_handed_the_resources_of_the_right_stack(
    assembly: Assembly, stack: str, type_: str, prefix: str, path: tuple[Any, ...], expected: tuple[str, str]
) -> None:
    value: Any = assembly.one(stack, type_, prefix)["Properties"]
    for part in path:
        value = value[part]
    name, output = producer(value)
    assert name == f"{PREFIX}-{expected[0]}"
    assert expected[1] in output


def test_the_dead_letter_alarms_watch_the_queues_of_every_stack_that_has_one(assembly: Assembly) -> None:
    found = assembly.resources("Monitoring", "AWS::CloudWatch::Alarm").values()
    by_name = {a["Properties"]["AlarmName"].removeprefix(f"{PREFIX}-"): a["Properties"] for a in found}
    stacks = {name: producer(alarm["Dimensions"][0]["Value"])[0] for name, alarm in by_name.items()
              if name.endswith("Depth")}
    assert stacks == {
        "ImagingDeadLettersDepth": f"{PREFIX}-imaging",
        "ApprovalDeadLettersDepth": f"{PREFIX}-approval",
        "InferenceDeadLettersDepth": f"{PREFIX}-inference",
        "InferenceFailuresDepth": f"{PREFIX}-inference",
    }


def test_the_endpoint_role_of_serving_is_the_one_approval_passes(assembly: Assembly) -> None:
    policy = assembly.one("Approval", "AWS::IAM::Policy", "DeployApprovedServiceRoleDefaultPolicy")
    by_sid = {s.get("Sid"): s for s in flatten(policy["Properties"]["PolicyDocument"]["Statement"])}
    assert by_sid["PassEndpointRole"]["Resource"].startswith("<output:PublishOutputFnGetAttEndpointRole")


def test_the_trail_records_the_data_stacks_buckets_and_the_imaging_data_store(assembly: Assembly) -> None:
    [trail] = assembly.resources("Audit", "AWS::CloudTrail::Trail").values()
    sources = {
        selector["Name"]: sorted(
            producer(value.get("Fn::Join", ["", [value]])[1][0])
            for field in selector["FieldSelectors"] if field["Field"] == "resources.ARN"
            for value in field.get("StartsWith", field.get("Equals", []))
        )
        for selector in trail["Properties"]["AdvancedEventSelectors"] if selector["Name"] != "Management events"
    }
    buckets = sorted(output for _, output in sources["Object reads and writes in the patient-data buckets"])
    assert [b.split("FnGetAtt")[1].split("Bucket")[0] for b in buckets] == sorted(
        ["DicomInbox", "ImportOutput", "TrainingData", "ModelArtifacts", "Inference"]
    )
    assert all(name == f"{PREFIX}-data" for name, _ in sources["Object reads and writes in the patient-data buckets"])
    [(name, output)] = sources["Access-log buckets: every object call but the log deliveries"]
    assert (name, "AccessLogs" in output) == (f"{PREFIX}-data", True)
    [(name, output)] = sources["HealthImaging image set calls (who read which study)"]
    assert (name, "DatastoreArn" in output) == (f"{PREFIX}-imaging", True)


def test_edge_disabled_builds_no_edge_stack() -> None:
    app = cdk.App(context={**cdk_json_context(), "platform.edge.enabled": "false"})
    platform = build_platform(app, build_config(app.node.get_all_context()))
    assert platform.edge is None
    assert app.node.try_find_child("Edge") is None


def platform_stack_classes() -> set[type[cdk.Stack]]:
    classes = set()
    for hint in typing.get_type_hints(Platform).values():
        for candidate in (hint, *typing.get_args(hint)):  # EdgeStack | None
            if isinstance(candidate, type) and issubclass(candidate, cdk.Stack):
                classes.add(candidate)
    return classes


def test_no_stack_takes_another_stack() -> None:
    # Narrow props (stacks/props.py) only: a stack parameter would let one stack reach inside another.
    classes = platform_stack_classes()
    assert len(classes) == 11  # must: every stack of the platform is looked at
    for cls in classes:
        for name, hint in typing.get_type_hints(cls.__init__).items():
            stacks_taken = [p for p in (hint, *typing.get_args(hint)) if isinstance(p, type) and issubclass(p, cdk.Stack)]
            assert not stacks_taken, f"{cls.__name__}({name}=...) takes a stack: pass the props it uses instead"


def test_build_platform_has_no_type_ignore() -> None:
    # The props are typed end to end; an ignore would hide a stack taking something it should not.
    assert "type: ignore" not in inspect.getsource(stacks.platform)
