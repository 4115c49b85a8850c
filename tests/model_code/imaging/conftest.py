"""Fixtures for the imaging tests: the dciodvfy validator (Debian dicom3tools)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


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
