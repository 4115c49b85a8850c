"""``import``: upload + manifest into the moto inbox, then the job found and awaited through the Stubber."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom.data
import pytest

from stacks.healthimaging.runtime.start_import import parse_manifest
from tests.platform_cli.fakes import DATASTORE_ID, IMPORT_ALARM_TOPIC, Platform

BATCH = "study-1"
JOB_ID = "a" * 32
OTHER_JOB_ID = "b" * 32
ROLE = "arn:aws:iam::123456789012:role/import"
IMAGE_SETS = ["1" * 32, "2" * 32]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Two real DICOM files (pydicom's test data) in nested folders, and one file that is not DICOM."""
    folder = tmp_path / "study"
    (folder / "series" / "sub").mkdir(parents=True)
    shutil.copyfile(str(pydicom.data.get_testdata_file("CT_small.dcm")), folder / "series" / "1.dcm")
    shutil.copyfile(str(pydicom.data.get_testdata_file("MR_small.dcm")), folder / "series" / "sub" / "2.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    return folder


@pytest.fixture
def deployed(platform: Platform, data_stack: dict[str, str], imaging_stack: dict[str, str]) -> Platform:
    return platform


def inbox(platform: Platform) -> str:
    return platform.outputs["Data"]["DicomInboxBucketName"]


def output_bucket(platform: Platform) -> str:
    return platform.outputs["Data"]["ImportOutputBucketName"]


def summary(job_id: str, *, days_ago: int = 0, status: str = "SUBMITTED") -> dict[str, Any]:
    return {
        "jobId": job_id,
        "jobName": BATCH,
        "jobStatus": status,
        "datastoreId": DATASTORE_ID,
        "submittedAt": datetime.now(UTC) - timedelta(days=days_ago),
    }


def properties(platform: Platform, job_id: str, status: str, *, batch: str = BATCH, message: str = "") -> dict:
    props = {
        "jobProperties": {
            "jobId": job_id,
            "jobName": BATCH,
            "jobStatus": status,
            "datastoreId": DATASTORE_ID,
            "dataAccessRoleArn": ROLE,
            "inputS3Uri": f"s3://{inbox(platform)}/incoming/{batch}/",
            "outputS3Uri": f"s3://{output_bucket(platform)}/{batch}/",
        }
    }
    if message:
        props["jobProperties"]["message"] = message
    return props


def expect(platform: Platform, operation: str, response: dict[str, Any], job_id: str | None = None) -> None:
    params = {"datastoreId": DATASTORE_ID} | ({"jobId": job_id} if job_id else {})
    platform.stubber.add_response(operation, response, params)


def write_job_output(platform: Platform, *, image_sets: list[str], failures: int = 0) -> None:
    """What HealthImaging writes under the job's output URI: a folder per job with the manifest and ndjson."""
    folder = f"{BATCH}/{DATASTORE_ID}-DicomImport-{JOB_ID}/"
    put = platform.s3.put_object
    put(Bucket=output_bucket(platform), Key=folder + "job-output-manifest.json", Body=json.dumps({"jobSummary": {}}))
    success = [{"inputFile": f"f{i}.dcm", "importResponse": {"imageSetId": s}} for i, s in enumerate(image_sets)]
    put(Bucket=output_bucket(platform), Key=folder + "SUCCESS/success.ndjson",
        Body="\n".join(json.dumps(line) for line in success))
    failed = [{"inputFile": f"bad{i}.dcm", "exception": {"exceptionType": "ValidationException",
                                                         "message": "missing SOPInstanceUID"}} for i in range(failures)]
    if failed:
        put(Bucket=output_bucket(platform), Key=folder + "FAILURE/failure.ndjson",
            Body="\n".join(json.dumps(line) for line in failed))


def test_uploads_then_waits_and_prints_image_sets(
    deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = deployed
    write_job_output(platform, image_sets=IMAGE_SETS)
    expect(platform, "list_dicom_import_jobs", {"jobSummaries": []})  # the Lambda has not started it yet
    expect(platform, "list_dicom_import_jobs", {"jobSummaries": [
        summary("c" * 32, days_ago=1),  # same name, submitted before this upload: never looked at
        summary(OTHER_JOB_ID),  # same name, another upload's input: looked at and skipped
        summary(JOB_ID),
    ]})
    expect(platform, "get_dicom_import_job", properties(platform, OTHER_JOB_ID, "IN_PROGRESS", batch="other"),
           OTHER_JOB_ID)
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "IN_PROGRESS"), JOB_ID)
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "IN_PROGRESS"), JOB_ID)
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "COMPLETED"), JOB_ID)

    code = platform.run("import", str(study), "--batch", BATCH, "--poll-interval", "5")

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.split() == IMAGE_SETS
    assert platform.clock.sleeps == [5, 5]
    keys = [o["Key"] for o in platform.s3.list_objects_v2(Bucket=inbox(platform))["Contents"]]
    assert sorted(keys) == [f"incoming/{BATCH}/manifest.json", f"incoming/{BATCH}/series/1.dcm",
                            f"incoming/{BATCH}/series/sub/2.dcm"]  # notes.txt skipped
    assert "skipping 1 files that are not DICOM" in err
    body = platform.s3.get_object(Bucket=inbox(platform), Key=f"incoming/{BATCH}/manifest.json")["Body"].read()
    manifest = parse_manifest(body)  # the imaging stack's Lambda accepts it
    assert manifest.expected_file_count == 2
    uploaded = platform.s3.get_object(Bucket=inbox(platform), Key=f"incoming/{BATCH}/series/1.dcm")["Body"].read()
    assert uploaded == (study / "series" / "1.dcm").read_bytes()


