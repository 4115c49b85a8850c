"""Serving settings: environment variable names as constants, parsed once into a frozen object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Where the SEG goes when a caller asks for JSON (s3://bucket/prefix/); unset: not written.
SEG_OUTPUT_S3_URI = "SEG_OUTPUT_S3_URI"
# With a role, the SEG written under SEG_OUTPUT_S3_URI is imported back into HealthImaging.
HEALTHIMAGING_IMPORT_ROLE_ARN = "HEALTHIMAGING_IMPORT_ROLE_ARN"
# The data store SEGs are imported into; unset: the data store of the request (HealthImaging input only).
HEALTHIMAGING_IMPORT_DATASTORE_ID = "HEALTHIMAGING_IMPORT_DATASTORE_ID"
# Where HealthImaging writes the import job's report (required with an import role).
HEALTHIMAGING_IMPORT_OUTPUT_S3_URI = "HEALTHIMAGING_IMPORT_OUTPUT_S3_URI"
# Endpoint overrides for local runs (a loopback HealthImaging stand-in, a local S3).
HEALTHIMAGING_ENDPOINT_URL = "HEALTHIMAGING_ENDPOINT_URL"
S3_ENDPOINT_URL = "S3_ENDPOINT_URL"
AWS_REGION = "AWS_REGION"
# "cpu", "cuda", "cuda:1"; unset: CUDA when present.
SERVING_DEVICE = "SERVING_DEVICE"
SERVING_SW_BATCH_SIZE = "SERVING_SW_BATCH_SIZE"

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix.rstrip('/')}/{name}" if self.prefix.strip("/") else name


def parse_s3_uri(uri: str, *, what: str) -> S3Location:
    """``s3://bucket/prefix`` -> S3Location; anything else raises ValueError saying which value is wrong."""
    match = _S3_URI.match(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        raise ValueError(f"{what} must look like s3://bucket/prefix/, got {uri!r}")
    return S3Location(bucket=match["bucket"], prefix=match["key"] or "")


@dataclass(frozen=True)
class ServingSettings:
    seg_output: S3Location | None = None
    import_role_arn: str | None = None
    import_datastore_id: str | None = None
    import_output: S3Location | None = None
    healthimaging_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    region: str | None = None
    device: str | None = None
    sw_batch_size: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """Read every setting once; an invalid value raises ValueError naming the variable, at model load."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        seg_output = get(SEG_OUTPUT_S3_URI)
        import_output = get(HEALTHIMAGING_IMPORT_OUTPUT_S3_URI)
        role = get(HEALTHIMAGING_IMPORT_ROLE_ARN)
        if role is not None:
            if not _ROLE_ARN.match(role):
                raise ValueError(f"{HEALTHIMAGING_IMPORT_ROLE_ARN} must be an IAM role ARN, got {role!r}")
            if seg_output is None or import_output is None:
                raise ValueError(
                    f"{HEALTHIMAGING_IMPORT_ROLE_ARN} needs {SEG_OUTPUT_S3_URI} (the import reads the SEG from "
                    f"there) and {HEALTHIMAGING_IMPORT_OUTPUT_S3_URI} (where the import job reports): set both"
                )
        sw_batch = get(SERVING_SW_BATCH_SIZE)
        if sw_batch is not None and (not sw_batch.isdigit() or int(sw_batch) < 1):
            raise ValueError(f"{SERVING_SW_BATCH_SIZE} must be an integer >= 1, got {sw_batch!r}")
        return cls(
            seg_output=parse_s3_uri(seg_output, what=SEG_OUTPUT_S3_URI) if seg_output else None,
            import_role_arn=role,
            import_datastore_id=get(HEALTHIMAGING_IMPORT_DATASTORE_ID),
            import_output=parse_s3_uri(import_output, what=HEALTHIMAGING_IMPORT_OUTPUT_S3_URI)
            if import_output
            else None,
            healthimaging_endpoint_url=get(HEALTHIMAGING_ENDPOINT_URL),
            s3_endpoint_url=get(S3_ENDPOINT_URL),
            region=get(AWS_REGION) or get("AWS_DEFAULT_REGION"),
            device=get(SERVING_DEVICE),
            sw_batch_size=int(sw_batch) if sw_batch is not None else None,
        )
