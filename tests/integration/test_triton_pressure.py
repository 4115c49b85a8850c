"""The Triton model in the real tritonserver under issue 20's bad-input table: every zip case answers its
request with Triton's nearest 4xx and the endpoint's own status and message, and the model keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest

from model_code.triton_model.package import package_triton_model
from testkit.bad_inputs import ZIP_BAD_INPUTS, BadInput
from testkit.series import SeriesZip
from testkit.servers import ServerProcess, post, triton_infer_zips
from tests.integration.test_triton import deploy

pytestmark = pytest.mark.integration
# The envelope cases (content type, Accept) belong to the HTTP endpoints: Triton's tensor input has neither.
TRITON_CASES = [case for case in ZIP_BAD_INPUTS if case.name not in {"text-plain", "accept-png"}]


@pytest.fixture(scope="module")
def loaded(tritonserver: tuple[ServerProcess, Path], model_dirs: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    server, repository = tritonserver
    archive = package_triton_model(model_dirs["spleen"], tmp_path_factory.mktemp("triton") / "pressure.tar.gz")
    name = deploy(archive, repository)
    status, _, body = post(f"{server.url}/v2/repository/models/{name}/load")
    assert status == 200, body
    yield server, name
    post(f"{server.url}/v2/repository/models/{name}/unload")


@pytest.mark.parametrize("case", TRITON_CASES, ids=[case.name for case in TRITON_CASES])
def test_bad_input_is_answered_with_the_endpoints_status_and_message(
    loaded: tuple[ServerProcess, str], case: BadInput
) -> None:
    server, name = loaded
    status, _, _, body = triton_infer_zips(server.url, name, [case.build()])
    # Triton has no 413/422: INVALID_ARG is its 400; the message keeps the endpoint's status and reason
    assert status == 400, body[:300]
    message = json.loads(body)["error"]
    assert message.startswith(f"{case.status} {HTTPStatus(case.status).phrase}: ")
    assert case.fragment in message
    assert "Traceback" not in message


def test_the_model_serves_after_the_table(loaded: tuple[ServerProcess, str], phantom: SeriesZip) -> None:
    server, name = loaded
    status, segs, _, body = triton_infer_zips(server.url, name, [phantom.payload])
    assert status == 200, body[:300]
    assert len(segs) == 1
