"""STOW-RS of one SEG into HealthImaging's DICOMweb API, signed with SigV4: the write-back that replaces an import job.

``POST https://dicom-medical-imaging.<region>.amazonaws.com/datastore/<id>/studies`` (HealthImaging's
``StoreDICOM``: synchronous, up to 1 GB a request) with a ``multipart/related; type="application/dicom"`` body of
one part, the SEG as written by the endpoint. The SEG carries its source study's StudyInstanceUID, so it lands in
that study. Lambda functions carry boto3 only, so the one-part multipart body is written here (PS3.18 8.6.1.2) and
the signature is botocore's ``SigV4Auth``; the model code's client (``model_code/core/dicomweb``) uses
``dicomweb-client`` for the same protocol.

Never a silent loss: an instance in the response's Failed SOP Sequence (HTTP 409 or another 4xx), a response that
does not list the instance as stored, or an instance that cannot be read back (WADO-RS instance metadata) raises
:class:`StoreRejectedError`; throttling and 5xx answers are retried, then raise :class:`StoreUnavailableError`.
Both reach the function's failure path (SNS retries, then the dead-letter queue the monitoring stack alarms on).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SIGNING_SERVICE = "medical-imaging"
# HealthImaging's StoreDICOM limit per request.
STOW_MAX_BYTES = 1_000_000_000
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4
BACKOFF_S = 0.5  # 0.5, 1, 2 s between attempts
TIMEOUT_S = 50  # under the function's 60 s
# DICOM JSON tags (PS3.18 Table 10.5.3-1).
_RETRIEVE_URL = "00081190"
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_FAILURE_REASON = "00081197"
_STUDY_INSTANCE_UID = "0020000D"
_SERIES_INSTANCE_UID = "0020000E"
# Where model_code/core/dicom/seg.py writes the model that made the SEG (the results notice names it).
_MANUFACTURER_MODEL_NAME = "00081090"
_SOFTWARE_VERSIONS = "00181020"


class StoreRejectedError(RuntimeError):
    """HealthImaging did not store the SEG (or cannot serve it back): a visible failure, with the reason."""


class StoreUnavailableError(RuntimeError):
    """HealthImaging's DICOMweb API kept answering throttling or server errors (or did not answer)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


# (method, url, headers, body) -> the answer; an HTTP error status is an answer too.
Send = Callable[[str, str, dict[str, str], bytes], Answer]


def send(method: str, url: str, headers: dict[str, str], body: bytes) -> Answer:
    request = urllib.request.Request(  # noqa: S310 - an https URL built from the platform's own endpoint
        url, data=body if method == "POST" else None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())


@dataclass(frozen=True)
class StoredSeg:
    sop_instance_uid: str
    retrieve_url: str
    study_instance_uid: str = ""  # from the read-back metadata: where the store put it
    series_instance_uid: str = ""
    model_name: str = ""  # from the read-back metadata too: the model as the stored SEG names it
    model_version: str = ""

    def to_json(self) -> dict[str, str]:
        return {"studyInstanceUid": self.study_instance_uid, "seriesInstanceUid": self.series_instance_uid,
                "sopInstanceUid": self.sop_instance_uid, "retrieveUrl": self.retrieve_url}


