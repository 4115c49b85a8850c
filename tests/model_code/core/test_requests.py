"""Request decoding: every body the endpoint accepts, and every malformed one with its status and message."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from model_code.core.errors import ClientError
from model_code.core.requests import (
    MAX_ZIP_MEMBERS,
    DicomWebRequest,
    HealthImagingRequest,
    S3SeriesRequest,
    ZipSeriesRequest,
    decode_request,
    media_type,
)

DATASTORE = "a" * 32
IMAGE_SET = "0123456789abcdef0123456789abcdef"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _corrupt_crc() -> bytes:
    data = bytearray(_zip({"a.dcm": b"x" * 200}))
    position = data.index(b"x" * 200)
    data[position] = ord("y")  # the stored CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        # HealthImaging image set, str body (the toolkit decodes application/json to str)
        (json.dumps({"datastoreId": DATASTORE, "imageSetId": IMAGE_SET}), "application/json",
         HealthImagingRequest(DATASTORE, IMAGE_SET)),
        # bytes body, charset parameter, a chosen series
        (json.dumps({"datastoreId": DATASTORE, "imageSetId": IMAGE_SET, "seriesInstanceUid": "1.2.3"}).encode(),
         "application/json; charset=utf-8", HealthImagingRequest(DATASTORE, IMAGE_SET, "1.2.3")),
        # a series under an S3 prefix
        (json.dumps({"dicomS3Uri": "s3://my-bucket/studies/1/"}), "Application/JSON", None),
        # a series on a DICOMweb server (the predict CLI's --dicomweb-url source), auth by host
        (json.dumps({"dicomwebUrl": "http://pacs:8042/dicom-web/", "studyInstanceUid": "1.2",
                     "seriesInstanceUid": "1.2.3"}), "application/json",
         DicomWebRequest("http://pacs:8042/dicom-web", "1.2", "1.2.3")),
        # ... and with the auth chosen
        (json.dumps({"dicomwebUrl": "https://h/dicom-web", "studyInstanceUid": "1.2", "seriesInstanceUid": "1.2.3",
                     "dicomwebAuth": "none"}), "application/json",
         DicomWebRequest("https://h/dicom-web", "1.2", "1.2.3", "none")),
    ],
)
def test_json_requests_decode(body: object, content_type: str, expected: object) -> None:
    decoded = decode_request(body, content_type)  # type: ignore[arg-type]
    if expected is None:
        assert isinstance(decoded, S3SeriesRequest)
        assert (decoded.location.bucket, decoded.location.key) == ("my-bucket", "studies/1/")
    else:
        assert decoded == expected


@pytest.mark.parametrize("content_type", ["application/zip", "application/x-zip-compressed"])
def test_zip_requests_keep_the_payload(content_type: str) -> None:
    payload = _zip({"series/1.dcm": b"DICM"})
    decoded = decode_request(payload, content_type)
    assert isinstance(decoded, ZipSeriesRequest)
    assert decoded.payload == payload
    assert "bytes" in repr(decoded)
    assert "DICM" not in repr(decoded)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        # unknown content types
        (b"{}", "text/plain", 415, "content type 'text/plain' is not supported"),
        (b"{}", None, 415, "content type '(none)' is not supported"),
        (b"x", "application/dicom", 415, "send application/json"),
        # malformed JSON
        (b"", "application/json", 400, "the request body is empty"),
        (b"{not json", "application/json", 400, "the body is not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "the body is not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be an object, got list"),
        (b'{"datastoreId": "' + DATASTORE.encode() + b'"}', "application/json", 400, "missing ['imageSetId']"),
        (json.dumps({"datastoreId": DATASTORE, "imageSetId": IMAGE_SET, "extra": 1}).encode(), "application/json",
         400, "unexpected ['extra']"),
        (json.dumps({"datastoreId": "short", "imageSetId": IMAGE_SET}).encode(), "application/json", 400,
         "datastoreId must be 32 lowercase letters or digits"),
        (json.dumps({"datastoreId": DATASTORE, "imageSetId": 7}).encode(), "application/json", 400,
         "imageSetId must be 32"),
        (json.dumps({"dicomS3Uri": "s://bucket/x"}).encode(), "application/json", 400,
         "dicomS3Uri must look like s3://bucket/prefix/"),
        (json.dumps({"dicomS3Uri": "s3://bucket/x", "imageSetId": IMAGE_SET}).encode(), "application/json", 400,
         "unexpected keys ['imageSetId'] beside dicomS3Uri"),
        (json.dumps({"dicomS3Uri": "s3://bucket/x", "seriesInstanceUid": "1.2.x"}).encode(), "application/json",
         400, "seriesInstanceUid must be a DICOM UID"),
        # malformed DICOMweb sources
        (json.dumps({"dicomwebUrl": "http://h/dicom-web", "studyInstanceUid": "1.2"}).encode(), "application/json",
         400, "missing ['seriesInstanceUid']"),
        (json.dumps({"dicomwebUrl": "file:///etc/passwd", "studyInstanceUid": "1.2", "seriesInstanceUid": "1.3"}
                    ).encode(), "application/json", 400, "dicomwebUrl must be an http(s) DICOMweb root"),
        (json.dumps({"dicomwebUrl": "http://h", "studyInstanceUid": "x", "seriesInstanceUid": "1.3"}).encode(),
         "application/json", 400, "studyInstanceUid must be a DICOM UID"),
        (json.dumps({"dicomwebUrl": "http://h", "studyInstanceUid": "1.2", "seriesInstanceUid": "1.3",
                     "dicomwebAuth": "basic"}).encode(), "application/json", 400, "dicomwebAuth must be one of"),
        (json.dumps({"dicomwebUrl": "http://h", "studyInstanceUid": "1.2", "seriesInstanceUid": "1.3",
                     "imageSetId": IMAGE_SET}).encode(), "application/json", 400, "unexpected ['imageSetId']"),
        # malformed zips
        (b"", "application/zip", 400, "the request body is empty"),
        (b"PK\x03\x04 truncated", "application/zip", 400, "not a readable zip archive"),
        (b"plain text", "application/zip", 400, "not a readable zip archive"),
        (_corrupt_crc(), "application/zip", 400, "zip member 'a.dcm' is corrupt"),
    ],
)
def test_malformed_requests_are_client_errors(
    body: bytes, content_type: str | None, status: int, message: str
) -> None:
    with pytest.raises(ClientError) as caught:
        decode_request(body, content_type)
    assert caught.value.status == status
    assert message in caught.value.message
    document = json.loads(caught.value.to_json())
    assert document["error"]["status"] == status
    assert message in document["error"]["message"]


def _declaring(members: dict[str, bytes], file_size: int) -> bytes:
    """A zip whose central directory claims ``file_size`` bytes per member while holding a few: a bomb's signature.

    Its CRCs are wrong too: decompressing (testzip) would answer 400, so a 413 shows the headers decided first.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for info in archive.filelist:  # written into the central directory on close
            info.file_size = file_size
            info.CRC ^= 1
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "limit", "message"),
    [
        # members whose headers declare 3 x 1 GiB: refused from the headers, under any sane limit
        (_declaring({"a.dcm": b"x", "b.dcm": b"y", "c.dcm": b"z"}, 1 << 30), 2 << 30,
         "the zip expands to 3221225472 bytes, over this server's limit of 2147483648"),
        # honest headers, a limit below them
        (_zip({"a.dcm": b"x" * 600}), 500, "the zip expands to 600 bytes, over this server's limit of 500"),
        # more members than one series has files
        (_zip({f"{n}.dcm": b"" for n in range(MAX_ZIP_MEMBERS + 1)}), 1 << 30,
         f"holds {MAX_ZIP_MEMBERS + 1} members, over the limit of {MAX_ZIP_MEMBERS}"),
    ],
    ids=["declared-bomb", "over-limit", "too-many-members"],
)
def test_oversized_zips_are_413_before_decompression(payload: bytes, limit: int, message: str) -> None:
    with pytest.raises(ClientError) as caught:
        decode_request(payload, "application/zip", max_expanded_bytes=limit)
    assert caught.value.status == 413
    assert message in caught.value.message


def test_a_zip_at_the_limit_is_accepted() -> None:
    payload = _zip({"a.dcm": b"x" * 500})
    assert decode_request(payload, "application/zip", max_expanded_bytes=500) == ZipSeriesRequest(payload)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", "application/json"),
        (" Application/Zip ; charset=binary", "application/zip"),
        (None, ""),
    ],
)
def test_media_type_strips_parameters(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize("status", [200, 302, 500])
def test_client_errors_must_be_4xx(status: int) -> None:
    with pytest.raises(ValueError, match="a ClientError needs a 4xx status"):
        ClientError(status, "nope")


@pytest.mark.parametrize("body_type", [bytes, bytearray])  # bytearray: what TorchServe's worker hands over
def test_a_zip_body_is_kept_not_copied(body_type: type) -> None:
    body = body_type(_zip({"a.dcm": b"x" * 200}))
    request = decode_request(body, "application/zip")
    assert isinstance(request, ZipSeriesRequest)
    assert request.payload is body  # one copy of the upload for the whole request, not two
