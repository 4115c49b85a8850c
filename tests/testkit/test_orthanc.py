"""The private Orthanc every DICOMweb test uses: it answers DICOMweb on loopback and leaves no process behind."""

from __future__ import annotations

import json
import os
import urllib.request

from testkit.orthanc import orthanc_server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_orthanc_answers_dicomweb_and_stops_with_the_context():
    with orthanc_server() as server:
        with urllib.request.urlopen(server.dicomweb_url + "/studies", timeout=10) as response:  # noqa: S310
            assert response.status == 200
            # A new server holds no study: QIDO answers an empty JSON list.
            assert json.loads(response.read() or b"[]") == []
        assert _alive(server.pid)
    assert not _alive(server.pid)
