"""Imaging stack: encrypted data store, a narrowly scoped import role, ingestion functions and event rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.healthimaging.stack import (
    IMAGE_SET_CREATED,
    IMPORT_JOB_COMPLETED,
    IMPORT_JOB_FAILED,
    HealthImagingStack,
)
from tests.stacks.assembly import VARIANT_OVERRIDES, Assembly, as_list, output_name
from tests.stacks.scaffold import Scaffold, alone

STACK = "Imaging"  # the platform's construct ID for the HealthImaging stack


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        HealthImagingStack,
        STACK,
        keys=scaffold.keys,
        network=scaffold.network,
        inbox_bucket=scaffold.buckets["DicomInbox"],
        output_bucket=scaffold.buckets["ImportOutput"],
    )


assembly = alone(build)
variant_assembly = alone(build, VARIANT_OVERRIDES)


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_the_datastore_is_encrypted_with_the_platform_data_key(assembly: Assembly) -> None:
    datastore = assembly.one(STACK, "AWS::HealthImaging::Datastore", "Datastore")
    assert "KeysDataKey" in output_name(datastore["Properties"]["KmsKeyArn"])
    assert datastore["Properties"]["DatastoreName"] == "monai-imaging-dev-dicom"
    # Must not: the logs key (or an AWS-owned key, i.e. no KmsKeyArn) on patient images.
    assert "LogsKey" not in output_name(datastore["Properties"]["KmsKeyArn"])


def test_the_import_role_is_trusted_only_by_healthimaging_of_this_account(assembly: Assembly) -> None:
    role = assembly.one(STACK, "AWS::IAM::Role", "ImportRole")
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "medical-imaging.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_no_other_role_trusts_healthimaging(assembly: Assembly) -> None:
    # Must-not twin: only the import role may be assumed by the service.
    for logical_id, role in assembly.resources(STACK, "AWS::IAM::Role").items():
        if logical_id.startswith("ImportRole"):
            continue
        principals = [s["Principal"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
        # Function roles trust Lambda; the topic rules' publishing roles trust EventBridge.
        expected = "events" if "EventsRole" in logical_id else "lambda"
        assert principals == [{"Service": f"{expected}.amazonaws.com"}], logical_id


def import_role_statements(assembly: Assembly) -> dict[str, dict[str, Any]]:
    policy = assembly.one(STACK, "AWS::IAM::Policy", "ImportRoleDefaultPolicy")
    return {s["Sid"]: s for s in statements(policy)}


def test_the_import_role_reads_only_the_inbox_incoming_prefix(assembly: Assembly) -> None:
    by_sid = import_role_statements(assembly)
    read = by_sid["ReadInboxIncoming"]
    assert read["Action"] == "s3:GetObject"
    inbox_arn, suffix = read["Resource"]["Fn::Join"][1]
    assert "DicomInbox" in output_name(inbox_arn)
    assert suffix == "/incoming/*"
    listing = by_sid["ListInboxIncoming"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["incoming/*"]}}
    assert "DicomInbox" in output_name(listing["Resource"])


def test_the_import_role_writes_only_the_import_output_bucket(assembly: Assembly) -> None:
    by_sid = import_role_statements(assembly)
    write = by_sid["WriteImportOutput"]
    assert write["Action"] == "s3:PutObject"
    output_arn, suffix = write["Resource"]["Fn::Join"][1]
    assert "ImportOutput" in output_name(output_arn)
    assert suffix == "/*"


def test_the_import_role_has_no_wildcard_resource_or_action_and_nothing_else(assembly: Assembly) -> None:
    by_sid = import_role_statements(assembly)
    assert set(by_sid) == {"ListInboxIncoming", "ReadInboxIncoming", "ListImportOutput", "WriteImportOutput",
                           "UseDataKeyForBuckets"}
    for sid, statement in by_sid.items():
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in as_list(statement["Action"])), sid
        assert all(resource != "*" for resource in as_list(statement["Resource"])), sid
        rendered = json.dumps(statement["Resource"])
        # Must not: the training, model or inference buckets.
        assert not any(name in rendered for name in ("TrainingData", "ModelArtifacts", "Inference")), sid
    assert "KeysDataKey" in output_name(by_sid["UseDataKeyForBuckets"]["Resource"])


@pytest.mark.parametrize("name", ["StartImport", "ImportCompleted"])
def test_functions_run_in_the_vpc_with_a_dlq_encrypted_logs_and_reserved_concurrency(
    assembly: Assembly, name: str
) -> None:
    function = assembly.one(STACK, "AWS::Lambda::Function", name)["Properties"]
    assert function["Runtime"] == "python3.13"
    assert "S3Key" in function["Code"]  # a plain asset folder, not inline code
    assert function["VpcConfig"]["SubnetIds"]
    assert function["VpcConfig"]["SecurityGroupIds"]
    assert function["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0].startswith("DeadLetterQueue")
    assert function["ReservedConcurrentExecutions"] >= 1
    assert "KeysDataKey" in output_name(function["KmsKeyArn"])
    log_group_id = function["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = assembly.templates[STACK]["Resources"][log_group_id]
    assert "KeysLogsKey" in output_name(log_group["Properties"]["KmsKeyId"])
    assert log_group["DeletionPolicy"] == "Retain"


def test_the_dead_letter_queue_and_topics_are_kms_encrypted_and_tls_only(assembly: Assembly) -> None:
    queue = assembly.one(STACK, "AWS::SQS::Queue", "DeadLetterQueue")
    assert "KeysDataKey" in output_name(queue["Properties"]["KmsMasterKeyId"])
    topics = assembly.resources(STACK, "AWS::SNS::Topic")
    assert len(topics) == 3
    for logical_id, topic in topics.items():
        assert "KeysDataKey" in output_name(topic["Properties"]["KmsMasterKeyId"]), logical_id
    denies_http = [
        policy for policy in [*assembly.resources(STACK, "AWS::SNS::TopicPolicy").values(),
                              *assembly.resources(STACK, "AWS::SQS::QueuePolicy").values()]
        if any(s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements(policy))
    ]
    assert len(denies_http) == 4


def rule_patterns(assembly: Assembly) -> list[dict[str, Any]]:
    return [rule["Properties"]["EventPattern"] for rule in assembly.resources(STACK, "AWS::Events::Rule").values()]


@pytest.mark.parametrize("detail_type", [IMPORT_JOB_COMPLETED, IMPORT_JOB_FAILED, IMAGE_SET_CREATED])
def test_each_healthimaging_rule_matches_its_event_of_our_datastore_only(assembly: Assembly, detail_type: str) -> None:
    [pattern] = [p for p in rule_patterns(assembly) if p.get("detail-type") == [detail_type]]
    assert pattern["source"] == ["aws.medical-imaging"]
    assert pattern["detail"] == {"datastoreId": [{"Fn::GetAtt": ["Datastore", "DatastoreId"]}]}


def test_no_rule_matches_healthimaging_events_of_every_datastore(assembly: Assembly) -> None:
    patterns = [p for p in rule_patterns(assembly) if p["source"] == ["aws.medical-imaging"]]
    assert len(patterns) == 3
    assert all("datastoreId" in p.get("detail", {}) for p in patterns)


def test_rules_deliver_to_the_right_targets_with_a_dead_letter_queue(assembly: Assembly) -> None:
    targets = {}
    for rule in assembly.resources(STACK, "AWS::Events::Rule").values():
        [target] = rule["Properties"]["Targets"]
        assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("DeadLetterQueue")
        key = rule["Properties"]["EventPattern"]["detail-type"][0]
        arn = target["Arn"]
        targets[key] = arn["Fn::GetAtt"][0] if "Fn::GetAtt" in arn else arn["Ref"]
    assert targets["Object Created"].startswith("StartImport")
    assert targets[IMPORT_JOB_COMPLETED].startswith("ImportCompleted")
    assert targets[IMPORT_JOB_FAILED].startswith("ImportAlarmTopic")
    assert targets[IMAGE_SET_CREATED].startswith("ImageSetCreatedTopic")


@pytest.mark.parametrize(
    ("detail_type", "with_role"),
    [
        (IMPORT_JOB_FAILED, True),  # a data-key topic: published with the rule's own role
        (IMAGE_SET_CREATED, True),  # likewise
        (IMPORT_JOB_COMPLETED, False),  # a function: invoked through its resource policy, no role
    ],
)
def test_topic_rules_publish_with_their_own_role(assembly: Assembly, detail_type: str, with_role: bool) -> None:
    [rule] = [r for r in assembly.resources(STACK, "AWS::Events::Rule").values()
              if r["Properties"]["EventPattern"].get("detail-type") == [detail_type]]
    [target] = rule["Properties"]["Targets"]
    assert ("RoleArn" in target) is with_role
    if with_role:
        role_id = target["RoleArn"]["Fn::GetAtt"][0]
        [policy] = [p for p in assembly.resources(STACK, "AWS::IAM::Policy").values()
                    if {"Ref": role_id} in p["Properties"]["Roles"]]
        [kms] = [s for s in statements(policy) if "kms:GenerateDataKey*" in as_list(s["Action"])]
        assert "KeysDataKey" in output_name(kms["Resource"])


def test_only_a_manifest_in_a_batch_folder_of_the_inbox_starts_an_import(assembly: Assembly) -> None:
    [pattern] = [p for p in rule_patterns(assembly) if p["source"] == ["aws.s3"]]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"wildcard": "incoming/*/manifest.json"}]}
    [bucket_name] = pattern["detail"]["bucket"]["name"]
    assert "DicomInbox" in output_name(bucket_name)


def test_the_start_function_may_pass_only_the_import_role_and_only_to_healthimaging(assembly: Assembly) -> None:
    policy = assembly.one(STACK, "AWS::IAM::Policy", "StartImportServiceRoleDefaultPolicy")
    [pass_role] = [s for s in statements(policy) if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"]["Fn::GetAtt"][0].startswith("ImportRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "medical-imaging.amazonaws.com"}}
    [start] = [s for s in statements(policy) if s["Action"] == "medical-imaging:StartDICOMImportJob"]
    assert start["Resource"] == {"Fn::GetAtt": ["Datastore", "DatastoreArn"]}
    # Must not: the completion function starts nothing and passes no role.
    completed = assembly.one(STACK, "AWS::IAM::Policy", "ImportCompletedServiceRoleDefaultPolicy")
    actions = {a for s in statements(completed) for a in as_list(s["Action"])}
    assert not actions & {"iam:PassRole", "medical-imaging:StartDICOMImportJob"}


def test_the_completion_function_may_read_the_jobs_of_our_data_store(assembly: Assembly) -> None:
    # An Import Job Completed event without its S3 locations is completed from GetDICOMImportJob.
    completed = assembly.one(STACK, "AWS::IAM::Policy", "ImportCompletedServiceRoleDefaultPolicy")
    [job] = [s for s in statements(completed) if s["Action"] == "medical-imaging:GetDICOMImportJob"]
    assert job["Resource"] == {"Fn::GetAtt": ["Datastore", "DatastoreArn"]}
    # Must not: the start function, which has each job's locations from its own request, reads none.
    start = assembly.one(STACK, "AWS::IAM::Policy", "StartImportServiceRoleDefaultPolicy")
    assert "medical-imaging:GetDICOMImportJob" not in {a for s in statements(start) for a in as_list(s["Action"])}


@pytest.mark.parametrize("fixture", ["assembly", "variant_assembly"])
def test_outputs_name_the_datastore_and_topics(request: pytest.FixtureRequest, fixture: str) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    outputs = assembly.templates[STACK]["Outputs"]
    assert {"DatastoreId", "ImportRoleArn", "ImportSummaryTopicArn", "ImportAlarmTopicArn",
            "ImageSetCreatedTopicArn"} <= set(outputs)
    assert outputs["DatastoreId"]["Value"] == {"Fn::GetAtt": ["Datastore", "DatastoreId"]}
