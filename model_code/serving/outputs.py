"""Publish a SEG beyond the response: write it under an S3 prefix, then optionally import it into HealthImaging.

HealthImaging imports every object under the input prefix, so each SEG gets a prefix of its own
(``<prefix>/<SOPInstanceUID>/seg.dcm``): one import job never picks up another request's SEG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_code.serving.clients import ServingClients
from model_code.serving.settings import S3Location, ServingSettings

SEG_FILE_NAME = "seg.dcm"


@dataclass(frozen=True)
class Published:
    seg_s3_uri: str | None = None
    import_job_id: str | None = None
    import_datastore_id: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "segS3Uri": self.seg_s3_uri,
            "importJobId": self.import_job_id,
            "importDatastoreId": self.import_datastore_id,
            "note": self.note,
        }


def publish_seg(
    seg_bytes: bytes,
    *,
    sop_instance_uid: str,
    request_datastore_id: str | None,
    settings: ServingSettings,
    clients: ServingClients,
) -> Published:
    """Write the SEG where the settings say; nothing configured -> nothing written."""
    if settings.seg_output is None:
        return Published()
    folder = S3Location(settings.seg_output.bucket, settings.seg_output.key(sop_instance_uid) + "/")
    key = folder.key(SEG_FILE_NAME)
    clients.s3().put_object(
        Bucket=folder.bucket, Key=key, Body=seg_bytes, ContentType="application/dicom"
    )
    seg_uri = f"s3://{folder.bucket}/{key}"
    if settings.import_role_arn is None or settings.import_output is None:
        return Published(seg_s3_uri=seg_uri)

    datastore_id = settings.import_datastore_id or request_datastore_id
    if datastore_id is None:
        return Published(
            seg_s3_uri=seg_uri,
            note="not imported into HealthImaging: the input did not come from a data store and "
            "HEALTHIMAGING_IMPORT_DATASTORE_ID is unset",
        )
    job = clients.medical_imaging().start_dicom_import_job(
        jobName=f"seg-{sop_instance_uid}"[:64],
        datastoreId=datastore_id,
        dataAccessRoleArn=settings.import_role_arn,
        # The SOP Instance UID is unique per SEG, so a retried request does not start a second import.
        clientToken=sop_instance_uid[-64:],
        inputS3Uri=folder.uri,
        outputS3Uri=settings.import_output.uri,
    )
    return Published(seg_s3_uri=seg_uri, import_job_id=job["jobId"], import_datastore_id=datastore_id)
