"""Decode an /invocations body into a series request; every malformed body is a ClientError (400/413/415).

Accepted bodies:

* ``application/json`` ``{"datastoreId": ..., "imageSetId": ..., "seriesInstanceUid"?: ...}`` (HealthImaging),
  ``{"dicomS3Uri": "s3://bucket/prefix/", "seriesInstanceUid"?: ...}`` (a series under an S3 prefix) or
  ``{"dicomwebUrl": "https://.../dicom-web", "studyInstanceUid": ..., "seriesInstanceUid": ..., "dicomwebAuth"?:
  "none"|"sigv4"}`` (a series on a DICOMweb server: the predict CLI's ``--dicomweb-url/--study-uid/--series-uid``);
* ``application/zip``: a zip of one series' DICOM files with relative member names, its members expanding to
  at most ``limits.max_expanded_bytes`` (413 otherwise, decided from the member headers before anything is
  decompressed).

The body, the JSON document and the zip are checked against ``InputLimits`` (``model_code.core.limits``)
before they are parsed; a message quotes at most a short excerpt of the input.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from model_code.core.errors import ClientError, bad_request, excerpt
from model_code.core.http import JSON, ZIP, ZIP_ALIASES, media_type
from model_code.core.limits import check_body, check_json, check_zip_members
from model_code.core.s3_uri import S3Location, parse_s3_uri
from model_code.core.settings import DEFAULT_MAX_ZIP_MEMBERS, InputLimits

# HealthImaging's service model: both IDs are 32 lowercase hex-like characters.
_ID = re.compile(r"^[0-9a-z]{32}$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_HEALTHIMAGING_KEYS = {"datastoreId", "imageSetId"}
_OPTIONAL_KEYS = {"seriesInstanceUid"}
_USAGE = (
    'send {"datastoreId": "...", "imageSetId": "..."}, {"dicomS3Uri": "s3://bucket/prefix/"} or '
    '{"dicomwebUrl": "https://host/dicom-web", "studyInstanceUid": "...", "seriesInstanceUid": "..."}'
)
_DICOMWEB_REQUIRED = {"dicomwebUrl", "studyInstanceUid", "seriesInstanceUid"}
_DICOMWEB_OPTIONAL = {"dicomwebAuth"}
DICOMWEB_AUTH_MODES = ("none", "sigv4")  # model_code.core.dicomweb.AUTH_MODES; None: sigv4 for HealthImaging only
# One series is at most a few thousand files; a zip of millions of empty members is a bomb of another kind.
MAX_ZIP_MEMBERS = DEFAULT_MAX_ZIP_MEMBERS


@dataclass(frozen=True)
class HealthImagingRequest:
    datastore_id: str
    image_set_id: str
    series_instance_uid: str | None = None


@dataclass(frozen=True)
class S3SeriesRequest:
    location: S3Location
    series_instance_uid: str | None = None


@dataclass(frozen=True)
class ZipSeriesRequest:
    # TorchServe's worker hands the body over as a bytearray: kept as it is, not copied into bytes (a second
    # copy of a 1 GB upload for the whole request).
    payload: bytes | bytearray

    def __repr__(self) -> str:  # a 1 GB payload must never end up in a log line
        return f"ZipSeriesRequest({len(self.payload)} bytes)"


@dataclass(frozen=True)
class DicomWebRequest:
    """A series on a DICOMweb server; ``auth`` None picks SigV4 for HealthImaging's DICOMweb host only."""

    url: str
    study_instance_uid: str
    series_instance_uid: str
    auth: str | None = None


SeriesRequest = HealthImagingRequest | S3SeriesRequest | DicomWebRequest | ZipSeriesRequest


def decode_request(
    body: bytes | str | bytearray | None,
    content_type: str | None,
    *,
    limits: InputLimits | None = None,
    max_expanded_bytes: int | None = None,
) -> SeriesRequest:
    """``max_expanded_bytes``, when given, overrides that one limit (the older keyword)."""
    limits = limits or InputLimits()
    if max_expanded_bytes is not None:
        limits = dataclasses.replace(limits, max_expanded_bytes=max_expanded_bytes)
    kind = media_type(content_type)
    if kind == JSON:
        return _decode_json(body, limits)
    if kind in ZIP_ALIASES:
        return _decode_zip(body, limits)
    raise ClientError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        f"content type {excerpt(content_type or '(none)', 60)} is not supported: send {JSON} ({_USAGE}) or {ZIP} "
        "(a zip of one series' DICOM files)",
    )


