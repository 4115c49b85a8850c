"""SigV4 signing of DICOMweb requests for AWS HealthImaging's DICOMweb API, as a ``requests`` auth.

HealthImaging serves DICOMweb at ``https://dicom-medical-imaging.<region>.amazonaws.com/datastore/<id>/...`` and
accepts requests signed with Signature Version 4 for the ``medical-imaging`` service; boto3 has no client for
it. The signature is botocore's own (``botocore.auth.SigV4Auth``) over the request exactly as ``requests`` sends
it (method, URL with its query, Host header, body), with credentials from botocore's usual chain (environment,
profile, container or instance role), refreshed as they rotate.

botocore is imported inside the functions that sign, never at import: the core must not load it
(``model_code.runtimes``), and a runtime without botocore (the Triton image) can still read plain DICOMweb servers.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from typing import Any

import requests

from model_code.core.dicomweb.errors import DicomWebError

SERVICE = "medical-imaging"
_HEALTHIMAGING_HOST = re.compile(r"^dicom-medical-imaging\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com$")
# What is signed besides botocore's own X-Amz-* headers: the headers that decide what the request means. Hop
# headers (Connection, Accept-Encoding) are left out: an HTTP proxy may rewrite them without changing the request.
SIGNED_HEADERS = ("host", "content-type", "accept")


def healthimaging_region(url: str) -> str | None:
    """The region of a HealthImaging DICOMweb URL (``https://dicom-medical-imaging.<region>.amazonaws.com/...``);
    None for any other server."""
    host = urllib.parse.urlsplit(url).hostname or ""
    match = _HEALTHIMAGING_HOST.match(host)
    return match["region"] if match else None


def default_credentials() -> Any:
    """botocore's credential chain, resolved now; raises a :class:`DicomWebError` that says what to configure."""
    try:
        import botocore.session
    except ImportError as error:  # the Triton image carries no AWS SDK
        raise DicomWebError(
            "SigV4 signing needs botocore, which this runtime does not carry: read a plain DICOMweb server "
            "(--dicomweb-auth none) or run where botocore is installed"
        ) from error
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise DicomWebError(
            "no AWS credentials found for SigV4 signing: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run with a role that may call the HealthImaging DICOMweb actions"
        )
    return credentials


class SigV4Auth(requests.auth.AuthBase):
    """Signs each request for ``service`` in ``region``. ``credentials``: botocore ``Credentials`` (or anything
    with ``get_frozen_credentials()`` or ``access_key``/``secret_key``/``token``); None resolves the default chain
    on first use."""

    def __init__(self, region: str, *, credentials: Any = None, service: str = SERVICE) -> None:
        if not region:
            raise ValueError("SigV4 signing needs a region (the one in dicom-medical-imaging.<region>.amazonaws.com)")
        self.region = region
        self.service = service
        self._credentials = credentials
        self._lock = threading.Lock()

    def _frozen(self) -> Any:
        with self._lock:
            if self._credentials is None:
                self._credentials = default_credentials()
            credentials = self._credentials
        # Refreshable credentials (a role's) rotate: take one consistent snapshot per request.
        return credentials.get_frozen_credentials() if hasattr(credentials, "get_frozen_credentials") else credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth as BotocoreSigner
        from botocore.awsrequest import AWSRequest

        body = request.body if request.body is not None else b""
        if not isinstance(body, (bytes, str)):
            # dicomweb-client streams bodies over its chunk size; the client built in client.py never does.
            raise DicomWebError("SigV4 signing needs the whole request body, not a stream", url=str(request.url))
        url = str(request.url)
        headers = {"host": request.headers.get("Host") or urllib.parse.urlsplit(url).netloc}
        headers.update({name: request.headers[name] for name in SIGNED_HEADERS[1:] if name in request.headers})
        signing = AWSRequest(method=str(request.method), url=url, data=body, headers=headers)
        BotocoreSigner(self._frozen(), self.service, self.region).add_auth(signing)
        for name, value in signing.headers.items():
            if name.lower() == "authorization" or name.lower().startswith("x-amz-"):
                request.headers[name] = value
        return request
