"""The Triton python-backend model in the real tritonserver (nvidia-pytriton's), driven as SageMaker's
multi-model endpoint drives it: explicit model control, archives unpacked into the repository, the
repository API to load and unload, inference over HTTP.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import highdicom as hd
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from model_code.triton_model.package import package_triton_model
from testkit.series import SeriesZip, dice, seg_mask
from testkit.servers import ServerProcess, http_status, post, triton_infer_zips

pytestmark = pytest.mark.integration


def deploy(archive: Path, repository: Path) -> str:
    """What the endpoint does with a TargetModel: unpack its archive into the model repository."""
    with tarfile.open(archive) as opened:
        opened.extractall(repository, filter="data")
    return archive.name.removesuffix(".tar.gz")


def repository_state(server: ServerProcess) -> dict[str, str]:
    status, _, body = post(server.url + "/v2/repository/index")
    assert status == 200, body
    return {entry["name"]: entry.get("state", "") for entry in json.loads(body)}


def test_multi_model_flow(
    tritonserver: tuple[ServerProcess, Path], model_dirs: dict[str, Path], phantom: SeriesZip, tmp_path: Path
) -> None:
    server, repository = tritonserver
    first = deploy(package_triton_model(model_dirs["spleen"], tmp_path / "spleen-v1.tar.gz"), repository)
    config_text = (repository / first / "config.pbtxt").read_text()
    assert text_format.Parse(config_text, model_config_pb2.ModelConfig()).name == first

    # explicit model control: unpacked is not loaded
    assert post(f"{server.url}/v2/models/{first}/infer", b"{}")[0] in (400, 404)
    status, _, body = post(f"{server.url}/v2/repository/models/{first}/load")
    assert status == 200, body
    # the load answers once initialize has returned, warm-up (a phantom through the whole flow) included
    assert http_status(f"{server.url}/v2/models/{first}/ready") == 200
    assert _logged(server, f"{first}: warmed up in "), server.logs()[-3000:]

    # two series in one request: the batch dimension
    status, segs, summaries, body = triton_infer_zips(server.url, first, [phantom.payload, phantom.payload])
    assert status == 200, body[:500]
    assert len(segs) == len(summaries) == 2
    for seg_bytes, summary in zip(segs, summaries, strict=True):
        seg = hd.seg.segread(io.BytesIO(seg_bytes))
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == phantom.series_instance_uid
        assert dice(seg_mask(seg_bytes, phantom.sop_instance_uids), phantom.mask) > 0.9
        assert json.loads(summary)["model_name"] == first

    # bad input answers that request with a 4xx, not a 500, and the model stays loaded
    status, _, _, body = triton_infer_zips(server.url, first, [b"not a zip"])
    assert status == 400
    assert "not a readable zip archive" in json.loads(body)["error"]

    status, _, body = post(f"{server.url}/v2/repository/models/{first}/unload")
    assert status == 200, body

    # a second archive: another model honouring the contract, loaded beside the first's unloaded entry
    second = deploy(package_triton_model(model_dirs["bright"], tmp_path / "spleen-v2.tar.gz"), repository)
    status, _, body = post(f"{server.url}/v2/repository/models/{second}/load")
    assert status == 200, body
    status, segs, summaries, body = triton_infer_zips(server.url, second, [phantom.payload])
    assert status == 200, body[:500]
    summary = json.loads(summaries[0])
    assert (summary["model_name"], summary["model"]["version"]) == (second, "0.0.2-bright")
    # its HU band (400..3000) holds no organ voxels: a different model really answered
    assert dice(seg_mask(segs[0], phantom.sop_instance_uids), phantom.mask) < 0.1

    states = repository_state(server)
    assert states[second] == "READY"
    assert states[first] != "READY"


def _logged(server: ServerProcess, text: str) -> bool:
    """Whether the server's log holds ``text``; the stub's log messages reach it through a queue, so a moment."""
    import time

    deadline = time.monotonic() + 30
    while text not in server.log_path.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.5)
    return text in server.log_path.read_text(errors="replace")


def test_a_zoo_layout_bundle_zip_is_served_by_triton(
    tritonserver: tuple[ServerProcess, Path], phantom: SeriesZip, tmp_path: Path
) -> None:
    import zipfile

    from testkit.models import save_zoo_spleen_bundle

    server, repository = tritonserver
    bundle = save_zoo_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    zipped_bundle = tmp_path / "spleen_ct_segmentation.zip"
    with zipfile.ZipFile(zipped_bundle, "w") as zipped:  # as the zoo ships it: the bundle in its own folder
        for path in sorted(bundle.rglob("*")):
            zipped.write(path, f"spleen_ct_segmentation/{path.relative_to(bundle).as_posix()}")
    name = deploy(package_triton_model(zipped_bundle, tmp_path / "zoo-spleen.tar.gz"), repository)
    assert (repository / name / "1" / "configs" / "inference.json").is_file()
    status, _, body = post(f"{server.url}/v2/repository/models/{name}/load")
    assert status == 200, body
    status, segs, summaries, body = triton_infer_zips(server.url, name, [phantom.payload])
    assert status == 200, body[:500]
    assert dice(seg_mask(segs[0], phantom.sop_instance_uids), phantom.mask) > 0.9
    assert [s["label"] for s in json.loads(summaries[0])["segments"]] == ["spleen"]
    status, _, body = post(f"{server.url}/v2/repository/models/{name}/unload")
    assert status == 200, body
