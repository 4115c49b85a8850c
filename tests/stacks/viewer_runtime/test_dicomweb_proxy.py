"""The viewer's SigV4 DICOMweb proxy against a loopback upstream that verifies each signature the way the service
does: from the request as received (path, query decoded and re-encoded, the signed headers), with the secret key.

So what is checked is that what the proxy signs is what it sends, for the queries a viewer writes (wildcards,
spaces, repeated keys), and that it forwards the media type but never the viewer's own token.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from botocore.credentials import Credentials

from stacks.viewer.runtime import dicomweb_proxy
from stacks.viewer.runtime.dicomweb_proxy import Answer, Settings, proxy, signed_headers, to_response, upstream_url
from testkit.loopback import loopback_server
from testkit.sigv4 import verify_sigv4

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
REGION = "us-east-1"
DATASTORE = "0123456789abcdef0123456789abcdef"
STUDY, SERIES, SOP = "1.2.840.1", "1.2.840.1.2", "1.2.840.1.2.3"
SETTINGS = Settings(datastore_id=DATASTORE, dicomweb_endpoint="https://dicom-medical-imaging.us-east-1.amazonaws.com",
                    signing_region=REGION)


@dataclass
class Upstream:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def upstream() -> Iterator[Upstream]:
    """A loopback DICOMweb host: 403 for a bad signature, 404 below /missing, else 200 with the request echoed."""
    state = Upstream(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            problem = verify_sigv4("GET", self.path, headers, CREDENTIALS.secret_key)
            state.received.append({"path": self.path, "headers": headers, "problem": problem})
            status = 403 if problem else 404 if "/studies/9.9.9" in self.path else 200
            body = json.dumps({"problem": problem, "path": self.path}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with loopback_server(Handler, name="dicomweb-upstream") as origin:
        state.url = origin
        yield state


def event(path: str, query: str = "", *, method: str = "GET", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event as the JWT-authorized route delivers it."""
    return {
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"accept": "application/dicom+json", "authorization": "Bearer viewer-token", **(headers or {})},
        "requestContext": {"http": {"method": method},
                           "authorizer": {"jwt": {"claims": {"sub": "reviewer-1"}, "scopes": ["dicomweb/read"]}}},
    }


# (viewer path, upstream resource or None when refused)
PATHS = [
    ("/dicom-web/studies", "/studies"),  # QIDO-RS: studies
    (f"/dicom-web/studies/{STUDY}/series", f"/studies/{STUDY}/series"),
    (f"/dicom-web/studies/{STUDY}/series/{SERIES}/metadata", f"/studies/{STUDY}/series/{SERIES}/metadata"),
    (f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances", f"/studies/{STUDY}/series/{SERIES}/instances"),
    (f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}", f"/studies/{STUDY}/series/{SERIES}/instances/{SOP}"),
    (f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1,2",
     f"/studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1,2"),
    (f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/bulkdata/ab12cd",
     f"/studies/{STUDY}/series/{SERIES}/instances/{SOP}/bulkdata/ab12cd"),
    ("/dicom-web/studies/../../datastore", None),  # no way out of the data store's tree
    ("/dicom-web/studies/1.2/series/abc", None),  # not a UID
    ("/dicom-web/studies/1.2/series/1.3/instances/1.4/frames/", None),
    ("/dicom-web/studies/1.2/rendered", None),  # a resource HealthImaging does not serve
    ("/dicom-web", None),
    ("/other/studies", None),
]


@pytest.mark.parametrize(("path", "resource"), PATHS)
def test_only_dicomweb_read_resources_of_the_data_store_are_proxied(path: str, resource: str | None) -> None:
    expected = None if resource is None else f"{SETTINGS.dicomweb_endpoint}/datastore/{DATASTORE}{resource}"
    assert upstream_url(SETTINGS, path, "") == expected


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("PatientName=Doe*", "PatientName=Doe%2A"),  # a QIDO wildcard
        ("PatientName=Doe%2A", "PatientName=Doe%2A"),  # already escaped: the same query
        ("PatientName=van+Dam", "PatientName=van%20Dam"),
        ("includefield=00081030&includefield=0008103E", "includefield=00081030&includefield=0008103E"),
        ("limit=25&offset=0", "limit=25&offset=0"),
        ("imageSetId=", "imageSetId="),
    ],
)
def test_the_query_is_sent_as_sigv4_canonicalizes_it(query: str, canonical: str) -> None:
    url = upstream_url(SETTINGS, "/dicom-web/studies", query)
    assert url is not None
    assert url.split("?", 1)[1] == canonical


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (f"/dicom-web/studies/{STUDY}/series", ""),
        ("/dicom-web/studies", "PatientName=Doe*&limit=10"),
        ("/dicom-web/studies", "PatientName=van+Dam"),
        ("/dicom-web/studies", "a=1&a=0"),
        (f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1,2", ""),  # a comma in the path
    ],
)
def test_what_the_proxy_signs_is_what_the_service_receives(path: str, query: str) -> None:
    with upstream() as host:
        settings = Settings(datastore_id=DATASTORE, dicomweb_endpoint=host.url, signing_region=REGION)
        answer, url = proxy(event(path, query), settings=settings, credentials=CREDENTIALS)
    assert answer.status == 200, answer.body
    (received,) = host.received
    assert received["problem"] is None
    assert received["headers"]["accept"] == "application/dicom+json"  # content negotiation reaches the service
    assert "viewer-token" not in json.dumps(received["headers"])  # the viewer's own token never leaves
    assert received["headers"]["x-amz-security-token"] == "session-token"
    assert url is not None
    assert received["path"] == url.removeprefix(host.url)