def multipart_body(part10: bytes) -> tuple[bytes, str]:
    """(body, Content-Type) of a STOW-RS request carrying one Part-10 instance."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10
            + f"\r\n--{boundary}--\r\n".encode())
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _signed(method: str, url: str, headers: dict[str, str], body: bytes, *, credentials: Any,
            region: str) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, SIGNING_SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def _call(method: str, url: str, headers: dict[str, str], body: bytes, *, credentials: Any, region: str,
          send_request: Send, sleep: Callable[[float], None]) -> Answer:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # Signed per attempt: the signature carries its time.
        signed = _signed(method, url, headers, body, credentials=credentials, region=region)
        try:
            answer = send_request(method, url, signed, body)
        except (urllib.error.URLError, TimeoutError) as error:
            problem = f"no answer ({error})"
        else:
            if answer.status not in RETRIED_STATUSES:
                return answer
            problem = f"HTTP {answer.status}"
        if attempt == MAX_ATTEMPTS:
            raise StoreUnavailableError(f"{method} {url}: {problem} after {MAX_ATTEMPTS} attempts")
        sleep(BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _dicom_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if isinstance(document, list):  # some servers answer the response dataset as a one-item array
        document = document[0] if document else {}
    return document if isinstance(document, dict) else {}


def _values(dataset: dict[str, Any], tag: str) -> list[Any]:
    return list((dataset.get(tag) or {}).get("Value") or [])


def _first(item: dict[str, Any], tag: str) -> Any:
    values = _values(item, tag)
    return values[0] if values else None


def store_seg(part10: bytes, *, dicomweb_root: str, credentials: Any, region: str,
              send_request: Send = send, sleep: Callable[[float], None] = time.sleep) -> StoredSeg:
    """STOW-RS ``part10`` (one SEG) to ``dicomweb_root`` (``https://dicom-medical-imaging.<region>.amazonaws.com/
    datastore/<id>``), then read it back; where it is stored. The response names the instance (the function carries
    no DICOM parser): exactly one must be listed as stored."""
    if len(part10) > STOW_MAX_BYTES:
        raise StoreRejectedError(f"the SEG is {len(part10)} bytes, over StoreDICOM's {STOW_MAX_BYTES}: import it")
    url = f"{dicomweb_root.rstrip('/')}/studies"
    body, content_type = multipart_body(part10)
    headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    answer = _call("POST", url, headers, body, credentials=credentials, region=region, send_request=send_request,
                   sleep=sleep)
    response = _dicom_json(answer.body)
    failed = [(_first(item, _REFERENCED_SOP_INSTANCE_UID), _first(item, _FAILURE_REASON))
              for item in _values(response, _FAILED_SOP_SEQUENCE)]
    if failed or not 200 <= answer.status < 300:
        reasons = ", ".join(f"{uid} (failure reason {reason})" for uid, reason in failed) or "no instance named"
        raise StoreRejectedError(
            f"POST {url} rejected the SEG (HTTP {answer.status}): {reasons}; "
            f"{answer.body[:300].decode(errors='replace')}")
    listed = [(_first(item, _REFERENCED_SOP_INSTANCE_UID), _first(item, _RETRIEVE_URL))
              for item in _values(response, _REFERENCED_SOP_SEQUENCE)]
    if len(listed) != 1 or not all(listed[0]):
        raise StoreRejectedError(
            f"POST {url} answered HTTP {answer.status} listing {len(listed)} stored instances with their URLs, not "
            "the one SEG sent: it is not known to be stored")
    sop_instance_uid, retrieve_url = str(listed[0][0]), str(listed[0][1])
    # Listed is not yet held: AWS's docs disagree on whether HealthImaging keeps binary SEG, so read it back.
    check = _call("GET", f"{retrieve_url}/metadata", {"Accept": "application/dicom+json"}, b"",
                  credentials=credentials, region=region, send_request=send_request, sleep=sleep)
    if check.status != 200:
        raise StoreRejectedError(
            f"SEG {sop_instance_uid} was listed as stored at {retrieve_url}, but reading it back answered HTTP "
            f"{check.status}: it is not held as stored")
    metadata = _dicom_json(check.body)
    return StoredSeg(sop_instance_uid=sop_instance_uid, retrieve_url=retrieve_url,
                     study_instance_uid=str(_first(metadata, _STUDY_INSTANCE_UID) or ""),
                     series_instance_uid=str(_first(metadata, _SERIES_INSTANCE_UID) or ""),
                     model_name=str(_first(metadata, _MANUFACTURER_MODEL_NAME) or ""),
                     model_version=str(_first(metadata, _SOFTWARE_VERSIONS) or ""))
