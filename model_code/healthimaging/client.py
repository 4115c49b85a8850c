"""The HealthImaging service calls the connector makes, and a client sized for them.

Only this module talks to botocore. Retries are botocore's own: ``standard`` mode retries throttling
(429 ThrottlingException) and 5xx answers with exponential backoff and jitter, ``adaptive`` adds client-side
rate limiting on top. A hand-written retry loop would retry what botocore already retried.
"""

from __future__ import annotations

import gzip
import json
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from model_code.healthimaging.errors import ImageSetNotFound

SERVICE_NAME = "medical-imaging"
# One connection per fetch thread; more threads than connections only queue on the pool. 16 in flight
# cover a 20 ms round trip at ~800 frames/s, above what two cores decode; more threads only add GIL
# contention when the network is fast.
DEFAULT_MAX_WORKERS = 16
DEFAULT_MAX_ATTEMPTS = 8
# SearchImageSets accepts at most 50 results a page (service model: maxResults 1..50).
SEARCH_PAGE_SIZE = 50
# A fixed User-Agent: it names the connector in CloudTrail's userAgent field, and it spares botocore
# rebuilding its structured one on every request, a fifth of the client's CPU per GetImageFrame call
# (measured on the loopback server, docs/healthimaging.md). A loaded series is hundreds of calls.
# (botocore appends its own "Botocore/<version>".)
USER_AGENT = (
    f"monai-imaging-platform-healthimaging/1 Python/{platform.python_version()} "
    f"{platform.system()}/{platform.release()}"
)


def client_config(
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    retry_mode: str = "standard",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    inject_host_prefix: bool = True,
) -> Config:
    """botocore settings for loading image sets: a pool as large as the fetch threads, botocore retries,
    a fixed User-Agent (:data:`USER_AGENT`).

    ``inject_host_prefix=False`` is for endpoints that are not AWS (a loopback test server): botocore
    otherwise prefixes GetImageFrame's host with ``runtime-``.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1 (1 means no retry), got {max_attempts}")
    if retry_mode not in ("standard", "adaptive"):
        raise ValueError(f"retry_mode must be 'standard' or 'adaptive', got {retry_mode!r}")
    return Config(
        # total_max_attempts counts the first try; botocore's "max_attempts" would count retries only.
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        max_pool_connections=max_workers,
        inject_host_prefix=inject_host_prefix,
        user_agent=USER_AGENT,
    )


def make_client(
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    retry_mode: str = "standard",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    session: boto3.Session | None = None,
    **client_kwargs: Any,
) -> Any:
    """A ``medical-imaging`` client configured by :func:`client_config` (credentials from the usual chain).

    A custom ``endpoint_url`` turns host-prefix injection off, since only AWS hosts have ``runtime-`` names.
    """
    config = client_config(
        max_workers=max_workers,
        retry_mode=retry_mode,
        max_attempts=max_attempts,
        inject_host_prefix=endpoint_url is None,
    )
    factory = session or boto3
    return factory.client(
        SERVICE_NAME, region_name=region_name, endpoint_url=endpoint_url, config=config, **client_kwargs
    )


def pool_size(client: Any) -> int:
    """How many connections the client keeps: more concurrent calls than this would queue or churn."""
    return int(getattr(client.meta.config, "max_pool_connections", 10) or 10)


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def get_image_set_metadata(client: Any, datastore_id: str, image_set_id: str) -> dict[str, Any]:
    """The image set's metadata document (HealthImaging serves it as gzip-compressed JSON)."""
    try:
        response = client.get_image_set_metadata(datastoreId=datastore_id, imageSetId=image_set_id)
    except ClientError as error:
        if _not_found(error):
            raise ImageSetNotFound(datastore_id, image_set_id) from error
        raise
    body = response["imageSetMetadataBlob"].read()
    # The blob is gzip on the wire and botocore does not inflate it; accept plain JSON too.
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    document: dict[str, Any] = json.loads(body)
    return document


@dataclass(frozen=True)
class FrameBlob:
    """One GetImageFrame answer: the encoded pixels and the content type that says how they are encoded."""

    data: bytes
    content_type: str


def get_image_frame(client: Any, datastore_id: str, image_set_id: str, frame_id: str) -> FrameBlob:
    try:
        response = client.get_image_frame(
            datastoreId=datastore_id, imageSetId=image_set_id, imageFrameInformation={"imageFrameId": frame_id}
        )
    except ClientError as error:
        if _not_found(error):
            raise ImageSetNotFound(datastore_id, image_set_id, detail=f"frame {frame_id} not found") from error
        raise
    body = response["imageFrameBlob"]
    try:
        data = body.read()
    finally:
        body.close()
    return FrameBlob(data=data, content_type=str(response.get("contentType") or ""))


def get_image_set(client: Any, datastore_id: str, image_set_id: str) -> dict[str, Any]:
    """GetImageSet properties (state, version), with not-found mapped to :class:`ImageSetNotFound`."""
    try:
        response: dict[str, Any] = client.get_image_set(datastoreId=datastore_id, imageSetId=image_set_id)
    except ClientError as error:
        if _not_found(error):
            raise ImageSetNotFound(datastore_id, image_set_id) from error
        raise
    response.pop("ResponseMetadata", None)
    return response


def iter_image_sets_for_study(
    client: Any, datastore_id: str, study_instance_uid: str, *, page_size: int = SEARCH_PAGE_SIZE
) -> Iterator[dict[str, Any]]:
    """Every image set summary of a study, following ``nextToken`` through all pages."""
    paginator = client.get_paginator("search_image_sets")
    criteria = {"filters": [{"values": [{"DICOMStudyInstanceUID": study_instance_uid}], "operator": "EQUAL"}]}
    pages = paginator.paginate(
        datastoreId=datastore_id, searchCriteria=criteria, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        yield from page["imageSetsMetadataSummaries"]


def search_image_sets(
    client: Any, datastore_id: str, study_instance_uid: str, *, page_size: int = SEARCH_PAGE_SIZE
) -> list[dict[str, Any]]:
    """All image set summaries of a study (every page), in the order HealthImaging returns them."""
    return list(iter_image_sets_for_study(client, datastore_id, study_instance_uid, page_size=page_size))
