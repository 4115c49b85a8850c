"""Record every AWS API call the platform's code makes, through botocore's own event system.

botocore registers ``botocore.handlers.BUILTIN_HANDLERS`` on every Session it creates (boto3's default session,
moto's and Stubber-wrapped clients alike) and each client copies its session's handlers, so appending two handlers
there (``install()``) reaches every client built afterwards without touching the code or the tests:

* ``before-parameter-build`` sees the caller's own parameters (``Bucket``, ``datastoreId``...) after Stubber's
  expected-parameter check, so a call the Stubber refuses is never recorded: what is recorded was really sent;
* ``after-call`` adds the outcome (``ok`` or the error code: a ``NoSuchKey`` is still a call IAM must allow) and the
  answer (the IAM proof reads Describe answers to learn which deployed resource a later call names).

Each call names the code that made it: the project frames outside ``tests/`` and ``testkit/`` on the calling thread,
outermost first, or, for a worker thread (s3transfer, the HealthImaging loader's fetch pool), on the main thread
that waits for it. The outermost frame decides the role (tests/stacks/contracts/roles.py). The ``settings`` and
``event`` arguments of that frame (a handler's ``handle(event, ..., settings=...)``) are kept too: they are what the
proof aligns with the synthesized templates to translate a test's names into the deployed ones.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import botocore.handlers

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# Frames of these top-level folders are test support, never the code a role runs.
NOT_CODE = ("tests", "testkit")
_CONTEXT_KEY = "recorded_call"
_MAX_DEPTH = 12


class Recorder:
    """The calls of one process; ``active`` says whether calls are recorded now (the plugin sets it per test)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.active = False
        self.test = ""
        self._lock = threading.Lock()

    def before_parameter_build(self, params: dict[str, Any], model: Any, context: dict[str, Any] | None = None,
                               **_: Any) -> None:
        if not self.active:
            return
        attribution = _attribution()
        if not attribution["code"]:
            return  # a test's own setup (creating a bucket, uploading a fixture): no role makes it
        service = model.service_model
        call = {
            "test": self.test,
            **attribution,
            "service": service.service_name,
            "signing_name": service.signing_name,
            "operation": model.name,
            "params": jsonable(params),
            "outcome": "not-sent",
            "response": None,
        }
        with self._lock:
            self.calls.append(call)
        if context is not None:
            context[_CONTEXT_KEY] = call

    def after_call(self, parsed: dict[str, Any] | None = None, context: dict[str, Any] | None = None,
                   **_: Any) -> None:
        call = (context or {}).pop(_CONTEXT_KEY, None)
        if call is None:
            return
        parsed = dict(parsed or {})
        error = parsed.pop("Error", None) or {}
        parsed.pop("ResponseMetadata", None)
        call["outcome"] = error.get("Code") or "ok"
        call["response"] = jsonable(parsed)


RECORDER = Recorder()


def install() -> None:
    """Append the recorder's handlers to botocore's built-in handlers (once); sessions made later carry them."""
    for event, handler in (("before-parameter-build", RECORDER.before_parameter_build),
                           ("after-call", RECORDER.after_call)):
        if (event, handler) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append((event, handler))


def jsonable(value: Any, depth: int = 0) -> Any:
    """What JSON can hold of a parameter or an answer: streams and bytes as markers, dates as ISO text."""
    if depth > _MAX_DEPTH:
        return "<deep>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), depth + 1)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"<bytes>": len(value)}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, io.IOBase) or hasattr(value, "read"):
        return "<stream>"
    return f"<{type(value).__name__}>"


def _code_frames(frame: FrameType | None) -> list[FrameType]:
    """The project's code frames on a stack (not tests, not test support, not the venvs), innermost first."""
    out = []
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<"):
            try:
                parts = Path(filename).resolve().relative_to(PROJECT_ROOT).parts
            except ValueError:
                parts = ()
            if parts and parts[0] not in NOT_CODE and not parts[0].startswith((".venv", "node_modules")):
                out.append(frame)
        frame = frame.f_back
    return out


def _attribution() -> dict[str, Any]:
    frames = _code_frames(sys._getframe(2))
    if threading.current_thread() is not threading.main_thread():
        # A worker thread starts at its pool's loop: the code that started the work waits on the main thread.
        frames += _code_frames(sys._current_frames().get(threading.main_thread().ident or 0))
    chain = [f"{Path(f.f_code.co_filename).resolve().relative_to(PROJECT_ROOT)}:{f.f_code.co_name}"
             for f in reversed(frames)]
    entry = frames[-1] if frames else None
    arguments: dict[str, Any] = {}
    if entry is not None:
        for name in ("settings", "event"):
            if name in entry.f_locals:
                arguments[name] = jsonable(entry.f_locals[name])
        settings = entry.f_locals.get("settings")
        if dataclasses.is_dataclass(settings):
            arguments["settings_type"] = f"{type(settings).__module__}.{type(settings).__qualname__}"
    return {"code": chain, **arguments}