def test_json_summary(deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platform = deployed
    write_job_output(platform, image_sets=IMAGE_SETS[:1])
    expect(platform, "list_dicom_import_jobs", {"jobSummaries": [summary(JOB_ID)]})
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "COMPLETED"), JOB_ID)
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "COMPLETED"), JOB_ID)
    assert platform.run("import", str(study), "--batch", BATCH, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["jobId"], document["imageSetIds"], document["importedFileCount"]) == (JOB_ID, IMAGE_SETS[:1], 1)


@pytest.mark.parametrize(
    ("status", "failures", "message", "expected"),
    [
        # the job failed: its message and the failed files are the reasons
        ("FAILED", 2, "Access denied to the input", ["FAILED: Access denied to the input", "bad0.dcm: Validation"]),
        # completed, but some files were rejected: still a failure, and the image sets are printed
        ("COMPLETED", 1, "", ["completed but 1 of 3 files failed", "bad0.dcm: ValidationException: missing"]),
    ],
)
def test_failed_imports_exit_1_with_reasons(
    deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str],
    status: str, failures: int, message: str, expected: list[str],
) -> None:
    platform = deployed
    write_job_output(platform, image_sets=IMAGE_SETS, failures=failures)
    expect(platform, "list_dicom_import_jobs", {"jobSummaries": [summary(JOB_ID)]})
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, status, message=message), JOB_ID)
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, status, message=message), JOB_ID)
    assert platform.run("import", str(study), "--batch", BATCH) == 1
    out, err = capsys.readouterr()
    assert out.split() == IMAGE_SETS
    for fragment in expected:
        assert fragment in err


def test_failed_job_without_report(deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platform = deployed  # no output written: the job failed before writing anything
    expect(platform, "list_dicom_import_jobs", {"jobSummaries": [summary(JOB_ID)]})
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "FAILED", message="role"), JOB_ID)
    expect(platform, "get_dicom_import_job", properties(platform, JOB_ID, "FAILED", message="role"), JOB_ID)
    assert platform.run("import", str(study), "--batch", BATCH) == 1
    assert f"import job {JOB_ID} FAILED: role" in capsys.readouterr().err


def test_timeout_points_at_the_alarm_topic(deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platform = deployed
    for _ in range(4):  # polls at 0, 10, 20 and 25 s: the last one at the deadline
        expect(platform, "list_dicom_import_jobs", {"jobSummaries": []})
    assert platform.run("import", str(study), "--batch", BATCH, "--timeout", "25", "--poll-interval", "10") == 1
    err = capsys.readouterr().err
    assert "not finished after 25 s (last status: waiting for the import job to start)" in err
    assert IMPORT_ALARM_TOPIC in err
    assert platform.clock.sleeps == [10, 10, 5]


def test_no_wait_only_uploads(deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert deployed.run("import", str(study), "--batch", BATCH, "--no-wait") == 0  # no HealthImaging call stubbed
    assert capsys.readouterr().out.strip() == BATCH
    assert deployed.s3.head_object(Bucket=inbox(deployed), Key=f"incoming/{BATCH}/manifest.json")


def test_default_batch_name_is_folder_and_time(deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert deployed.run("import", str(study), "--no-wait") == 0
    batch = capsys.readouterr().out.strip()
    assert batch.startswith("study-")
    assert batch.endswith("Z")
    assert deployed.s3.head_object(Bucket=inbox(deployed), Key=f"incoming/{batch}/manifest.json")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--batch", "bad name"], "batch name 'bad name' must be 1-200 letters"),  # the Lambda's own rule
        (["--batch", BATCH, "--job-name", "x" * 65], "'jobName' must be 1-64"),  # the manifest's own rule
    ],
)
def test_bad_names_exit_2_before_uploading(
    deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    assert deployed.run("import", str(study), *extra) == 2
    assert expected in capsys.readouterr().err
    assert deployed.s3.list_objects_v2(Bucket=inbox(deployed)).get("KeyCount") == 0


def test_existing_batch_is_refused(deployed: Platform, study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deployed.s3.put_object(Bucket=inbox(deployed), Key=f"incoming/{BATCH}/old.dcm", Body=b"x")
    assert deployed.run("import", str(study), "--batch", BATCH) == 2
    assert f"batch '{BATCH}' already exists" in capsys.readouterr().err
    assert deployed.s3.list_objects_v2(Bucket=inbox(deployed))["KeyCount"] == 1


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: root / "missing", "is not a folder"),
        (lambda root: root, "no DICOM Part 10 files"),  # a folder with only a text file
    ],
)
def test_unusable_folder_exits_2(
    deployed: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, expected: str
) -> None:
    (tmp_path / "readme.txt").write_text("no images")
    assert deployed.run("import", str(make(tmp_path)), "--batch", BATCH) == 2
    assert expected in capsys.readouterr().err
