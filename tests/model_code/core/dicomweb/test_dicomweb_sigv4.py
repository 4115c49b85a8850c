"""SigV4 signing of DICOMweb requests: the signature equals botocore's own signer output for a fixed request (fixed
credentials and time), and a live signed session passes a service-side check (testkit/sigv4.py, from the
specification) on its way to a real DICOMweb server (Orthanc), for QIDO-RS, WADO-RS and a STOW-RS body.
"""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from model_code.core.dicomweb import (
    DicomWebAccessDenied,
    DicomWebSession,
    SigV4Auth,
    default_auth,
    healthimaging_region,
    make_session,
)
from testkit.dicomweb import dicomweb_front
from testkit.orthanc import orthanc_server
from testkit.series import series_zip, zip_datasets

# The example key pair of AWS's SigV4 documentation.
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
FIXED_TIME = datetime.datetime(2026, 12, 2, 18, 30, 0)
ROOT = "https://dicom-medical-imaging.us-east-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (ROOT, "us-east-1"),  # HealthImaging's DICOMweb host
        ("https://dicom-medical-imaging.ap-southeast-2.amazonaws.com/datastore/x", "ap-southeast-2"),
        ("https://medical-imaging.us-east-1.amazonaws.com/datastore/x", None),  # the control-plane host: not DICOMweb
        ("https://dicom-medical-imaging.us-east-1.amazonaws.com.evil.example/x", None),  # a look-alike host
        ("http://127.0.0.1:8042/dicom-web", None),  # any other DICOMweb server
    ],
)
def test_the_healthimaging_host_picks_sigv4(url: str, region: str | None) -> None:
    assert healthimaging_region(url) == region
    assert default_auth(url) == ("sigv4" if region else "none")


def test_sigv4_refuses_a_host_it_cannot_sign_for() -> None:
    with pytest.raises(ValueError, match="use auth none for other servers"):
        make_session("http://127.0.0.1:8042/dicom-web", "sigv4")


def test_the_signature_is_botocores_for_a_fixed_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FIXED_TIME)
    url = f"{ROOT}/studies/1.2.3?includefield=00081030&SeriesDescription=a b*"
    body = b"--boundary\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--boundary--"
    content_type = 'multipart/related; type="application/dicom"; boundary=boundary'
    prepared = requests.Request("POST", url, data=body, headers={
        "Content-Type": content_type, "Accept": "application/dicom+json", "User-Agent": "test"}).prepare()
    signed = SigV4Auth("us-east-1", credentials=CREDENTIALS)(prepared)

    expected = AWSRequest(method="POST", url=str(prepared.url), data=body, headers={
        "host": "dicom-medical-imaging.us-east-1.amazonaws.com", "content-type": content_type,
        "accept": "application/dicom+json"})
    botocore.auth.SigV4Auth(CREDENTIALS, "medical-imaging", "us-east-1").add_auth(expected)

    assert signed.headers["Authorization"] == expected.headers["Authorization"]
    assert signed.headers["X-Amz-Date"] == "20261202T183000Z"
    assert signed.headers["X-Amz-Security-Token"] == "session-token"
    assert str(signed.headers["Authorization"]).startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/medical-imaging/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=")
    # The body is signed: another body, another signature.
    other = requests.Request("POST", url, data=body + b"x", headers={"Content-Type": content_type}).prepare()
    assert SigV4Auth("us-east-1", credentials=CREDENTIALS)(other).headers["Authorization"] != expected.headers[
        "Authorization"]


def _signed(url: str, secret: str) -> DicomWebSession:
    session = requests.Session()
    session.auth = SigV4Auth("us-east-1", credentials=Credentials(CREDENTIALS.access_key, secret, CREDENTIALS.token))
    return DicomWebSession(url, session=session, backoff_ms=1)


def test_a_signed_session_stores_and_reads_through_a_checking_front() -> None:
    series = series_zip(shape=(3, 16, 16), seed=5)
    datasets = zip_datasets(series.payload)
    study = str(datasets[0].StudyInstanceUID)
    with orthanc_server() as orthanc, dicomweb_front(orthanc.dicomweb_url, secret_key=CREDENTIALS.secret_key) as front:
        session = _signed(front.url, CREDENTIALS.secret_key)
        stored = session.store(datasets, study_instance_uid=study)
        assert len(stored) == len(datasets)
        assert len(session.search_series(study, Modality="CT")) == 1  # a signed query string
        loaded = session.load_series(study, series.series_instance_uid)
        assert loaded.volume.shape[0] == len(datasets)
        methods = {r["method"] for r in front.requests}
        assert methods == {"GET", "POST"}
        assert all(r["signature_problem"] is None for r in front.requests)

        # must-not beside the must: a wrong key is refused by the service-side check
        with pytest.raises(DicomWebAccessDenied, match="HTTP 403"):
            _signed(front.url, "not-the-secret").search_series(study)
        assert front.requests[-1]["signature_problem"] == "signature does not match"
