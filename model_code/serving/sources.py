"""Turn a decoded request into an ImageSeries, mapping "cannot find it" to 404, "may not read it" to 403 and
"cannot use it" to 422."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError as BotocoreClientError

from model_code.core.dicom.files import load_series
from model_code.core.dicom.series import ImageSeries
from model_code.core.dicomweb import AuthMode, DicomWebAccessDenied, DicomWebNotFound, DicomWebSession
from model_code.core.errors import ClientError, InvalidSeriesError, bad_request, not_found, unusable_series
from model_code.core.limits import SeriesGuard
from model_code.core.requests import (
    DicomWebRequest,
    HealthImagingRequest,
    S3SeriesRequest,
    SeriesRequest,
    ZipSeriesRequest,
)
from model_code.core.s3_uri import S3Location
from model_code.core.service import header_check, load_zip_series
from model_code.healthimaging import HealthImagingError, ImageSetNotFound, SeriesNotFound, load_image_set
from model_code.serving.clients import ServingClients
from model_code.serving.dependencies import dependency_failure, throttled

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def load_request_series(
    request: SeriesRequest, workdir: Path, guard: SeriesGuard | None = None, *, clients: ServingClients
) -> ImageSeries:
    """Fetch the series a request names into ``workdir`` (its own temporary directory) and load it."""
    guard = guard or SeriesGuard()
    if isinstance(request, ZipSeriesRequest):
        return load_zip_series(request, workdir, guard)
    try:
        if isinstance(request, S3SeriesRequest):
            return _load_s3(request, workdir, clients.s3(), guard)
        if isinstance(request, DicomWebRequest):
            return _load_dicomweb(request, guard)
        return _load_healthimaging(request, clients.medical_imaging())
    except InvalidSeriesError as error:
        raise unusable_series(f"not a usable series: {error}") from error
    except BotoCoreError as error:  # credentials, the network: not the request's fault (502/503)
        failure = dependency_failure(error)
        if failure is error:
            raise
        raise failure from error
    except BotocoreClientError as error:  # throttled after botocore's retries (503)
        throttling = throttled(error)
        if throttling is None:
            raise
        raise throttling from error


def _load_s3(request: S3SeriesRequest, workdir: Path, s3: Any, guard: SeriesGuard) -> ImageSeries:
    location = request.location
    folder = workdir / "series"
    folder.mkdir()
    try:
        keys = _list_keys(s3, location)
        if not keys:
            raise not_found(f"no objects under {location.uri}: check the bucket and prefix of dicomS3Uri")
        for index, key in enumerate(keys):
            # Object keys are not trusted as paths ("../"): name each file by its index and a sanitised basename.
            target = folder / f"{index:06d}_{_UNSAFE_NAME.sub('_', key.rsplit('/', 1)[-1])}"
            s3.download_file(location.bucket, key, str(target))
    except BotocoreClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchBucket", "NoSuchKey", "404"}:
            raise not_found(f"{location.uri} does not exist ({code}): check dicomS3Uri") from error
        if code in {"AccessDenied", "403", "AllAccessDisabled"}:
            raise ClientError(403, f"the endpoint may not read {location.uri} ({code}): grant its role s3:GetObject "
                              "and s3:ListBucket on that prefix") from error
        raise
    return load_series(folder, series_instance_uid=request.series_instance_uid, check=header_check(guard))


def _list_keys(s3: Any, location: S3Location) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key):
        # Keys ending in "/" are the folder markers the console creates, not files.
        keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return sorted(keys)


def _load_dicomweb(request: DicomWebRequest, guard: SeriesGuard) -> ImageSeries:
    try:
        session = DicomWebSession(request.url, auth=cast(AuthMode | None, request.auth))
    except ValueError as error:  # sigv4 asked for a host that is not HealthImaging's DICOMweb host
        raise bad_request(str(error)) from error
    # A server that keeps failing after the client's retries is not the caller's fault: DicomWebError stays a 5xx.
    try:
        return session.load_series(request.study_instance_uid, request.series_instance_uid,
                                   check=header_check(guard))
    except DicomWebNotFound as error:
        raise not_found(str(error)) from error
    except DicomWebAccessDenied as error:
        raise ClientError(403, f"{error}: grant the endpoint's role the DICOMweb read actions, or send a server it "
                          "may read") from error


def _load_healthimaging(request: HealthImagingRequest, client: Any) -> ImageSeries:
    try:
        # Headers only: the server segments the volume and the SEG writer reads headers, so the frames' pixel
        # bytes would be a second copy of the series held through the whole request.
        return load_image_set(
            client,
            request.datastore_id,
            request.image_set_id,
            series_instance_uid=request.series_instance_uid,
            pixel_data=False,
        )
    except (ImageSetNotFound, SeriesNotFound) as error:
        raise not_found(str(error)) from error
    except HealthImagingError as error:  # a frame that fails to decode or its checksum: the data is unusable
        raise unusable_series(str(error)) from error
