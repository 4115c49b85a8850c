"""Audit stack: one trail, KMS-encrypted and validated, data events of the patient-data buckets and the data store,
delivered to a retained, access-logged bucket and to CloudWatch Logs; none with an organization trail."""

from __future__ import annotations

from typing import Any

from stacks.audit.stack import AuditStack
from stacks.props import AuditedResources
from tests.stacks.assembly import AUDIT_OVERRIDES, ORGANIZATION_TRAIL_ARN, Assembly, flatten
from tests.stacks.scaffold import Scaffold, alone

STACK = "Audit"
PATIENT_BUCKETS = ("DicomInbox", "ImportOutput", "TrainingData", "ModelArtifacts", "Inference")


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        AuditStack,
        STACK,
        logs_key=scaffold.keys.logs_key,
        access_logs_bucket=scaffold.access_logs_bucket,
        audited=AuditedResources(
            patient_buckets=tuple(scaffold.buckets[name] for name in PATIENT_BUCKETS),
            log_buckets=(scaffold.access_logs_bucket,),
            datastore_arns=(scaffold.dicom_store.datastore_arn,),
        ),
    )


assembly = alone(build)
audit_assembly = alone(build, AUDIT_OVERRIDES)
no_management_assembly = alone(build, {"platform.audit.managementEvents": "false"})


def trail(assembly: Assembly) -> dict[str, Any]:
    return dict(assembly.one(STACK, "AWS::CloudTrail::Trail")["Properties"])


def selectors(assembly: Assembly) -> dict[str, list[dict[str, Any]]]:
    return {s["Name"]: flatten(s["FieldSelectors"]) for s in trail(assembly)["AdvancedEventSelectors"]}


def test_the_trail_is_encrypted_validated_multi_region_and_streamed_to_logs(assembly: Assembly) -> None:
    props = flatten(trail(assembly))
    assert props["TrailName"] == "monai-imaging-dev-audit"
    assert props["EnableLogFileValidation"] is True
    assert props["IsLogging"] is True
    assert (props["IsMultiRegionTrail"], props["IncludeGlobalServiceEvents"]) == (True, True)
    assert props["KMSKeyId"].startswith("<TrailKey")
    assert props["CloudWatchLogsLogGroupArn"].startswith("<AuditLogs")
    # Advanced selectors only: a trail takes one kind, and HealthImaging has no basic one.
    assert "EventSelectors" not in props


def test_the_selectors_record_management_events_every_patient_bucket_and_the_data_store(assembly: Assembly) -> None:
    found = selectors(assembly)
    assert found["Management events"] == [{"Field": "eventCategory", "Equals": ["Management"]}]
    objects = {f["Field"]: f for f in found["Object reads and writes in the patient-data buckets"]}
    assert objects["resources.type"]["Equals"] == ["AWS::S3::Object"]
    starts = objects["resources.ARN"]["StartsWith"]
    assert len(starts) == len(PATIENT_BUCKETS)
    # An object ARN is <bucket ARN>/<key>: each prefix ends in "/" so bucket "x" does not match "x-other".
    assert all(prefix.endswith("/") for prefix in starts)
    assert sorted(p.split("<output:PublishOutputFnGetAtt")[1].split("Bucket")[0] for p in starts) == sorted(
        PATIENT_BUCKETS
    )
    logs = {f["Field"]: f for f in found["Access-log buckets: every object call but the log deliveries"]}
    assert logs["eventName"] == {"Field": "eventName", "NotEquals": ["PutObject"]}
    image_sets = {f["Field"]: f for f in found["HealthImaging image set calls (who read which study)"]}
    assert image_sets["resources.type"]["Equals"] == ["AWS::MedicalImaging::Imageset"]
    [prefix] = image_sets["resources.ARN"]["StartsWith"]
    assert "DatastoreDatastoreArn" in prefix
    assert prefix.endswith("/imageset/")
    store = {f["Field"]: f for f in found["HealthImaging data store calls (imports, searches)"]}
    assert store["resources.type"]["Equals"] == ["AWS::MedicalImaging::Datastore"]


def test_without_management_events_the_trail_records_data_events_only(no_management_assembly: Assembly) -> None:
    found = selectors(no_management_assembly)
    assert "Management events" not in found
    assert "Object reads and writes in the patient-data buckets" in found  # must: the data events stay


def test_log_files_go_to_a_retained_versioned_access_logged_kms_bucket(assembly: Assembly) -> None:
    bucket = assembly.one(STACK, "AWS::S3::Bucket", "AuditLogFiles")
    props = flatten(bucket["Properties"])
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "AccessLogs" in props["LoggingConfiguration"]["DestinationBucketName"]
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"].startswith("<TrailKey")
    expiry = [r for r in props["LifecycleConfiguration"]["Rules"] if r.get("Id") == "expire-log-files"]
    assert expiry[0]["ExpirationInDays"] == 2192


def test_only_this_trail_may_encrypt_with_the_key(assembly: Assembly) -> None:
    key = assembly.one(STACK, "AWS::KMS::Key", "TrailKey")
    statements = {s.get("Sid"): s for s in flatten(key["Properties"]["KeyPolicy"]["Statement"])}
    encrypt = statements["AllowCloudTrailToEncryptLogFiles"]
    assert encrypt["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert encrypt["Action"] == "kms:GenerateDataKey*"
    assert encrypt["Condition"]["StringEquals"]["aws:SourceArn"].endswith(":trail/monai-imaging-dev-audit")
    assert key["DeletionPolicy"] == "Retain"
    assert flatten(key["Properties"])["EnableKeyRotation"] is True


def test_the_parameter_names_the_trail_doctor_checks(assembly: Assembly, audit_assembly: Assembly) -> None:
    parameter = assembly.one(STACK, "AWS::SSM::Parameter")["Properties"]
    assert parameter["Name"] == "/monai-imaging-dev/audit/trail-arn"
    assert flatten(parameter["Value"]).startswith("<AuditTrail")
    # Must not: with an organization trail there is no trail, key or bucket of the platform's own.
    types = {r["Type"] for r in audit_assembly.templates[STACK]["Resources"].values()}
    assert types == {"AWS::SSM::Parameter"}
    assert audit_assembly.one(STACK, "AWS::SSM::Parameter")["Properties"]["Value"] == ORGANIZATION_TRAIL_ARN
    assert audit_assembly.templates[STACK]["Outputs"]["TrailArn"]["Value"] == ORGANIZATION_TRAIL_ARN
