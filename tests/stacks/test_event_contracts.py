"""Every EventBridge rule the platform synthesizes, matched against AWS's documented sample events by moto's pattern
matcher (tests/stacks/contracts/events.py), and the handlers fed those samples in both of the shapes AWS's sources
disagree on (HealthImaging's imagesetId / imageSetId; Import Job Completed with and without its S3 locations)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stacks.approval.runtime import deploy_approved
from stacks.healthimaging.runtime import import_completed, start_import
from stacks.inference.runtime import import_seg, request_inference
from tests.stacks.assembly import Assembly
from tests.stacks.contracts.events import matches, rules, sample, with_fields
from tests.stacks.contracts.resolve import ResolvedAssembly
from tests.stacks.fake_aws import stubbed_client

ASSEMBLIES = ("assembly", "variant_assembly", "codestar_assembly", "mme_assembly", "import_assembly")
Case = tuple[str, dict[str, Any], bool]  # (what, event, the rule must match)
OTHER_ID = "0" * 32


def _s3(pattern: dict[str, Any]) -> list[Case]:
    published = sample("s3-object-created.json")
    bucket = pattern["detail"]["bucket"]["name"][0]
    ours = with_fields(published, detail__bucket__name=bucket)
    return [
        ("as published (another bucket)", published, False),
        ("a batch manifest", with_fields(ours, detail__object__key="incoming/study-42/manifest.json"), True),
        ("a DICOM file of the batch", with_fields(ours, detail__object__key="incoming/study-42/1.dcm"), False),
        ("a manifest outside incoming/", with_fields(ours, detail__object__key="other/study-42/manifest.json"), False),
        # EventBridge's wildcard spans "/": the handler refuses nested batches itself (start_import.batch_from_key).
        ("a nested manifest", with_fields(ours, detail__object__key="incoming/a/b/manifest.json"), True),
    ]


def _pipeline(pattern: dict[str, Any]) -> list[Case]:
    published = sample("codepipeline-pipeline-execution-failed.json")
    ours = with_fields(published, detail__pipeline=pattern["detail"]["pipeline"][0])
    return [("as published (another pipeline)", published, False), ("ours, FAILED", ours, True),
            ("ours, SUCCEEDED", with_fields(ours, detail__state="SUCCEEDED"), False)]


def _model_package(pattern: dict[str, Any]) -> list[Case]:
    published = sample("sagemaker-model-package-state-change.json")
    ours = with_fields(published, detail__ModelPackageGroupName=pattern["detail"]["ModelPackageGroupName"][0])
    return [("as published (another group, Rejected)", published, False), ("our group, Rejected", ours, False),
            ("our group, Approved", with_fields(ours, detail__ModelApprovalStatus="Approved"), True)]


def _healthimaging(fixture: str) -> Callable[[dict[str, Any]], list[Case]]:
    def cases(pattern: dict[str, Any]) -> list[Case]:
        published = sample(fixture)
        ours = with_fields(published, detail__datastoreId=pattern["detail"]["datastoreId"][0])
        out = [("as published (another data store)", published, False), ("our data store", ours, True)]
        if "imagesetId" in published["detail"]:
            schema = with_fields(ours)
            schema["detail"]["imageSetId"] = schema["detail"].pop("imagesetId")
            out.append(("our data store, the schema's imageSetId", schema, True))
        if "outputS3Uri" in published["detail"]:
            bare = with_fields(ours)
            for field in ("inputS3Uri", "outputS3Uri"):
                del bare["detail"][field]
            out.append(("our data store, no S3 locations", bare, True))
        out.append(("another detail type", with_fields(ours, **{"detail-type": "Import Job Submitted"}), False))
        return out
    return cases


CASES: dict[tuple[str, str], Callable[[dict[str, Any]], list[Case]]] = {
    ("aws.s3", "Object Created"): _s3,
    ("aws.codepipeline", "CodePipeline Pipeline Execution State Change"): _pipeline,
    ("aws.sagemaker", "SageMaker Model Package State Change"): _model_package,
    ("aws.medical-imaging", "Import Job Completed"): _healthimaging("healthimaging-import-job-completed.json"),
    ("aws.medical-imaging", "Import Job Failed"): _healthimaging("healthimaging-import-job-failed.json"),
    ("aws.medical-imaging", "Image Set Created"): _healthimaging("healthimaging-image-set-created.json"),
}


@pytest.mark.parametrize("assembly_name", ASSEMBLIES)
def test_every_rule_matches_the_documented_events_it_is_for_and_no_others(
    request: pytest.FixtureRequest, assembly_name: str
) -> None:
    built: Assembly = request.getfixturevalue(assembly_name)
    found = rules(ResolvedAssembly.load(built.outdir))
    assert found
    failures = []
    for name, pattern in sorted(found.items()):
        kind = (pattern["source"][0], pattern["detail-type"][0])
        assert kind in CASES, (f"{name} matches {kind}: add the AWS page's sample event to "
                               "tests/stacks/contracts/fixtures/events/ (with its URL) and its cases to CASES")
        for what, event, expected in CASES[kind](pattern):
            if matches(pattern, event) != expected:
                failures.append(f"{name}: {what}: expected {'a match' if expected else 'no match'}")
    assert failures == [], "\n".join(failures)


def test_the_matcher_refuses_an_operator_it_does_not_implement() -> None:
    event = sample("s3-object-created.json")
    with pytest.raises(ValueError, match="which moto's matcher does not implement"):
        matches({"source": ["aws.s3"], "detail": {"bucket": {"name": [{"not-an-operator": "x"}]}}}, event)
    # Must: an operator it implements is evaluated (and can refuse the event).
    assert not matches({"source": ["aws.s3"], "detail": {"bucket": {"name": [{"prefix": "nope"}]}}}, event)


# -- consumers of the documented events ----------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["imagesetId", "imageSetId"])  # the developer guide's; the schema's
def test_image_set_created_in_both_spellings_names_the_image_set(spelling: str) -> None:
    event = sample("healthimaging-image-set-created.json")
    event["detail"][spelling] = event["detail"].pop("imagesetId")
    ref = request_inference.image_set_from_event(event)
    assert (ref.datastore_id, ref.image_set_id) == ("bbc4f3cccbae4095a34170fddc19b13d",
                                                    "5b3a711878c34d40e888253319388649")


def test_import_job_completed_as_documented_is_summarized_from_its_own_locations() -> None:
    detail = sample("healthimaging-import-job-completed.json")["detail"]
    with stubbed_client("medical-imaging") as (client, _stubber):  # no answer queued: any call fails
        assert import_completed.job_locations(client, detail) == detail


def test_import_job_completed_without_locations_is_completed_from_the_job() -> None:
    detail = sample("healthimaging-import-job-completed.json")["detail"]
    bare = {k: v for k, v in detail.items() if k not in ("inputS3Uri", "outputS3Uri")}
    with stubbed_client("medical-imaging") as (client, stubber):
        stubber.add_response("get_dicom_import_job", {"jobProperties": {
            "jobId": detail["jobId"], "jobName": detail["jobName"], "jobStatus": "COMPLETED",
            "datastoreId": detail["datastoreId"], "dataAccessRoleArn": "arn:aws:iam::111122223333:role/import",
            "inputS3Uri": detail["inputS3Uri"], "outputS3Uri": detail["outputS3Uri"]}},
            {"datastoreId": detail["datastoreId"], "jobId": detail["jobId"]})
        assert import_completed.job_locations(client, bare) == detail


def test_the_documented_model_package_approval_deploys_our_package_only() -> None:
    event = with_fields(sample("sagemaker-model-package-state-change.json"), detail__ModelApprovalStatus="Approved")
    settings = deploy_approved.Settings(
        endpoint_name="e", model_package_group="versionedmp-p-idy6c3e1fiqj", artifacts_bucket="b",
        serving_model_key="models/spleen/model.tar.gz", multi_model_prefix="models/triton/", triton_model_name="m",
        triton_config="", triton_model_py="", deployment_strategy="canary", rollback_alarms=())
    assert deploy_approved.approved_package_arn(event, settings) == event["detail"]["ModelPackageArn"]
    other = deploy_approved.Settings(**{**settings.__dict__, "model_package_group": "ours"})
    assert deploy_approved.approved_package_arn(event, other) is None


def test_the_documented_object_created_event_names_the_batch() -> None:
    event = with_fields(sample("s3-object-created.json"), detail__object__key="incoming/study-42/manifest.json")
    batch = start_import.batch_from_key(event["detail"]["bucket"]["name"], event["detail"]["object"]["key"],
                                        incoming_prefix="incoming/")
    assert (batch.name, batch.prefix) == ("study-42", "incoming/study-42/")


def test_the_documented_async_success_notification_is_read() -> None:
    message = sample("sagemaker-async-success-notification.json")
    ids = ("d" * 32, "f" * 32)
    message["requestParameters"]["inputLocation"] = f"s3://inference/input/{ids[0]}/{ids[1]}.json"
    message["responseParameters"]["outputLocation"] = f"s3://inference/output/{ids[0]}/{ids[1]}/seg.dcm"
    result = import_seg.parse_notification(json.dumps(message))
    assert result is not None
    assert (result.datastore_id, result.image_set_id, result.output_key) == (
        ids[0], ids[1], f"output/{ids[0]}/{ids[1]}/seg.dcm")
    # Must not: the sample as published (placeholder locations) is refused with what is wrong in it.
    with pytest.raises(import_seg.NotificationError, match=r"requestParameters\.inputLocation must look like s3://"):
        import_seg.parse_notification(json.dumps(sample("sagemaker-async-success-notification.json")))
