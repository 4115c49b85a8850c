"""Serving settings: environment variable names as constants, parsed once into a frozen object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Endpoint overrides for local runs (a loopback HealthImaging stand-in, a local S3).
HEALTHIMAGING_ENDPOINT_URL = "HEALTHIMAGING_ENDPOINT_URL"
S3_ENDPOINT_URL = "S3_ENDPOINT_URL"
AWS_REGION = "AWS_REGION"
# "cpu", "cuda", "cuda:1"; unset: CUDA when present.
SERVING_DEVICE = "SERVING_DEVICE"
SERVING_SW_BATCH_SIZE = "SERVING_SW_BATCH_SIZE"
# Bound on the bytes a zip request's members declare (a zip bomb is refused before anything is decompressed).
SERVING_MAX_EXPANDED_BYTES = "SERVING_MAX_EXPANDED_BYTES"
# A 48x512x512 CT series is ~25 MB; 4 GiB leaves room for the largest single series and none for a bomb.
DEFAULT_MAX_EXPANDED_BYTES = 4 << 30

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_uri(uri: str, *, what: str) -> S3Location:
    """``s3://bucket/prefix`` -> S3Location; anything else raises ValueError saying which value is wrong."""
    match = _S3_URI.match(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        raise ValueError(f"{what} must look like s3://bucket/prefix/, got {uri!r}")
    return S3Location(bucket=match["bucket"], prefix=match["key"] or "")


@dataclass(frozen=True)
class ServingSettings:
    healthimaging_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    region: str | None = None
    device: str | None = None
    sw_batch_size: int | None = None
    max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """Read every setting once; an invalid value raises ValueError naming the variable, at model load."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        sw_batch = get(SERVING_SW_BATCH_SIZE)
        if sw_batch is not None and (not sw_batch.isdigit() or int(sw_batch) < 1):
            raise ValueError(f"{SERVING_SW_BATCH_SIZE} must be an integer >= 1, got {sw_batch!r}")
        max_expanded = get(SERVING_MAX_EXPANDED_BYTES)
        if max_expanded is not None and (not max_expanded.isdigit() or int(max_expanded) < 1):
            raise ValueError(f"{SERVING_MAX_EXPANDED_BYTES} must be an integer >= 1 (bytes), got {max_expanded!r}")
        return cls(
            healthimaging_endpoint_url=get(HEALTHIMAGING_ENDPOINT_URL),
            s3_endpoint_url=get(S3_ENDPOINT_URL),
            region=get(AWS_REGION) or get("AWS_DEFAULT_REGION"),
            device=get(SERVING_DEVICE),
            sw_batch_size=int(sw_batch) if sw_batch is not None else None,
            max_expanded_bytes=int(max_expanded) if max_expanded is not None else DEFAULT_MAX_EXPANDED_BYTES,
        )
