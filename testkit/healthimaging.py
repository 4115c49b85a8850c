"""Test doubles that speak real HealthImaging: image sets built from pydicom datasets, and a loopback server.

* :func:`build_image_set` turns pydicom datasets into what HealthImaging holds after an import: a metadata
  document (Patient / Study / Series / Instances / ImageFrames, served as gzip JSON) and one HTJ2K frame
  (``imagecodecs.htj2k_encode(reversible=True)``) per image frame, with its full-resolution CRC32.
* :func:`serve` runs a ``ThreadingHTTPServer`` on 127.0.0.1 that answers GetImageSetMetadata,
  GetImageFrame, GetImageSet and SearchImageSets as botocore's ``medical-imaging`` model defines them
  (rest-json, paginated search with the API's EQUAL and BETWEEN filters), with optional per-frame latency and
  injected error answers. Unlike the Stubber, requests go through botocore's whole stack, retry handler included.
* :func:`catalog_image_set` builds an image set as a search sees it (no frames), for archives of thousands.
* :func:`stub_load` queues, on a botocore ``Stubber``, the answers one ``load_image_set`` call needs.

Usage::

    image_set = build_image_set(datasets)
    with serve([image_set]) as server:
        client = loopback_client(server.url)
        series = load_image_set(client, image_set.datastore_id, image_set.image_set_id)
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import json
import multiprocessing
import re
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import imagecodecs
import numpy as np
import pydicom
from botocore.response import StreamingBody

from model_code.core.dicom.series import slice_normal
from model_code.healthimaging.client import make_client
from model_code.healthimaging.dicom_json import dataset_to_json
from model_code.healthimaging.document import choose_series, plan_frames

DATASTORE_ID = "0" * 31 + "1"
HTJ2K_TRANSFER_SYNTAX = "1.2.840.10008.1.2.4.202"
# Which level of the document an attribute lives on (HealthImaging normalizes these out of the instances).
PATIENT_KEYWORDS = frozenset({"PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex"})
STUDY_KEYWORDS = frozenset(
    {
        "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
        "StudyDescription", "PatientAge", "PatientSize", "PatientWeight",
    }
)  # fmt: skip
SERIES_KEYWORDS = frozenset(
    {
        "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesDate", "SeriesTime",
        "BodyPartExamined", "ProtocolName", "PatientPosition", "Laterality",
    }
)  # fmt: skip


def _id(*parts: str) -> str:
    """A 32-character lowercase ID (the service's [0-9a-z]{32} pattern), deterministic in its inputs."""
    return hashlib.blake2b("/".join(parts).encode(), digest_size=16).hexdigest()


@dataclass
class FakeImageSet:
    """One image set as HealthImaging stores it: the metadata document and HTJ2K frames by frame ID."""

    datastore_id: str
    image_set_id: str
    document: dict[str, Any]
    frames: dict[str, bytes]
    created_at: float = field(default_factory=time.time)
    _blob: bytes | None = field(default=None, repr=False)

    @property
    def metadata_blob(self) -> bytes:
        if self._blob is None:
            self._blob = gzip.compress(json.dumps(self.document).encode(), compresslevel=1)
        return self._blob

    @property
    def study_instance_uid(self) -> str:
        return str(self.document["Study"]["DICOM"].get("StudyInstanceUID", ""))

    def frame_ids(self, series_instance_uid: str | None = None) -> list[str]:
        """Frame IDs in the order ``load_image_set`` requests them."""
        choice = choose_series(self.document, series_instance_uid)
        return [plan.frame_id for plan in plan_frames(self.document, choice.series_instance_uid)]


def _frames_of(dataset: pydicom.Dataset, pixels: np.ndarray | None) -> np.ndarray:
    stored = dataset.pixel_array if pixels is None else np.asarray(pixels)
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    return stored.reshape(frames, int(dataset.Rows), int(dataset.Columns))


def build_image_set(
    datasets: Sequence[pydicom.Dataset],
    *,
    pixel_arrays: Sequence[np.ndarray | None] | None = None,
    datastore_id: str = DATASTORE_ID,
    image_set_id: str | None = None,
    checksums: bool = True,
) -> FakeImageSet:
    """The image set an import of ``datasets`` would create (several series allowed, instance order kept).

    ``pixel_arrays[i]`` gives the stored values of dataset i (frames, rows, cols or rows, cols) when its own
    pixel data is absent or compressed in a syntax pydicom cannot decode here. Every frame is HTJ2K
    encoded losslessly; ``checksums=False`` leaves the CRC32 out of the document (older image sets).
    """
    if not datasets:
        raise ValueError("an image set needs at least one dataset")
    first = datasets[0]
    image_set_id = image_set_id or _id(datastore_id, str(first.get("StudyInstanceUID", "")), str(len(datasets)))
    patient: dict[str, Any] = {}
    study: dict[str, Any] = {}
    series_map: dict[str, dict[str, Any]] = {}
    frames: dict[str, bytes] = {}
    for index, dataset in enumerate(datasets):
        attributes, vrs = dataset_to_json(dataset)
        for keywords, level in ((PATIENT_KEYWORDS, patient), (STUDY_KEYWORDS, study)):
            for keyword in keywords & attributes.keys():
                level.setdefault(keyword, attributes.pop(keyword))
        series_uid = str(dataset.SeriesInstanceUID)
        series = series_map.setdefault(series_uid, {"DICOM": {}, "Instances": {}})
        for keyword in SERIES_KEYWORDS & attributes.keys():
            series["DICOM"].setdefault(keyword, attributes.pop(keyword))
        pixels = pixel_arrays[index] if pixel_arrays is not None else None
        image_frames = []
        if pixels is not None or "PixelData" in dataset:
            for number, frame in enumerate(_frames_of(dataset, pixels)):
                frame = np.ascontiguousarray(frame)
                frame_id = _id(image_set_id, str(dataset.SOPInstanceUID), str(number))
                frames[frame_id] = bytes(imagecodecs.htj2k_encode(frame, reversible=True))
                entry: dict[str, Any] = {
                    "ID": frame_id,
                    "MinPixelValue": int(frame.min()),
                    "MaxPixelValue": int(frame.max()),
                    "FrameSizeInBytes": len(frames[frame_id]),
                }
                if checksums:
                    height, width = frame.shape
                    entry["PixelDataChecksumFromBaseToFullResolution"] = [
                        {"Width": width, "Height": height, "Checksum": zlib.crc32(frame.data)}
                    ]
                image_frames.append(entry)
        series["Instances"][str(dataset.SOPInstanceUID)] = {
            "DICOM": attributes,
            "DICOMVRs": vrs,
            "StoredTransferSyntaxUID": HTJ2K_TRANSFER_SYNTAX,
            "ImageFrames": image_frames,
        }
    document = {
        "SchemaVersion": "1.1",
        "DatastoreID": datastore_id,
        "ImageSetID": image_set_id,
        "Patient": {"DICOM": patient},
        "Study": {"DICOM": study, "Series": series_map},
    }
    return FakeImageSet(datastore_id=datastore_id, image_set_id=image_set_id, document=document, frames=frames)


# --- botocore Stubber answers -------------------------------------------------------------------------


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def metadata_response(image_set: FakeImageSet) -> dict[str, Any]:
    blob = image_set.metadata_blob
    return {"imageSetMetadataBlob": _body(blob), "contentType": "application/json", "contentEncoding": "gzip"}


def frame_response(data: bytes, content_type: str = "image/jph") -> dict[str, Any]:
    return {"imageFrameBlob": _body(data), "contentType": content_type}


def stub_load(
    stubber: Any,
    image_set: FakeImageSet,
    *,
    series_instance_uid: str | None = None,
    frames: dict[str, bytes] | None = None,
    stop_after: str | None = None,
) -> None:
    """Queue the metadata and every frame answer of one ``load_image_set(..., max_workers=1)`` call.

    The Stubber answers in queue order, so the load must run one fetch thread. ``frames`` overrides the
    stored bytes of some frames (to serve a corrupted one); ``stop_after`` ends the queue at that frame,
    for a load that fails there.
    """
    ids = {"datastoreId": image_set.datastore_id, "imageSetId": image_set.image_set_id}
    stubber.add_response("get_image_set_metadata", metadata_response(image_set), ids)
    for frame_id in image_set.frame_ids(series_instance_uid):
        data = (frames or {}).get(frame_id, image_set.frames[frame_id])
        stubber.add_response(
            "get_image_frame", frame_response(data), {**ids, "imageFrameInformation": {"imageFrameId": frame_id}}
        )
        if frame_id == stop_after:
            break


# --- loopback HealthImaging ---------------------------------------------------------------------------

_ROUTES = (
    ("GetImageSetMetadata", re.compile(r"^/datastore/([^/]+)/imageSet/([^/]+)/getImageSetMetadata$")),
    ("GetImageFrame", re.compile(r"^/datastore/([^/]+)/imageSet/([^/]+)/getImageFrame$")),
    ("GetImageSet", re.compile(r"^/datastore/([^/]+)/imageSet/([^/]+)/getImageSet$")),
    ("SearchImageSets", re.compile(r"^/datastore/([^/]+)/searchImageSets$")),
)


@dataclass(frozen=True)
class Fault:
    """An error answer to give instead of the real one: HTTP status and the service's error code."""

    operation: str
    status: int
    code: str


THROTTLED = 429, "ThrottlingException"
INTERNAL_ERROR = 500, "InternalServerException"
UNAVAILABLE = 503, "ServiceUnavailableException"


class LoopbackHealthImaging:
    """The state behind a loopback server: image sets, latency, queued faults, and request counts."""

    def __init__(self, image_sets: Sequence[FakeImageSet], *, latency_s: float = 0.0, page_size: int = 50):
        self.image_sets = {(s.datastore_id, s.image_set_id): s for s in image_sets}
        self.latency_s = latency_s
        self.page_size = page_size
        self.requests: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._matches: dict[tuple[str, str, int], list[FakeImageSet]] = {}  # the last search's answer
        self._lock = threading.Lock()
        self.url = ""

    def fail_next(self, operation: str, status: int, code: str, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``operation`` with this error (queued after earlier faults)."""
        with self._lock:
            self._faults.extend(Fault(operation, status, code) for _ in range(times))

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            self.requests[operation] += 1
            for index, fault in enumerate(self._faults):
                if fault.operation == operation:
                    return self._faults.pop(index)
        return None

    def handle(self, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict[str, str], bytes]:
        routed = [(name, found) for name, pattern in _ROUTES if (found := pattern.match(path)) is not None]
        if not routed:
            return _error(404, "UnknownOperationException", f"no route for {path}")
        operation, match = routed[0]
        fault = self._take_fault(operation)
        if fault is not None:
            return _error(fault.status, fault.code, f"injected {fault.code}")
        if operation == "SearchImageSets":
            return self._search(match.group(1), query, body)
        image_set = self.image_sets.get((match.group(1), match.group(2)))
        if image_set is None:
            return _error(404, "ResourceNotFoundException", f"image set {match.group(2)} does not exist")
        if operation == "GetImageSetMetadata":
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            return 200, headers, image_set.metadata_blob
        if operation == "GetImageFrame":
            frame_id = json.loads(body or b"{}").get("imageFrameId", "")
            data = image_set.frames.get(frame_id)
            if data is None:
                return _error(404, "ResourceNotFoundException", f"image frame {frame_id} does not exist")
            if self.latency_s:
                time.sleep(self.latency_s)  # a network round trip: waits without using the CPU
            return 200, {"Content-Type": "image/jph"}, data
        return _json(200, _image_set_properties(image_set))

    def _search(self, datastore_id: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict, bytes]:
        criteria = json.loads(body or b"{}")  # the request's payload is its searchCriteria
        try:
            tests = [_filter_test(search_filter) for search_filter in criteria.get("filters", [])]
        except ValueError as error:
            return _error(400, "ValidationException", str(error))
        # Every page of one search asks the same question: answer it once (the image sets never change here).
        question = (datastore_id, json.dumps(criteria, sort_keys=True), len(self.image_sets))
        matches = self._matches.get(question)
        if matches is None:
            summaries = {key: _summary(s) for key, s in self.image_sets.items()}
            matches = [
                s
                for key, s in sorted(self.image_sets.items())
                if key[0] == datastore_id and all(test(summaries[key], s) for test in tests)
            ]
            self._matches = {question: matches}
        start = int(query.get("nextToken", ["0"])[0])
        size = min(int(query.get("maxResults", [str(self.page_size)])[0]), self.page_size)
        page = matches[start : start + size]
        answer: dict[str, Any] = {"imageSetsMetadataSummaries": [_summary(s) for s in page]}
        if start + size < len(matches):
            answer["nextToken"] = str(start + size)
        return _json(200, answer)


# SearchImageSets' filters as the API reference defines them (SearchFilter, SearchByAttributeValue): each value
# names one attribute; EQUAL takes one value, BETWEEN two (inclusive); the filters of a search all apply.
_EQUAL_ATTRIBUTES = {
    "DICOMPatientId": "DICOMPatientId",
    "DICOMAccessionNumber": "DICOMAccessionNumber",
    "DICOMStudyId": "DICOMStudyId",
    "DICOMStudyInstanceUID": "DICOMStudyInstanceUID",
    "DICOMSeriesInstanceUID": "DICOMSeriesInstanceUID",
}


def _filter_test(search_filter: dict[str, Any]) -> Any:
    operator = search_filter.get("operator")
    values = search_filter.get("values", [])
    attributes = {name for value in values for name in value}
    if len(attributes) != 1:
        raise ValueError(f"a filter's values must name one attribute, got {sorted(attributes)}")
    (attribute,) = attributes
    if operator == "EQUAL":
        if len(values) != 1 or attribute not in _EQUAL_ATTRIBUTES:
            raise ValueError(f"EQUAL takes one value of a searchable attribute, got {values}")
        wanted = values[0][attribute]
        return lambda summary, _: summary["DICOMTags"].get(_EQUAL_ATTRIBUTES[attribute]) == wanted
    if operator == "BETWEEN":
        if len(values) != 2:
            raise ValueError(f"BETWEEN takes two values, got {len(values)}")
        if attribute == "DICOMStudyDateAndTime":
            low, high = (v[attribute].get("DICOMStudyDate", "") + v[attribute].get("DICOMStudyTime", "")
                         for v in values)

            def in_range(summary: dict[str, Any], _: FakeImageSet) -> bool:
                tags = summary["DICOMTags"]
                stamp = tags.get("DICOMStudyDate", "") + (tags.get("DICOMStudyTime", "") or "000000")
                return bool(tags.get("DICOMStudyDate")) and low <= stamp <= high

            return in_range
        if attribute in ("createdAt", "updatedAt"):
            low_s, high_s = (float(v[attribute]) for v in values)
            return lambda _, s: low_s <= s.created_at <= high_s
    raise ValueError(f"operator {operator!r} does not apply to {attribute}")


def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    # rest-json errors: botocore reads the code from x-amzn-ErrorType and the message from the body.
    answer = _json(status, {"message": message})
    return status, {**answer[1], "x-amzn-ErrorType": code}, answer[2]


# DICOMTags of a summary (botocore's DICOMTags shape) and where the document keeps each.
_SUMMARY_TAGS = (
    ("DICOMPatientId", "Patient", "PatientID"),
    ("DICOMStudyInstanceUID", "Study", "StudyInstanceUID"),
    ("DICOMStudyId", "Study", "StudyID"),
    ("DICOMAccessionNumber", "Study", "AccessionNumber"),
    ("DICOMStudyDescription", "Study", "StudyDescription"),
    ("DICOMStudyDate", "Study", "StudyDate"),
    ("DICOMStudyTime", "Study", "StudyTime"),
    ("DICOMSeriesInstanceUID", "Series", "SeriesInstanceUID"),
    ("DICOMSeriesModality", "Series", "Modality"),
    ("DICOMSeriesBodyPart", "Series", "BodyPartExamined"),
)


def _summary(image_set: FakeImageSet) -> dict[str, Any]:
    study = image_set.document["Study"]
    series: tuple[str, dict[str, Any]] = next(iter(study.get("Series", {}).items()), ("", {"DICOM": {}}))
    levels = {
        "Patient": image_set.document.get("Patient", {}).get("DICOM", {}),
        "Study": study["DICOM"],
        "Series": {"SeriesInstanceUID": series[0], **series[1].get("DICOM", {})},
    }
    tags: dict[str, Any] = {"DICOMStudyInstanceUID": "", "DICOMStudyId": ""}
    for tag, level, keyword in _SUMMARY_TAGS:
        value = levels[level].get(keyword)
        if isinstance(value, str | int | float) and value != "":
            tags[tag] = str(value)
    tags["DICOMNumberOfStudyRelatedSeries"] = len(study.get("Series", {}))
    return {
        "imageSetId": image_set.image_set_id,
        "version": 1,
        "createdAt": image_set.created_at,
        "updatedAt": image_set.created_at,
        "DICOMTags": tags,
    }


def catalog_image_set(
    index: int,
    *,
    datastore_id: str = DATASTORE_ID,
    modality: str = "CT",
    study_date: str = "20200101",
    patient_id: str | None = None,
    accession_number: str | None = None,
) -> FakeImageSet:
    """An image set as a search sees it (patient, study and one series; no frames): archives of thousands cheaply."""
    study_uid = f"1.2.826.0.1.3680043.10.1000.{index}"
    series_uid = f"{study_uid}.1"
    image_set_id = _id(datastore_id, "catalog", str(index))
    document = {
        "SchemaVersion": "1.1",
        "DatastoreID": datastore_id,
        "ImageSetID": image_set_id,
        "Patient": {"DICOM": {"PatientID": patient_id or f"P{index % 997:04d}"}},
        "Study": {
            "DICOM": {
                "StudyInstanceUID": study_uid,
                "StudyID": str(index),
                "AccessionNumber": accession_number or f"A{index:07d}",
                "StudyDate": study_date,
                "StudyTime": "120000",
            },
            "Series": {series_uid: {"DICOM": {"Modality": modality, "SeriesNumber": 1}, "Instances": {}}},
        },
    }
    return FakeImageSet(
        datastore_id=datastore_id, image_set_id=image_set_id, document=document, frames={},
        created_at=1.7e9 + index,
    )  # fmt: skip


def _image_set_properties(image_set: FakeImageSet) -> dict[str, Any]:
    return {
        "datastoreId": image_set.datastore_id,
        "imageSetId": image_set.image_set_id,
        "versionId": "1",
        "imageSetState": "ACTIVE",
        "imageSetWorkflowStatus": "CREATED",
        "createdAt": image_set.created_at,
        "updatedAt": image_set.created_at,
    }


def _handler(state: LoopbackHealthImaging) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: botocore reuses pooled connections

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in one write; no Nagle delay on the last segment either.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            status, headers, payload = state.handle(parts.path, parse_qs(parts.query), body)
            head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
            head += [f"{name}: {value}" for name, value in {**headers, "Content-Length": len(payload)}.items()]
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output clean

    return Handler


@contextlib.contextmanager
def serve(
    image_sets: Sequence[FakeImageSet], *, latency_s: float = 0.0, page_size: int = 50
) -> Iterator[LoopbackHealthImaging]:
    """Run a loopback HealthImaging on 127.0.0.1 (a free port) in this process; yields its state (``.url``)."""
    state = LoopbackHealthImaging(image_sets, latency_s=latency_s, page_size=page_size)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="loopback-healthimaging", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _serve_until_told(image_sets: Sequence[FakeImageSet], latency_s: float, connection: Any) -> None:
    with serve(image_sets, latency_s=latency_s) as state:
        connection.send(state.url)
        connection.recv()  # any message, or the parent closing the pipe, stops the server


@contextlib.contextmanager
def serve_in_subprocess(image_sets: Sequence[FakeImageSet], *, latency_s: float = 0.0) -> Iterator[str]:
    """Like :func:`serve`, in a child process (so the server does not share the client's GIL); yields the URL.

    Faults and request counts are not reachable across the process boundary: use :func:`serve` for those.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_until_told, args=(list(image_sets), latency_s, child), daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the loopback HealthImaging process did not start within 60 s")
        yield str(parent.recv())
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join()


def loopback_client(url: str, **kwargs: Any) -> Any:
    """A client for a loopback server: dummy credentials, no host prefix, the connector's retry settings."""
    return make_client(
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - a dummy the loopback server never checks
        **kwargs,
    )


# --- a CT series from the slice pydicom ships ---------------------------------------------------------

CT_SLICE = "J2K_pixelrep_mismatch.dcm"  # a 512x512 signed CT slice (J2K-compressed, oblique orientation)


def ct_series(
    slices: int, *, series_instance_uid: str | None = None, study_instance_uid: str | None = None
) -> tuple[list[pydicom.Dataset], list[np.ndarray]]:
    """``slices`` single-frame CT instances stacked along the slice normal, and their stored values.

    Built from pydicom's real CT slice: each slice is that image shifted by its index (so every frame differs),
    positioned one SliceThickness further along the normal. The datasets carry no pixel data (pass the
    arrays to :func:`build_image_set`), in ascending slice order.
    """
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    path = get_testdata_file(CT_SLICE)
    if not isinstance(path, str):
        raise FileNotFoundError(f"pydicom's test file {CT_SLICE} is missing: reinstall pydicom")
    source = pydicom.dcmread(path)
    base = source.pixel_array  # int16, decoded by pydicom with PixelRepresentation honoured
    del source.PixelData
    series_instance_uid = series_instance_uid or str(generate_uid(entropy_srcs=[str(path), str(slices)]))
    study_instance_uid = study_instance_uid or str(source.StudyInstanceUID)
    orientation = np.asarray(source.ImageOrientationPatient, dtype=float)
    normal = slice_normal(orientation)
    origin = np.asarray(source.ImagePositionPatient, dtype=float)
    thickness = float(source.SliceThickness)
    datasets: list[pydicom.Dataset] = []
    arrays: list[np.ndarray] = []
    for index in range(slices):
        dataset = copy.deepcopy(source)  # a shallow copy would share (and so mutate) the source's elements
        dataset.StudyInstanceUID = study_instance_uid
        dataset.SeriesInstanceUID = series_instance_uid
        dataset.SOPInstanceUID = generate_uid(entropy_srcs=[series_instance_uid, str(index)])
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [f"{v:.4f}" for v in origin + index * thickness * normal]
        datasets.append(dataset)
        arrays.append(np.roll(base, index, axis=1) + np.int16(index % 64))
    return datasets, arrays
