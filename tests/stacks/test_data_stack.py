"""Data stack: every bucket private, TLS-only, versioned, logged, encrypted and retained; keys rotated and retained."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.data.stack import DataStack
from tests.stacks.assembly import VARIANT_OVERRIDES, Assembly
from tests.stacks.scaffold import Scaffold, alone

PATIENT_DATA_BUCKETS = {"DicomInbox", "ImportOutput", "TrainingData", "ModelArtifacts", "Inference"}


def build(scaffold: Scaffold) -> None:
    # The data stack takes only the configuration.
    scaffold.add(DataStack, "Data")


assembly = alone(build)
variant_assembly = alone(build, VARIANT_OVERRIDES)


def buckets(assembly: Assembly) -> dict[str, dict[str, Any]]:
    return assembly.resources("Data", "AWS::S3::Bucket")


def bucket_named(assembly: Assembly, name: str) -> tuple[str, dict[str, Any]]:
    matches = [(k, v) for k, v in buckets(assembly).items() if k.startswith(name)]
    assert len(matches) == 1, f"expected one bucket named {name}, found {[k for k, _ in matches]}"
    return matches[0]


def test_there_is_one_bucket_per_kind_of_data(assembly: Assembly) -> None:
    names = {logical_id.rstrip("0123456789ABCDEF").removesuffix("Bucket") for logical_id in buckets(assembly)}
    assert names == PATIENT_DATA_BUCKETS | {"AccessLogs"}


def test_every_bucket_is_retained_private_and_versioned(assembly: Assembly) -> None:
    for logical_id, bucket in buckets(assembly).items():
        assert bucket["DeletionPolicy"] == "Retain", logical_id
        assert bucket["UpdateReplacePolicy"] == "Retain", logical_id
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id


@pytest.mark.parametrize("name", sorted(PATIENT_DATA_BUCKETS))
def test_patient_data_buckets_use_the_customer_managed_data_key(assembly: Assembly, name: str) -> None:
    _, bucket = bucket_named(assembly, name)
    rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    default = rule["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"]["Fn::GetAtt"][0].startswith("KeysDataKey")


def test_only_the_access_log_bucket_uses_s3_managed_keys(assembly: Assembly) -> None:
    # Must not: S3 server access logging cannot deliver to an SSE-KMS bucket, so this one is the exception.
    _, bucket = bucket_named(assembly, "AccessLogs")
    default = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert default["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


@pytest.mark.parametrize("name", sorted(PATIENT_DATA_BUCKETS))
def test_patient_data_buckets_log_access_to_the_log_bucket(assembly: Assembly, name: str) -> None:
    log_bucket_id, _ = bucket_named(assembly, "AccessLogs")
    _, bucket = bucket_named(assembly, name)
    assert bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket_id}


def test_the_access_log_bucket_does_not_log_into_itself(assembly: Assembly) -> None:
    _, bucket = bucket_named(assembly, "AccessLogs")
    assert "LoggingConfiguration" not in bucket["Properties"]


def _denies(statement: dict[str, Any]) -> bool:
    return statement["Effect"] == "Deny" and statement["Principal"] == {"AWS": "*"}


def test_every_bucket_policy_denies_plain_http_and_old_tls(assembly: Assembly) -> None:
    policies = assembly.resources("Data", "AWS::S3::BucketPolicy")
    covered = set()
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            _denies(s) and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        ), "a bucket accepts requests without TLS"
        assert any(
            _denies(s) and s.get("Condition") == {"NumericLessThan": {"s3:TlsVersion": 1.2}} for s in statements
        ), "a bucket accepts TLS older than 1.2"
        covered.add(policy["Properties"]["Bucket"]["Ref"])
    assert covered == set(buckets(assembly)), "a bucket has no TLS-only policy"


def _rule(bucket: dict[str, Any], rule_id: str) -> dict[str, Any]:
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    return rules[rule_id]


@pytest.mark.parametrize(
    ("fixture", "noncurrent_days", "output_days"),
    [
        ("assembly", 90, 30),  # cdk.json defaults
        ("variant_assembly", 400, 14),  # -c overrides flow into the lifecycle rules
    ],
)
def test_lifecycle_rules_follow_configuration(
    request: pytest.FixtureRequest, fixture: str, noncurrent_days: int, output_days: int
) -> None:
    assembly = request.getfixturevalue(fixture)
    for name in PATIENT_DATA_BUCKETS:
        _, bucket = bucket_named(assembly, name)
        rule = _rule(bucket, "expire-noncurrent-versions")
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": noncurrent_days}
    _, inference = bucket_named(assembly, "Inference")
    assert _rule(inference, "expire-output")["ExpirationInDays"] == output_days
    assert _rule(inference, "expire-output")["Prefix"] == "output/"


def test_studies_move_to_infrequent_access_but_models_do_not(assembly: Assembly) -> None:
    _, inbox = bucket_named(assembly, "DicomInbox")
    assert _rule(inbox, "to-infrequent-access")["Transitions"][0]["StorageClass"] == "STANDARD_IA"
    _, models = bucket_named(assembly, "ModelArtifacts")
    rule_ids = {r["Id"] for r in models["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert "to-infrequent-access" not in rule_ids


def test_keys_rotate_and_are_retained(assembly: Assembly) -> None:
    keys = assembly.resources("Data", "AWS::KMS::Key")
    assert len(keys) == 2
    for logical_id, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, logical_id
        assert key["DeletionPolicy"] == "Retain", logical_id


def test_logs_key_admits_cloudwatch_logs_of_this_account_only(assembly: Assembly) -> None:
    (key,) = [v for k, v in assembly.resources("Data", "AWS::KMS::Key").items() if k.startswith("KeysLogsKey")]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (logs_statement,) = [s for s in statements if s.get("Sid") == "AllowCloudWatchLogsOfThisAccount"]
    assert logs_statement["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert "kms:EncryptionContext:aws:logs:arn" in logs_statement["Condition"]["ArnLike"]
    # Must not: the data key is not usable by the logs service.
    (data_key,) = [v for k, v in assembly.resources("Data", "AWS::KMS::Key").items() if k.startswith("KeysDataKey")]
    assert not any("logs" in str(s.get("Principal")) for s in data_key["Properties"]["KeyPolicy"]["Statement"])


def test_services_may_use_the_data_key_only_for_this_account(assembly: Assembly) -> None:
    data_key = assembly.one("Data", "AWS::KMS::Key", "KeysDataKey")
    by_service = {
        s["Principal"]["Service"]: s for s in data_key["Properties"]["KeyPolicy"]["Statement"]
        if "Service" in s["Principal"]
    }
    # Must: EventBridge (dead letters of the HealthImaging and approval rules) and CloudWatch (rollback alarms).
    assert set(by_service) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    for statement in by_service.values():
        assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
        # Must not: a statement without the confused-deputy guard (CDK's own for an SNS target had none).
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


@pytest.mark.parametrize(("bucket", "enabled"), [("DicomInbox", True), ("ImportOutput", False), ("Inference", False)])
def test_only_the_inbox_sends_its_object_events_to_eventbridge(assembly: Assembly, bucket: str, enabled: bool) -> None:
    properties = assembly.one("Data", "AWS::S3::Bucket", bucket)["Properties"]
    notifications = properties.get("NotificationConfiguration", {})
    assert notifications.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled", False) is enabled