def test_a_query_signed_as_typed_is_refused_by_the_service() -> None:
    # The must-fail twin: signing the browser's unescaped wildcard as is (botocore takes a query as given) gives a
    # signature the service's canonical form does not match.
    with upstream() as host:
        url = f"{host.url}/datastore/{DATASTORE}/studies?PatientName=Doe*"
        answer = dicomweb_proxy.fetch(url, signed_headers(url, {"accept": "application/dicom+json"},
                                                          credentials=CREDENTIALS, region=REGION))
    assert answer.status == 403
    assert host.received[0]["problem"] == "signature does not match"


def test_the_services_answers_pass_through_and_are_never_cached() -> None:
    with upstream() as host:
        settings = Settings(datastore_id=DATASTORE, dicomweb_endpoint=host.url, signing_region=REGION)
        found, _ = proxy(event(f"/dicom-web/studies/{STUDY}/series"), settings=settings, credentials=CREDENTIALS)
        missing, _ = proxy(event("/dicom-web/studies/9.9.9/series"), settings=settings, credentials=CREDENTIALS)
    response = to_response(found)
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert json.loads(base64.b64decode(response["body"]))["problem"] is None
    assert response["headers"] == {"content-type": "application/dicom+json", "cache-control": "no-store"}
    assert to_response(missing)["statusCode"] == 404  # the service's 404 is the viewer's


@pytest.mark.parametrize(
    ("request_event", "status", "message"),
    [
        (event(f"/dicom-web/studies/{STUDY}", method="POST"), 405, "only reads"),  # STOW-RS is not the viewer's
        (event("/dicom-web/studies/1.2/rendered"), 404, "not a DICOMweb read resource"),
    ],
)
def test_refused_requests_never_reach_the_service(request_event: dict[str, Any], status: int, message: str) -> None:
    calls: list[str] = []
    answer, url = proxy(request_event, settings=SETTINGS, credentials=CREDENTIALS,
                        fetch_url=lambda u, h: calls.append(u))
    assert (answer.status, url, calls) == (status, None, [])
    assert message in json.loads(answer.body)["message"]


def test_a_service_that_does_not_answer_is_a_502() -> None:
    with upstream() as host:
        gone = host.url  # the server stops when the block ends
    settings = Settings(datastore_id=DATASTORE, dicomweb_endpoint=gone, signing_region=REGION)
    answer, _ = proxy(event(f"/dicom-web/studies/{STUDY}/series"), settings=settings, credentials=CREDENTIALS)
    assert answer.status == 502
    assert "did not answer" in json.loads(answer.body)["message"]


def test_an_answer_over_lambdas_limit_is_a_502_that_says_so() -> None:
    big = Answer(200, {"content-type": "application/dicom"}, b"\0" * (5 * 1024 * 1024))  # 6.7 MB in base64
    response = to_response(big)
    assert response["statusCode"] == 502
    assert "more than Lambda returns through API Gateway" in json.loads(base64.b64decode(response["body"]))["message"]
    small = to_response(Answer(200, {"content-type": "application/dicom"}, b"\0" * (4 * 1024 * 1024)))
    assert small["statusCode"] == 200  # must: 4 MB fits
