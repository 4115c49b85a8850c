"""import_completed: the summary of a finished job from its output manifest, success and failure lists."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.healthimaging.runtime import import_completed
from tests.stacks.healthimaging_runtime.conftest import OUTPUT, Aws

DATASTORE_ID = "0123456789abcdef0123456789abcdef"
JOB_ID = "5d08d05d6aab2a27922d6260926077d4"


def job_folder(job_id: str = JOB_ID) -> str:
    # HealthImaging nests each job's results in a folder named after the data store and the job.
    return f"study-42/{DATASTORE_ID}-DicomImport-{job_id}/"


def event(job_id: str = JOB_ID) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": "Import Job Completed",
        "source": "aws.medical-imaging",
        "detail": {
            "imagingVersion": "1.0",
            "datastoreId": DATASTORE_ID,
            "jobId": job_id,
            "jobName": "study-42",
            "jobStatus": "COMPLETED",
            "inputS3Uri": "s3://inbox-bucket/incoming/study-42/",
            "outputS3Uri": f"s3://{OUTPUT}/study-42/",
        },
    }


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def success(file: str, image_set: str) -> dict[str, Any]:
    return {"inputFile": f"incoming/study-42/{file}", "importResponse": {"imageSetId": image_set, "isPrimary": True}}


def failure(file: str, kind: str, message: str) -> dict[str, Any]:
    return {"inputFile": f"incoming/study-42/{file}", "exception": {"exceptionType": kind, "message": message}}


def write_job_output(
    aws: Aws, *, successes: list[dict[str, Any]], failures: list[dict[str, Any]] | None, job_id: str = JOB_ID
) -> None:
    folder = job_folder(job_id)
    manifest = {"jobSummary": {"jobId": job_id, "datastoreId": DATASTORE_ID, "numberOfScannedFiles": 5,
                               "numberOfImportedFiles": len(successes), "numberOfGeneratedImageSets": 2}}
    aws.s3.put_object(Bucket=OUTPUT, Key=folder + "job-output-manifest.json", Body=json.dumps(manifest).encode())
    aws.s3.put_object(Bucket=OUTPUT, Key=folder + "SUCCESS/success.ndjson", Body=ndjson(successes))
    if failures is not None:
        aws.s3.put_object(Bucket=OUTPUT, Key=folder + "FAILURE/failure.ndjson", Body=ndjson(failures))


def handle(aws: Aws, job_id: str = JOB_ID, evt: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = import_completed.Settings(summary_topic_arn=aws.topic_arn)
    return import_completed.handle(evt or event(job_id), s3=aws.s3, sns=aws.sns, medical_imaging=aws.medical_imaging,
                                   settings=settings)


SET_A, SET_B = "a" * 32, "b" * 32


@pytest.mark.parametrize(
    ("successes", "failures", "image_sets", "failed"),
    [
        # Two series into two image sets, one file refused: COMPLETED still carries failures.
        (
            [success("s1/1.dcm", SET_A), success("s1/2.dcm", SET_A), success("s2/1.dcm", SET_B)],
            [failure("s3/1.dcm", "ValidationException", "unsupported transfer syntax 1.2.840.10008.1.2.4.100")],
            [SET_A, SET_B],
            [{"file": "incoming/study-42/s3/1.dcm",
              "reason": "ValidationException: unsupported transfer syntax 1.2.840.10008.1.2.4.100"}],
        ),
        # The batch's own manifest.json, imported with the study and refused as non-DICOM, is not a failed file.
        (
            [success("s1/1.dcm", SET_A)],
            [failure("manifest.json", "ValidationException", "not a DICOM P10 file")],
            [SET_A],
            [],
        ),
        # No FAILURE folder at all: nothing failed.
        ([success("s1/1.dcm", SET_A)], None, [SET_A], []),
        # Every file refused: no image set, every reason listed.
        (
            [],
            [failure("x.dcm", "ValidationException", "not a DICOM P10 file"), {"inputFile": "y.dcm"}],
            [],
            [{"file": "incoming/study-42/x.dcm", "reason": "ValidationException: not a DICOM P10 file"},
             {"file": "y.dcm", "reason": "unknown"}],
        ),
    ],
)
def test_the_summary_lists_image_sets_counts_and_failed_files(
    aws: Aws,
    successes: list[dict[str, Any]],
    failures: list[dict[str, Any]] | None,
    image_sets: list[str],
    failed: list[dict[str, str]],
) -> None:
    write_job_output(aws, successes=successes, failures=failures)
    summary = handle(aws)
    assert summary["imageSetIds"] == image_sets
    assert summary["importedFileCount"] == len(successes)
    assert summary["failedFileCount"] == len(failed)
    assert summary["failedFiles"] == failed
    assert summary["outputS3Uri"] == f"s3://{OUTPUT}/{job_folder()}"
    assert summary["jobSummary"]["numberOfScannedFiles"] == 5
    [published] = aws.published()
    assert published["message"] == summary
    assert published["subject"] == f"HealthImaging import study-42: {len(successes)} imported, {len(failed)} failed"


def test_the_batch_manifest_name_is_the_one_start_import_waits_for() -> None:
    from stacks.healthimaging.runtime import start_import

    assert import_completed.BATCH_MANIFEST_NAME == start_import.MANIFEST_NAME


def test_the_job_named_in_the_event_is_summarized_when_an_output_prefix_holds_several(aws: Aws) -> None:
    other_job = "0" * 32
    write_job_output(aws, successes=[success("old.dcm", SET_B)], failures=None, job_id=other_job)
    write_job_output(aws, successes=[success("new.dcm", SET_A)], failures=None)
    assert handle(aws)["imageSetIds"] == [SET_A]
    assert handle(aws, other_job)["imageSetIds"] == [SET_B]


def test_a_missing_output_manifest_raises_so_the_event_is_retried(aws: Aws) -> None:
    with pytest.raises(import_completed.OutputNotFoundError, match=f"job-output-manifest.json for job {JOB_ID}"):
        handle(aws)
    assert aws.published() == []


def test_the_failure_list_is_capped_and_the_rest_counted(aws: Aws) -> None:
    many = [failure(f"{i}.dcm", "ValidationException", "bad") for i in range(import_completed.MAX_LISTED_FAILURES + 3)]
    write_job_output(aws, successes=[], failures=many)
    summary = handle(aws)
    assert summary["failedFileCount"] == len(many)
    assert len(summary["failedFiles"]) == import_completed.MAX_LISTED_FAILURES
    assert summary["failedFilesNotListed"] == 3


def test_an_event_without_the_output_location_is_completed_from_the_job(aws: Aws) -> None:
    # The detail as the EventBridge schema may deliver it: no inputS3Uri/outputS3Uri.
    evt = event()
    for field in ("inputS3Uri", "outputS3Uri"):
        del evt["detail"][field]
    write_job_output(aws, successes=[success("s1/1.dcm", SET_A)], failures=None)
    aws.stubber.add_response(
        "get_dicom_import_job",
        {"jobProperties": {"jobId": JOB_ID, "jobName": "study-42", "jobStatus": "COMPLETED",
                           "datastoreId": DATASTORE_ID, "dataAccessRoleArn": "arn:aws:iam::123456789012:role/import",
                           "inputS3Uri": "s3://inbox-bucket/incoming/study-42/", "outputS3Uri": f"s3://{OUTPUT}/study-42/"}},
        {"datastoreId": DATASTORE_ID, "jobId": JOB_ID},
    )
    summary = handle(aws, evt=evt)
    assert summary["imageSetIds"] == [SET_A]
    assert summary["inputS3Uri"] == "s3://inbox-bucket/incoming/study-42/"
    assert summary["outputS3Uri"] == f"s3://{OUTPUT}/{job_folder()}"


def test_an_event_with_the_output_location_asks_healthimaging_nothing(aws: Aws) -> None:
    # Must-not twin: the developer guide's shape carries the locations; no GetDICOMImportJob is queued, and the
    # Stubber fails on any call it did not expect.
    write_job_output(aws, successes=[success("s1/1.dcm", SET_A)], failures=None)
    assert handle(aws)["imageSetIds"] == [SET_A]
