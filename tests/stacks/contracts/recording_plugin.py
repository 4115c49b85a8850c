"""pytest plugin (tests/conftest.py loads it): record the AWS calls of the tests that run the platform's code.

RECORDED_TESTS are the tests whose code runs as a platform role: every Lambda runtime's tests
(``tests/stacks/<stack>_runtime/``, so a new runtime is recorded as soon as its tests exist) and the async
endpoint's handler run in process (``tests/containers/test_handler.py``). Only their calls are recorded.

``recorded_calls(config)`` is what the IAM proof reads. When this session has run every recorded test file in full
and each passed, the calls are this session's (a plain ``make test`` runs them before tests/stacks/test_iam_*.py);
otherwise (the proof run alone, ``-k``, a failed recorded test) the recorded tests run again in a child pytest that
writes its calls with ``--record-aws-calls``, so the proof always reads the calls of the complete set.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.stacks.contracts.recorder import PROJECT_ROOT, RECORDER, install

OPTION = "--record-aws-calls"
# This session's view of the recorded tests (one pytest session per process).
_STATE: dict[str, set[str]] = {}

install()


def recorded_test_files() -> list[Path]:
    """The test files whose calls the IAM proof reads, relative to the repository."""
    files = sorted(PROJECT_ROOT.glob("tests/stacks/*_runtime/test_*.py"))
    files.append(PROJECT_ROOT / "tests" / "containers" / "test_handler.py")
    return [path.relative_to(PROJECT_ROOT) for path in files]


def _recorded(item: pytest.Item) -> bool:
    try:
        return Path(str(item.path)).resolve().relative_to(PROJECT_ROOT) in set(recorded_test_files())
    except ValueError:
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, default=None, metavar="PATH",
                     help="write the AWS calls of the recorded tests (tests/stacks/contracts) to this JSON file")


def pytest_configure(config: pytest.Config) -> None:
    _STATE.update(collected=set(), deselected=set(), passed=set(), failed=set())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _STATE["collected"] = {item.nodeid for item in items if _recorded(item)}


def pytest_deselected(items: list[pytest.Item]) -> None:
    _STATE["deselected"] |= {item.nodeid for item in items if _recorded(item)}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    RECORDER.active, RECORDER.test = _recorded(item), item.nodeid
    try:
        return (yield)
    finally:
        RECORDER.active = False


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _STATE.get("collected", ()):
        return
    if report.failed:
        _STATE["failed"].add(report.nodeid)
    elif report.when == "call" or (report.when == "setup" and report.skipped):
        _STATE["passed"].add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption(OPTION)
    if path:
        Path(path).write_text(json.dumps(RECORDER.calls, indent=1))


def _complete_in_session(config: pytest.Config) -> bool:
    """Every recorded file collected (none in part) and every recorded test already passed in this session."""
    state = _STATE
    collected = state["collected"] - state["deselected"]
    files = {nodeid.split("::", 1)[0] for nodeid in collected}
    if files != {path.as_posix() for path in recorded_test_files()}:
        return False
    if any("::" in arg for arg in config.args) or state["deselected"] or state["failed"]:
        return False
    return collected <= state["passed"]


def recorded_calls(config: pytest.Config) -> list[dict[str, Any]]:
    """The calls of every recorded test: this session's when complete, else a child pytest's."""
    if _complete_in_session(config):
        return list(RECORDER.calls)
    with tempfile.TemporaryDirectory(prefix="aws-calls-") as workdir:
        out = Path(workdir) / "calls.json"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                   *(str(path) for path in recorded_test_files()), OPTION, str(out)]
        result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not out.exists():
            pytest.fail(f"the recorded tests failed, so their AWS calls cannot be proven: {' '.join(command)}\n"
                        f"{(result.stdout + result.stderr)[-3000:]}")
        return list(json.loads(out.read_text()))
