"""The viewer's DICOMweb reads, signed with SigV4: ``GET /dicom-web/<path>`` -> HealthImaging's DICOMweb API of the
platform's data store, ``GET https://dicom-medical-imaging.<region>.amazonaws.com/datastore/<id>/<path>``.

API Gateway (HTTP API) invokes this function only for requests whose Cognito access token its JWT authorizer
accepted (issuer = the viewer's user pool, client = the viewer's app client, scope ``dicomweb/read``). The function
adds what a browser cannot: the signature, made with the function role's credentials, which allow the DICOMweb
read actions on the one data store and nothing else. Only the DICOMweb read resources pass (QIDO-RS searches,
WADO-RS instances, metadata, frames and bulk data); anything else is a 404 before any call.

Answers are never cached (``Cache-Control: no-store``: patient data stays out of CloudFront and browser caches).
HealthImaging's answer body passes through unchanged, compressed when it compressed it. Lambda returns at most
6 MB through API Gateway, base64 included: a bigger answer is a 502 that says so.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

# Beside this module in the function's asset (stacks/components/function_shared).
from function_settings import EnvironmentSettings

ENV_DATASTORE_ID = "DATASTORE_ID"
ENV_DICOMWEB_ENDPOINT = "DICOMWEB_ENDPOINT"
ENV_SIGNING_REGION = "SIGNING_REGION"

PUBLIC_ROOT = "/dicom-web"  # the path CloudFront routes here (stacks/viewer/ohif_site.DICOMWEB_PATH)
SIGNING_SERVICE = "medical-imaging"
# The request headers DICOMweb content negotiation needs; everything else (the viewer's token first) stays here.
FORWARDED_HEADERS = ("accept", "accept-encoding")
# The answer headers the viewer needs back.
RETURNED_HEADERS = ("content-type", "content-encoding", "content-length")
UPSTREAM_TIMEOUT_S = 25  # under API Gateway's 30 s integration limit
# Lambda's response payload limit (6 MB) less room for the headers and the JSON envelope.
MAX_BASE64_BODY = 6 * 1024 * 1024 - 16 * 1024

_UID = r"[0-9]+(?:\.[0-9]+)*"
# The read resources of HealthImaging's DICOMweb API (QIDO-RS and WADO-RS), below /studies.
_READ_PATH = re.compile(
    rf"^/studies(?:/{_UID}(?:/metadata|/series(?:/{_UID}(?:/metadata|/instances(?:/{_UID}"
    rf"(?:/metadata|/frames/[0-9]+(?:,[0-9]+)*|/bulkdata/[A-Za-z0-9._~-]+)?)?)?)?)?)?$"
)


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "viewer"

    datastore_id: str
    # https://dicom-medical-imaging.<region>.amazonaws.com (resolved through the VPC endpoint's private DNS)
    dicomweb_endpoint: str
    signing_region: str


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _error(status: int, message: str) -> Answer:
    return Answer(status, {"content-type": "application/json"}, json.dumps({"message": message}).encode())


def upstream_url(settings: Settings, path: str, raw_query: str) -> str | None:
    """The DICOMweb URL a viewer path stands for; None for a path that is not a DICOMweb read resource.

    The query is re-encoded the way SigV4 canonicalizes it (RFC 3986, every byte but unreserved ones escaped), so
    the signature and the service's own reading of the query agree whatever the browser escaped.
    """
    if not path.startswith(PUBLIC_ROOT + "/"):
        return None
    resource = path[len(PUBLIC_ROOT):]
    if not _READ_PATH.match(resource):
        return None
    pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in pairs)
    base = f"{settings.dicomweb_endpoint.rstrip('/')}/datastore/{settings.datastore_id}{resource}"
    return f"{base}?{query}" if query else base


def signed_headers(url: str, headers: dict[str, str], *, credentials: Any, region: str) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, headers=headers)
    SigV4Auth(credentials, SIGNING_SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def fetch(url: str, headers: dict[str, str]) -> Answer:
    """GET ``url``; an HTTP error status is an answer too (the viewer sees HealthImaging's 404 or 403 as is)."""
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - an https URL built above
    try:
        with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT_S) as response:  # noqa: S310
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def proxy(event: dict[str, Any], *, settings: Settings, credentials: Any,
          fetch_url: Any = fetch) -> tuple[Answer, str | None]:
    """One API Gateway (payload 2.0) request -> the answer and the upstream URL it read (None when refused)."""
    method = str((event.get("requestContext") or {}).get("http", {}).get("method", ""))
    if method != "GET":
        return _error(405, f"{method or 'this method'} is not allowed: the viewer's DICOMweb proxy only reads"), None
    url = upstream_url(settings, str(event.get("rawPath", "")), str(event.get("rawQueryString", "")))
    if url is None:
        return _error(404, "not a DICOMweb read resource (QIDO-RS or WADO-RS below /dicom-web/studies)"), None
    incoming = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    forwarded = {name: incoming[name] for name in FORWARDED_HEADERS if name in incoming}
    try:
        answer = fetch_url(url, signed_headers(url, forwarded, credentials=credentials, region=settings.signing_region))
    except (urllib.error.URLError, TimeoutError) as error:
        return _error(504 if isinstance(error, TimeoutError) else 502,
                      f"HealthImaging's DICOMweb API did not answer: {error}"), url
    return answer, url


def to_response(answer: Answer) -> dict[str, Any]:
    """API Gateway's payload 2.0 response: the body base64-encoded (DICOM is binary), never cached."""
    body = base64.b64encode(answer.body).decode()
    if len(body) > MAX_BASE64_BODY:
        return to_response(_error(
            502,
            f"the DICOMweb answer is {len(answer.body)} bytes, more than Lambda returns through API Gateway (6 MB "
            "with base64): request frames (WADO-RS .../frames/N) rather than whole instances",
        ))
    headers = {name: answer.headers[name] for name in RETURNED_HEADERS if name in answer.headers}
    headers.pop("content-length", None)  # API Gateway sets it for the decoded body
    headers["cache-control"] = "no-store"
    return {"statusCode": answer.status, "headers": headers, "body": body, "isBase64Encoded": True}


@cache
def _settings() -> Settings:
    return Settings.from_environment()


@cache
def _session() -> Any:
    # Created on first use, never at import; the session refreshes the role's credentials itself.
    return boto3.Session()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    answer, url = proxy(event, settings=_settings(), credentials=_session().get_credentials().get_frozen_credentials())
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims", {})
    # The audit trail of who read what: the user (Cognito sub), the path and the outcome, never the data.
    print(json.dumps({"user": claims.get("sub"), "path": event.get("rawPath"), "status": answer.status,
                      "upstream": url is not None, "ms": round((time.monotonic() - started) * 1000)}))
    return to_response(answer)
