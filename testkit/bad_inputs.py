"""The hostile-but-fair inputs of issue 20, each with the answer every server must give it.

One table, used by the suite against TorchServe, tritonserver and the edge runner (tests/integration,
tests/model_code/edge) and by the soak (benchmarks/soak.py). Each body is built in code from the synthetic
phantom series (``testkit.series``) with one defect put in: a header value written as raw bytes where pydicom
would refuse to write it (NaN, a stray 0xFF byte), a zip built member by member.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import pydicom

from testkit.series import series_zip, zip_members

ZIP = "application/zip"
JSON = "application/json"


@dataclass(frozen=True)
class BadInput:
    """``build()`` -> the body; ``status`` and ``fragment``: the answer's status and a piece of its message.

    ``zip_only``: a case every server meets (Triton and the edge runner read zips only)."""

    name: str
    build: Callable[[], bytes]
    content_type: str | None
    status: int
    fragment: str
    accept: str | None = None
    zip_only: bool = True


@functools.cache
def _phantom() -> bytes:
    return series_zip(shape=(12, 32, 32), seed=7).payload


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _edited(edit: Callable[[pydicom.Dataset], None], *, only_first: bool = False) -> bytes:
    """The phantom with ``edit`` applied to every slice (or the first one) before it is written again."""
    members = {}
    for index, (name, data) in enumerate(zip_members(_phantom()).items()):
        if only_first and index > 0:
            members[name] = data
            continue
        dataset = pydicom.dcmread(io.BytesIO(data))
        edit(dataset)
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        members[name] = buffer.getvalue()
    return _zip(members)


def _raw_value(keyword: str, marker: str, raw: bytes, *, only_first: bool = True) -> bytes:
    """The phantom with ``keyword`` holding bytes pydicom would not write: ``marker`` is written (as the first
    value of a multi-valued attribute), then its bytes are replaced by ``raw`` (same length, so every element
    length stays right)."""
    if len(raw) != len(marker):
        raise ValueError("the raw value must be as long as its marker")
    members = {}
    for index, (name, data) in enumerate(zip_members(_phantom()).items()):
        if not only_first or index == 0:
            dataset = pydicom.dcmread(io.BytesIO(data))
            current = dataset.get(keyword)
            multiple = isinstance(current, pydicom.multival.MultiValue)
            setattr(dataset, keyword, [marker, *list(current)[1:]] if multiple else marker)
            buffer = io.BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue().replace(marker.encode("ascii"), raw, 1)
        members[name] = data
    return _zip(members)


def _set(keyword: str, value: object) -> Callable[[pydicom.Dataset], None]:
    def edit(dataset: pydicom.Dataset) -> None:
        setattr(dataset, keyword, value)

    return edit


def _first_slices(count: int) -> bytes:
    members = zip_members(_phantom())
    return _zip(dict(list(members.items())[:count]))


def _with_member(name: str) -> bytes:
    return _zip({**zip_members(_phantom()), name: b"not read"})


def _corrupt_deflate() -> bytes:
    data = bytearray(_zip(zip_members(_phantom()), compression=zipfile.ZIP_DEFLATED))
    # The first member's compressed bytes start after its 30-byte local header and its name.
    name_length = int.from_bytes(data[26:28], "little")
    start = 30 + name_length + int.from_bytes(data[28:30], "little")
    for offset in range(start + 8, start + 40):
        data[offset] ^= 0xA5
    return bytes(data)


def _zeros_member(size: int) -> bytes:
    return _zip({"series/slice.dcm": bytes(size)}, compression=zipfile.ZIP_DEFLATED)


def _nested_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _unknown_keys(count: int) -> bytes:
    document = {"datastoreId": "a" * 32, "imageSetId": "b" * 32, **{f"key{n:06d}": n for n in range(count)}}
    return json.dumps(document).encode()


def _phantom_body() -> bytes:
    return _phantom()


BAD_INPUTS: list[BadInput] = [
    # -- bodies that are not what they claim
    BadInput("not-a-zip", lambda: b"not a zip", ZIP, 400, "not a readable zip archive"),
    BadInput("empty-zip-body", lambda: b"", ZIP, 400, "the request body is empty"),
    BadInput("corrupt-deflate-data", _corrupt_deflate, ZIP, 400, "zip"),
    BadInput("zip-member-climbs-out", lambda: _with_member("../outside.dcm"), ZIP, 400, "climb out of the archive"),
    BadInput("zip-member-absolute", lambda: _with_member("/etc/slice.dcm"), ZIP, 400, "absolute"),
    BadInput("zip-of-21k-members", lambda: _zip({f"{n}.dcm": b"" for n in range(20_001)}), ZIP, 413,
             "SERVING_MAX_ZIP_MEMBERS"),
    # one 64 MB member of zeros (a 64 KB body): refused as not DICOM without parsing it element by element
    BadInput("zip-of-zeros", lambda: _zeros_member(64 << 20), ZIP, 422, "not DICOM"),
    BadInput("text-in-a-zip", lambda: _zip({"readme.txt": b"no DICOM here"}), ZIP, 422, "not DICOM"),
    # -- series whose headers no model can use
    BadInput("rescale-intercept-0xff", lambda: _raw_value("RescaleIntercept", "-1024", b"-10\xff4"), ZIP, 422,
             "RescaleSlope/RescaleIntercept"),
    BadInput("position-nan", lambda: _raw_value("ImagePositionPatient", "123.5", b"NaN  "), ZIP, 422, "not finite"),
    BadInput("pixel-spacing-0", lambda: _edited(_set("PixelSpacing", [0, 0])), ZIP, 422, "must be positive"),
    BadInput("pixel-spacing-20mm", lambda: _edited(_set("PixelSpacing", [20, 20])), ZIP, 422,
             "SERVING_MAX_SPACING_MM"),
    BadInput("pixel-spacing-1000mm", lambda: _edited(_set("PixelSpacing", [1000, 1000])), ZIP, 422,
             "SERVING_MAX_SPACING_MM"),
    BadInput("two-slices", lambda: _first_slices(2), ZIP, 422, "SERVING_MIN_SLICES"),
    BadInput("one-bit-ct", lambda: _edited(_set("BitsAllocated", 1)), ZIP, 422, "BitsAllocated is 1"),
    BadInput("rgb-ct", lambda: _edited(_set("PhotometricInterpretation", "RGB")), ZIP, 422,
             "PhotometricInterpretation"),
    # -- the HTTP envelope
    BadInput("text-plain", lambda: b"hello", "text/plain", 415, "is not supported"),
    BadInput("accept-png", _phantom_body, ZIP, 406, "cannot answer with 'image/png'", accept="image/png"),
    # -- JSON requests (the SageMaker endpoint only)
    BadInput("json-truncated", lambda: b'{"datastoreId": 1', JSON, 400, "the body is not valid JSON", zip_only=False),
    BadInput("json-array", lambda: b"[]", JSON, 400, "must be an object", zip_only=False),
    BadInput("json-nested-40", lambda: _nested_json(40), JSON, 400, "SERVING_MAX_JSON_DEPTH", zip_only=False),
    BadInput("json-nested-100k", lambda: _nested_json(100_000), JSON, 413, "SERVING_MAX_JSON_BYTES", zip_only=False),
    BadInput("json-200k-unknown-keys", lambda: _unknown_keys(200_000), JSON, 413, "SERVING_MAX_JSON_BYTES",
             zip_only=False),
    BadInput("json-50-unknown-keys", lambda: _unknown_keys(50), JSON, 400, "(50 in all)", zip_only=False),
    BadInput("json-bad-s3-uri", lambda: b'{"dicomS3Uri": "s://bucket/x"}', JSON, 400, "dicomS3Uri must look like s3://",
             zip_only=False),
    BadInput("json-unknown-image-set", lambda: json.dumps({"datastoreId": "a" * 32, "imageSetId": "f" * 32}).encode(),
             JSON, 404, "was not found", zip_only=False),
]

ZIP_BAD_INPUTS = [case for case in BAD_INPUTS if case.zip_only]
