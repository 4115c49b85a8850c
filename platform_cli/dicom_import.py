"""``monai-platform import DIR``: upload a folder of DICOM as one inbox batch, then wait for its import job.

The inbox protocol is the imaging stack's (docs/imaging.md): files under ``incoming/<batch>/``, then
``incoming/<batch>/manifest.json`` last, which starts the import. Batch names, the manifest and the job report
are validated and read with the imaging stack's own runtime code, so the CLI cannot drift from it.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from platform_cli import outputs
from platform_cli.errors import CommandFailedError, UsageError
from platform_cli.polling import wait_for
from platform_cli.runtime import Runtime
from stacks.healthimaging.runtime import import_completed, start_import

# stacks/data/stack.py INBOX_INCOMING_PREFIX (a test keeps them equal; importing the stack would load aws_cdk).
INBOX_INCOMING_PREFIX = "incoming/"
DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# ListDICOMImportJobs has no input URI: candidates are jobs of our name submitted after the upload began,
# with this much allowance for the difference between this machine's clock and AWS's.
CLOCK_SKEW = timedelta(minutes=5)
DONE = ("COMPLETED", "FAILED")


@dataclass(frozen=True)
class Upload:
    path: Path
    key: str


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        parents=parents,
        help="upload a folder of DICOM files and import it into HealthImaging",
        description="Uploads every DICOM Part 10 file under DIR to incoming/<batch>/ of the inbox bucket, then "
        "the manifest that starts the import; waits for the import job and prints the image set IDs.",
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of DICOM files (searched recursively)")
    parser.add_argument("--batch", help="batch name, 1-200 of A-Z a-z 0-9 . _ - (default: <folder>-<UTC time>)")
    parser.add_argument("--job-name", help="import job name, 1-64 of A-Z a-z 0-9 . _ / # - (default: the batch)")
    parser.add_argument("--no-wait", action="store_true", help="return after the manifest is uploaded")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the job (default 3600)")
    parser.add_argument("--poll-interval", type=float, default=15, help="seconds between status checks")
    parser.add_argument("--json", action="store_true", help="print the import summary as JSON")
    parser.set_defaults(run=run)


def default_batch_name(folder: Path, now: datetime) -> str:
    stem = _UNSAFE.sub("-", folder.resolve().name).strip("-.") or "batch"
    return f"{stem[:180]}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file (preamble + "DICM"): the only files HealthImaging imports."""
    with path.open("rb") as handle:
        head = handle.read(DICOM_MAGIC_OFFSET + len(DICOM_MAGIC))
    return head[DICOM_MAGIC_OFFSET:] == DICOM_MAGIC


def plan_uploads(folder: Path, prefix: str) -> tuple[list[Upload], list[Path]]:
    """(DICOM files with their keys, skipped files), in a stable order."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder: pass the folder that holds the study's DICOM files")
    uploads: list[Upload] = []
    skipped: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if is_dicom(path):
            uploads.append(Upload(path=path, key=prefix + path.relative_to(folder).as_posix()))
        else:
            skipped.append(path)
    if not uploads:
        raise UsageError(f"no DICOM Part 10 files under {folder} ({len(skipped)} other files): nothing to import")
    return uploads, skipped


def build_manifest(*, job_name: str | None, file_count: int) -> bytes:
    document: dict[str, Any] = {"schemaVersion": start_import.SCHEMA_VERSIONS[-1], "expectedFileCount": file_count}
    if job_name:
        document["jobName"] = job_name
    body = json.dumps(document).encode()
    try:
        start_import.parse_manifest(body)  # the Lambda's own validation: a bad --job-name fails here, not there
    except start_import.ManifestError as error:
        raise UsageError(f"{error} (--job-name)") from error
    return body


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    started = datetime.now(UTC)
    bucket = runtime.output(outputs.DICOM_INBOX_BUCKET)
    batch_name = args.batch or default_batch_name(args.folder, started)
    manifest_key = f"{INBOX_INCOMING_PREFIX}{batch_name}/{start_import.MANIFEST_NAME}"
    try:
        batch = start_import.batch_from_key(bucket, manifest_key, incoming_prefix=INBOX_INCOMING_PREFIX)
    except start_import.ManifestError as error:
        raise UsageError(f"{error} (--batch)") from error
    uploads, skipped = plan_uploads(args.folder, batch.prefix)
    manifest = build_manifest(job_name=args.job_name, file_count=len(uploads))
    job_name = start_import.job_name(batch, start_import.parse_manifest(manifest))
    if skipped:
        runtime.note(f"skipping {len(skipped)} files that are not DICOM Part 10 (e.g. {skipped[0]})")

    s3 = runtime.client("s3")
    # The import's client token is derived from the batch, so a reused batch would never import again.
    if s3.list_objects_v2(Bucket=bucket, Prefix=batch.prefix, MaxKeys=1).get("KeyCount", 0):
        raise UsageError(f"batch {batch.name!r} already exists in s3://{bucket}/{batch.prefix}: pass a new --batch")

    total = sum(upload.path.stat().st_size for upload in uploads)
    with runtime.progress(total=total, desc=f"upload {batch.name}", unit="B", unit_scale=True) as bar:
        for upload in uploads:
            s3.upload_file(str(upload.path), bucket, upload.key, Callback=bar.update)
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=manifest, ContentType="application/json")
    runtime.note(f"uploaded {len(uploads)} files and s3://{bucket}/{manifest_key}")
    if args.no_wait:
        runtime.emit(batch.name)
        return 0

    datastore_id = runtime.output(outputs.DATASTORE_ID)
    job = find_and_wait(
        runtime,
        datastore_id=datastore_id,
        job_name=job_name,
        input_uri=f"s3://{bucket}/{batch.prefix}",
        submitted_after=started - CLOCK_SKEW,
        timeout_s=args.timeout,
        interval_s=args.poll_interval,
        on_timeout=(
            "if no job started, the manifest was probably rejected: read the message on the topic "
            f"{runtime.output(outputs.IMPORT_ALARM_TOPIC)}; otherwise wait longer with a larger --timeout"
        ),
    )
    return report(runtime, job, as_json=args.json)


def find_and_wait(
    runtime: Runtime,
    *,
    datastore_id: str,
    job_name: str,
    input_uri: str,
    submitted_after: datetime,
    timeout_s: float,
    interval_s: float,
    on_timeout: str,
) -> dict[str, Any]:
    """The finished job's properties (GetDICOMImportJob) for the import of ``input_uri``."""
    medical_imaging = runtime.client("medical-imaging")
    found: dict[str, str] = {}

    def poll() -> tuple[dict[str, Any] | None, str]:
        if "jobId" not in found:
            job_id = find_job(
                medical_imaging,
                datastore_id=datastore_id,
                job_name=job_name,
                input_uri=input_uri,
                submitted_after=submitted_after,
            )
            if job_id is None:
                return None, "waiting for the import job to start"
            found["jobId"] = job_id
        properties = medical_imaging.get_dicom_import_job(datastoreId=datastore_id, jobId=found["jobId"])[
            "jobProperties"
        ]
        status = properties["jobStatus"]
        return (properties if status in DONE else None), status

    return wait_for(
        runtime,
        poll,
        what=f"import {job_name}",
        timeout_s=timeout_s,
        interval_s=interval_s,
        on_timeout=on_timeout,
    )


