"""From the main suite: run test_map_app.py in the MAP venv (``make map-venv``; TEST_PREREQS builds it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAP_PYTHON = REPO / ".venv-map" / "bin" / "python"


def test_map_app_passes_in_the_map_venv() -> None:
    assert MAP_PYTHON.exists(), f"{MAP_PYTHON} is missing: run `make map-venv`"
    # holoscan asks for a 32 MB stack; it runs with less, but warns.
    run_tests = f"{MAP_PYTHON} -m pytest tests/map_app/test_map_app.py -q -p no:cacheprovider"
    command = f"ulimit -s 32768 2>/dev/null; exec {run_tests}"
    completed = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    # "N passed[, W warnings] in ..." only: a skipped or xfailed test would add "M skipped" to that line.
    assert re.search(r"^\d+ passed(, \d+ warnings?)? in ", completed.stdout, re.MULTILINE), completed.stdout[-2000:]