def _as_bytes(body: bytes | str | bytearray | None) -> bytes:
    if body is None:
        return b""
    # The SageMaker toolkit hands application/json over already decoded to str.
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _decode_json(body: bytes | str | bytearray | None, limits: InputLimits) -> SeriesRequest:
    raw = _as_bytes(body)
    check_body(len(raw), limits)
    if not raw.strip():
        raise bad_request(f"the request body is empty: {_USAGE}")
    check_json(raw, limits)
    try:
        document: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise bad_request(f"the body is not valid JSON ({excerpt(str(error), 120)}): {_USAGE}") from error
    if not isinstance(document, dict):
        raise bad_request(f"the JSON body must be an object, got {type(document).__name__}: {_USAGE}")

    series_uid = document.get("seriesInstanceUid")
    if series_uid is not None and (not isinstance(series_uid, str) or not _UID.match(series_uid)):
        raise bad_request(f"seriesInstanceUid must be a DICOM UID (digits and dots), got {excerpt(series_uid)}")

    keys = set(document)
    if "dicomwebUrl" in keys:
        return _decode_dicomweb(document)
    if "dicomS3Uri" in keys:
        unknown = keys - {"dicomS3Uri"} - _OPTIONAL_KEYS
        if unknown:
            raise bad_request(f"unexpected keys {_some(unknown)} beside dicomS3Uri: {_USAGE}")
        uri = document["dicomS3Uri"]
        try:
            location = parse_s3_uri(uri, what="dicomS3Uri")
        except ValueError as error:
            raise bad_request(str(error)) from error
        return S3SeriesRequest(location=location, series_instance_uid=series_uid)

    unknown = keys - _HEALTHIMAGING_KEYS - _OPTIONAL_KEYS
    missing = _HEALTHIMAGING_KEYS - keys
    if unknown or missing:
        detail = "; ".join(
            part
            for part in (
                f"missing {sorted(missing)}" if missing else "",
                f"unexpected {_some(unknown)}" if unknown else "",
            )
            if part
        )
        raise bad_request(f"the JSON body has the wrong keys ({detail}): {_USAGE}")
    for key in sorted(_HEALTHIMAGING_KEYS):
        value = document[key]
        if not isinstance(value, str) or not _ID.match(value):
            raise bad_request(
                f"{key} must be 32 lowercase letters or digits (a HealthImaging ID), got {excerpt(value)}"
            )
    return HealthImagingRequest(
        datastore_id=document["datastoreId"],
        image_set_id=document["imageSetId"],
        series_instance_uid=series_uid,
    )


def _decode_dicomweb(document: dict[str, Any]) -> DicomWebRequest:
    keys = set(document)
    missing = _DICOMWEB_REQUIRED - keys
    unknown = keys - _DICOMWEB_REQUIRED - _DICOMWEB_OPTIONAL
    if missing or unknown:
        detail = "; ".join(part for part in (f"missing {sorted(missing)}" if missing else "",
                                             f"unexpected {_some(unknown)}" if unknown else "") if part)
        raise bad_request(f"the DICOMweb request has the wrong keys ({detail}): {_USAGE}")
    url = document["dicomwebUrl"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise bad_request(f"dicomwebUrl must be an http(s) DICOMweb root, got {excerpt(url)}")
    study = document["studyInstanceUid"]
    if not isinstance(study, str) or not _UID.match(study):
        raise bad_request(f"studyInstanceUid must be a DICOM UID (digits and dots), got {excerpt(study)}")
    auth = document.get("dicomwebAuth")
    if auth is not None and auth not in DICOMWEB_AUTH_MODES:
        raise bad_request(f"dicomwebAuth must be one of {list(DICOMWEB_AUTH_MODES)} (or absent), got {excerpt(auth)}")
    return DicomWebRequest(url=url.rstrip("/"), study_instance_uid=study,
                           series_instance_uid=document["seriesInstanceUid"], auth=auth)


def _some(keys: set[str]) -> str:
    """A few of ``keys``, each cut short: 200k unknown keys must not become a 10 MB error body."""
    shown = ", ".join(excerpt(key, 40) for key in sorted(keys)[:5])
    return f"[{shown}{f', ... ({len(keys)} in all)' if len(keys) > 5 else ''}]"


def _decode_zip(body: bytes | str | bytearray | None, limits: InputLimits) -> ZipSeriesRequest:
    payload = body if isinstance(body, bytearray) else _as_bytes(body)
    check_body(len(payload), limits)
    if not payload:
        raise bad_request("the request body is empty: send a zip of one series' DICOM files")
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            check_zip_members(archive.infolist(), limits)
            # testzip reads every member and checks its CRC: a truncated upload fails here, not mid-inference.
            corrupt = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, zlib.error,
            OSError, UnicodeDecodeError) as error:
        raise bad_request(
            f"the body is not a readable zip archive ({excerpt(str(error), 120)}): send a valid .zip"
        ) from error
    if corrupt is not None:
        raise bad_request(f"zip member {excerpt(corrupt, 60)} is corrupt (CRC mismatch): upload the archive again")
    return ZipSeriesRequest(payload=payload)
