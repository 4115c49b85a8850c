"""The PyTorch inference handler inside the real sagemaker-pytorch-inference / TorchServe stack on 127.0.0.1."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import highdicom as hd
import pytest

from testkit.series import SeriesZip, dice, seg_mask, series_zip
from testkit.servers import ServerProcess, get, http_status, invoke

pytestmark = pytest.mark.integration


def check_seg(seg_bytes: bytes, series: SeriesZip, tmp_path: Path, dciodvfy: Callable[[Path], list[str]]) -> None:
    """What the segmentation issue checks: a valid SEG of the source series whose mask matches the organ."""
    seg = hd.seg.segread(io.BytesIO(seg_bytes))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_instance_uid
    assert seg.SegmentSequence[0].SegmentLabel == "spleen"
    assert dice(seg_mask(seg_bytes, series.sop_instance_uids), series.mask) > 0.9
    path = tmp_path / f"{seg.SOPInstanceUID}.dcm"
    path.write_bytes(seg_bytes)
    assert dciodvfy(path) == []


def test_the_stack_binds_loopback_only(torchserve: ServerProcess) -> None:
    properties = (torchserve.log_path.parent / "config.properties").read_text()
    assert "0.0.0.0" not in properties  # noqa: S104 - asserting it is absent
    assert f"inference_address={torchserve.url}\n" in properties
    # the toolkit's file lacks its trailing newline: the key after it must still be a key of its own
    assert "enable_model_api=true\n" in properties
    assert "default_response_timeout=900\n" in properties
    assert http_status(torchserve.url + "/ping") == 200


def test_zip_gives_the_seg(
    torchserve: ServerProcess, phantom: SeriesZip, tmp_path: Path, dciodvfy: Callable[[Path], list[str]]
) -> None:
    status, content_type, body = invoke(torchserve.url, phantom.payload, content_type="application/zip",
                                        accept="application/dicom")
    assert (status, content_type) == (200, "application/dicom"), body[:500]
    check_seg(body, phantom, tmp_path, dciodvfy)


def test_zip_gives_the_summary(torchserve: ServerProcess, phantom: SeriesZip) -> None:
    status, content_type, body = invoke(torchserve.url, phantom.payload, content_type="application/zip",
                                        accept="application/json")
    assert (status, content_type) == (200, "application/json"), body[:500]
    document = json.loads(body)
    assert document["source"]["seriesInstanceUid"] == phantom.series_instance_uid
    assert document["summary"]["model"]["version"] == "0.0.1-threshold"


def test_healthimaging_image_set_gives_the_seg(
    torchserve: ServerProcess, phantom: SeriesZip, image_set: Any, tmp_path: Path,
    dciodvfy: Callable[[Path], list[str]],
) -> None:
    request = json.dumps({"datastoreId": image_set.datastore_id, "imageSetId": image_set.image_set_id}).encode()
    status, _, body = invoke(torchserve.url, request, content_type="application/json", accept="application/dicom")
    assert status == 200, body[:500]
    check_seg(body, phantom, tmp_path, dciodvfy)


def test_a_payload_over_torchserves_default_limit_is_accepted(torchserve: ServerProcess) -> None:
    large = series_zip(shape=(56, 256, 256), spacing=(2.5, 0.8, 0.8), seed=3)
    assert len(large.payload) > 6_553_500  # TorchServe's default max_request_size
    status, _, body = invoke(torchserve.url, large.payload, content_type="application/zip",
                             accept="application/json")
    assert status == 200, body[:500]
    assert json.loads(body)["source"]["seriesInstanceUid"] == large.series_instance_uid


def test_concurrent_requests_each_get_their_own_answer(torchserve: ServerProcess) -> None:
    series = [series_zip(shape=(12, 40, 40), seed=seed, patient_id=f"P{seed}") for seed in range(1, 9)]

    def send(item: SeriesZip) -> tuple[int, bytes]:
        status, _, body = invoke(torchserve.url, item.payload, content_type="application/zip",
                                 accept="application/dicom")
        return status, body

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, series))
    for item, (status, body) in zip(series, answers, strict=True):
        assert status == 200, body[:500]
        seg = hd.seg.segread(io.BytesIO(body))
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == item.series_instance_uid
        assert seg.PatientID == item_patient(item)
        # seeds jitter the organ: each SEG matches its own request's organ
        assert dice(seg_mask(body, item.sop_instance_uids), item.mask) > 0.9


def item_patient(item: SeriesZip) -> str:
    with zipfile.ZipFile(io.BytesIO(item.payload)) as archive:
        import pydicom

        first = archive.read(sorted(archive.namelist())[0])
    return str(pydicom.dcmread(io.BytesIO(first), stop_before_pixels=True).PatientID)


def _text_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "no DICOM here")
    return buffer.getvalue()


BAD_INPUTS = [
    # (body, content type, accept, status, message) -- one row per way a caller gets it wrong
    (b'{"datastoreId": 1', "application/json", None, 400, "the body is not valid JSON"),
    (b"[]", "application/json", None, 400, "must be an object"),
    # not UTF-8: the toolkit would fail decoding it before input_fn (a 500); the guard answers 400
    (b"\xff\xfe{}", "application/json", None, 400, "the body is not valid UTF-8 JSON"),
    (b'{"dicomS3Uri": "s://bucket/x"}', "application/json", None, 400, "dicomS3Uri must look like s3://"),
    (b"not a zip", "application/zip", None, 400, "not a readable zip archive"),
    (b"hello", "text/plain", None, 415, "content type 'text/plain' is not supported"),
    (b'{"datastoreId": "' + b"a" * 32 + b'", "imageSetId": "' + b"f" * 32 + b'"}', "application/json", None, 404,
     "was not found in data store"),
    ("text-zip", "application/zip", None, 422, "not a usable series"),
    ("phantom", "application/zip", "image/png", 406, "cannot answer with 'image/png'"),
]


@pytest.mark.parametrize(("body", "content_type", "accept", "status", "message"), BAD_INPUTS)
def test_bad_input_is_a_4xx_json_and_the_server_stays_up(
    torchserve: ServerProcess,
    phantom: SeriesZip,
    body: bytes | str,
    content_type: str,
    accept: str | None,
    status: int,
    message: str,
) -> None:
    payload = {"text-zip": _text_zip, "phantom": lambda: phantom.payload}[body]() if isinstance(body, str) else body
    answered, content, answer = invoke(torchserve.url, payload, content_type=content_type, accept=accept)
    assert (answered, content) == (status, "application/json"), answer[:500]
    error = json.loads(answer)["error"]
    assert error["status"] == status
    assert message in error["message"]
    assert http_status(torchserve.url + "/ping") == 200


def test_each_worker_warms_up_before_it_is_ready(torchserve: ServerProcess) -> None:
    """model_fn segments a phantom (SEG included) before it returns, and TorchServe marks a worker READY only
    once model_fn has returned: every READY worker has logged its warm-up."""
    import time

    deadline = time.monotonic() + 120
    workers: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status, _, body = get(f"{torchserve.url}/models/model")
        workers = json.loads(body)[0]["workers"] if status == 200 else []
        if workers and all(worker["status"] == "READY" for worker in workers):
            break
        time.sleep(0.5)
    assert [worker["status"] for worker in workers] == ["READY", "READY"], workers
    log = torchserve.logs_dir / "model_log.log"  # type: ignore[operator]
    # the frontend copies each worker's stdout into the log on a thread of its own: give it a moment
    while time.monotonic() < deadline and log.read_text().count("warmed up in") < len(workers):
        time.sleep(0.5)
    assert log.read_text().count("warmed up in") >= len(workers), log.read_text()[-3000:]
