"""Suite-wide settings (no test reaches AWS, jsii stays quiet about node 20) and the dciodvfy validator."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

# Records the AWS calls of the tests that run the platform's code, for the IAM proof (tests/stacks/contracts).
pytest_plugins = ["tests.stacks.contracts.recording_plugin"]

# Tests never talk to real AWS: fake credentials and a fixed region for every client built in the suite.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], list[str]]:
    """Returns a function giving dciodvfy's error lines for one file (empty list = valid)."""
    executable = shutil.which("dciodvfy")
    if executable is None:
        pytest.fail("dciodvfy is not installed: run `make dicom-tools` (apt-get install dicom3tools)")

    def errors(path: Path) -> list[str]:
        completed = subprocess.run([executable, str(path)], capture_output=True, text=True, check=False)
        lines = (completed.stdout + completed.stderr).splitlines()
        return [line for line in lines if line.startswith("Error")]

    return errors