def find_job(
    medical_imaging: Any, *, datastore_id: str, job_name: str, input_uri: str, submitted_after: datetime
) -> str | None:
    """The ID of the job importing ``input_uri``, or None while it has not been started."""
    token: str | None = None
    while True:
        page = medical_imaging.list_dicom_import_jobs(
            datastoreId=datastore_id, **({"nextToken": token} if token else {})
        )
        for summary in page.get("jobSummaries", []):
            submitted = summary.get("submittedAt")
            if summary["jobName"] != job_name or (submitted is not None and submitted < submitted_after):
                continue
            # The same job name may be reused by other uploads: the input URI tells ours apart.
            properties = medical_imaging.get_dicom_import_job(datastoreId=datastore_id, jobId=summary["jobId"])[
                "jobProperties"
            ]
            if properties.get("inputS3Uri", "").rstrip("/") == input_uri.rstrip("/"):
                return str(summary["jobId"])
        token = page.get("nextToken")
        if not token:
            return None


def report(runtime: Runtime, job: dict[str, Any], *, as_json: bool) -> int:
    """Print the image set IDs (stdout) and every failure (stderr); exit 1 unless every file imported."""
    try:
        summary = import_completed.summarize(runtime.client("s3"), job)
    except import_completed.OutputNotFoundError as error:
        if job["jobStatus"] == "COMPLETED":
            raise CommandFailedError(f"import job {job['jobId']} completed without its report: {error}") from error
        summary = None  # a job that failed early may write no report at all
    if as_json:
        runtime.emit(json.dumps(summary or {"jobId": job["jobId"], "jobStatus": job["jobStatus"]}, indent=2))
    elif summary:
        for image_set_id in summary["imageSetIds"]:
            runtime.emit(image_set_id)

    if job["jobStatus"] == "FAILED":
        reasons = [job.get("message") or "no message", *_file_failures(summary)]
        raise CommandFailedError(f"import job {job['jobId']} FAILED: " + "; ".join(reasons))
    assert summary is not None
    if summary["failedFileCount"]:
        raise CommandFailedError(
            f"import job {job['jobId']} completed but {summary['failedFileCount']} of "
            f"{summary['failedFileCount'] + summary['importedFileCount']} files failed: "
            + "; ".join(_file_failures(summary))
            + f" (report: {summary['outputS3Uri']})"
        )
    runtime.note(f"imported {summary['importedFileCount']} files into {len(summary['imageSetIds'])} image sets")
    return 0


def _file_failures(summary: dict[str, Any] | None) -> list[str]:
    if not summary:
        return []
    listed = [f"{item['file']}: {item['reason']}" for item in summary["failedFiles"]]
    if summary["failedFilesNotListed"]:
        listed.append(f"and {summary['failedFilesNotListed']} more")
    return listed
