"""Start tritonserver and watch its python backend stubs: a stub that dies makes its model reload or the server stop.

Why beside the server: the python backend never restarts a dead stub (pytriton 0.7.0's tritonserver; every
request then answers 500 "Stub process '<m>_0_0' is not healthy.") while the model and the server stay ready,
and so SageMaker's /ping says 200 (triton-inference-server/server#8604). A dead stub cannot report itself, and
nothing inside the model outlives it, so a process next to tritonserver does.

How it tells a death from an unload: it lists tritonserver's children in /proc whose program is
``triton_python_backend_stub`` (the stub's command line names the model's ``<repository>/<model>/<version>/model.py``
and its instance, e.g. ``spleen_0_0``). An instance whose stub is gone, with no other stub running that instance,
while the repository index (``POST /v2/repository/index`` on loopback) still says the model is READY, died: an
unload sets UNLOADING before its stubs exit, and a reload starts the new stub before the old one exits.

What it does then (``--on-stub-death``):

* ``reload`` (``make serve-triton``): unload + load through the repository API, so readiness is false while it
  reloads and true once the new stubs serve. A model reloaded ``--max-reloads`` times within ``--window-s`` is
  left unloaded (not ready, logged) rather than crash-looping.
* ``terminate`` (the image): SIGTERM tritonserver, SIGKILL after ``--grace-s``; SageMaker's ``serve`` ends with it,
  the container's /ping stops answering and the platform replaces the container (SageMaker registers the models
  of its multi-model endpoint itself, so the watchdog does not load them behind its back).

Run as ``python3 triton_watchdog.py [options] -- /path/to/tritonserver ARGS...``; it exits with tritonserver's
status (1 when it stopped the server). Standard library only: the image runs it with its own python3.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger("triton_watchdog")
STUB_PROGRAM = "triton_python_backend_stub"


@dataclass(frozen=True)
class Stub:
    """One python backend stub process: the model and the instance it runs."""

    pid: int
    model: str
    instance: str


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses): state, ppid, ..."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def parse_stub(pid: int, arguments: Sequence[str]) -> Stub | None:
    """The stub a command line describes, or None when it is not a python backend stub.

    The stub's arguments (python_backend's StubLauncher): model.py path, shared-memory region, default and growth
    sizes, parent pid, backend folder, IPC handle, instance name, ... The model is the folder two above model.py
    (``<repository>/<model>/<version>/model.py``: Triton requires the folder to carry the model's name).
    """
    if not arguments or Path(arguments[0]).name != STUB_PROGRAM or len(arguments) < 9:
        return None
    model_py = Path(arguments[1])
    return Stub(pid=pid, model=model_py.parent.parent.name, instance=arguments[8])


def server_stubs(server_pid: int, proc: Path = Path("/proc")) -> dict[int, Stub]:
    """pid -> stub for every live (not zombie) python backend stub whose parent is ``server_pid``."""
    stubs = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            state, ppid = _stat_fields(pid)[:2]
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):  # ended while we looked
            continue
        if int(ppid) != server_pid or state == "Z":
            continue
        stub = parse_stub(pid, [a.decode(errors="replace") for a in arguments])
        if stub is not None:
            stubs[pid] = stub
    return stubs


class RepositoryApi:
    """The v2 repository extension of the server's HTTP endpoint (loopback)."""

    def __init__(self, url: str, timeout_s: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _post(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=b"", method="POST")  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()

    def states(self) -> dict[str, str]:
        """model -> state (READY, UNLOADING, UNAVAILABLE, ...); raises OSError when the server does not answer."""
        status, body = self._post("/v2/repository/index")
        if status != 200:
            raise OSError(f"repository index answered {status}: {body[:200]!r}")
        return {entry["name"]: entry.get("state", "") for entry in json.loads(body)}

    def unload(self, model: str) -> tuple[int, bytes]:
        return self._post(f"/v2/repository/models/{model}/unload")

    def load(self, model: str) -> tuple[int, bytes]:
        return self._post(f"/v2/repository/models/{model}/load")


def _last_option(arguments: Sequence[str], name: str) -> str | None:
    """tritonserver's value for ``--name=value`` / ``--name value``: the last one given wins (getopt)."""
    value = None
    for index, argument in enumerate(arguments):
        if argument.startswith(f"--{name}="):
            value = argument.split("=", 1)[1]
        elif argument == f"--{name}" and index + 1 < len(arguments):
            value = arguments[index + 1]
    return value


def repository_api_url(server_command: Sequence[str]) -> str | None:
    """The loopback URL of the repository API the command enables (HTTP on, explicit model control), or None."""
    if (_last_option(server_command, "allow-http") or "true").lower() in ("false", "0", "no"):
        return None
    if _last_option(server_command, "model-control-mode") != "explicit":
        return None
    address = _last_option(server_command, "http-address") or "0.0.0.0"  # noqa: S104 - tritonserver's default
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address  # noqa: S104
    return f"http://{host}:{_last_option(server_command, 'http-port') or '8000'}"


class Watchdog:
    """Polls the server's stubs; acts on each instance that died while its model was READY."""

    def __init__(
        self,
        server: subprocess.Popen[bytes],
        api: RepositoryApi,
        *,
        action: str,
        max_reloads: int,
        window_s: float,
        grace_s: float,
    ) -> None:
        self.server = server
        self.api = api
        self.action = action
        self.max_reloads = max_reloads
        self.window_s = window_s
        self.grace_s = grace_s
        self.known: dict[int, Stub] = {}
        self.reloads: dict[str, deque[float]] = {}
        self.given_up: set[str] = set()
        self.stopped_server = False

    def dead_models(self) -> list[str]:
        """Models with an instance whose stub died since the last poll (READY in the index, no stub left for it)."""
        current = server_stubs(self.server.pid)
        gone = [stub for pid, stub in self.known.items() if pid not in current]
        self.known = current
        if not gone:
            return []
        running = {(stub.model, stub.instance) for stub in current.values()}
        suspects = sorted({stub.model for stub in gone if (stub.model, stub.instance) not in running})
        if not suspects:
            return []  # each gone stub was replaced by a newer one (a reload)
        try:
            states = self.api.states()
        except OSError as error:
            LOG.warning("stub(s) of %s ended but the repository index did not answer: %s", suspects, error)
            return []
        return [model for model in suspects if states.get(model) == "READY"]

    def reload(self, model: str) -> None:
        now = time.monotonic()
        history = self.reloads.setdefault(model, deque())
        while history and now - history[0] > self.window_s:
            history.popleft()
        if len(history) >= self.max_reloads:
            status, body = self.api.unload(model)
            self.given_up.add(model)
            LOG.error(
                "model %s: python stub died again after %d reloads within %.0f s; left unloaded (not ready): %s %s",
                model,
                len(history),
                self.window_s,
                status,
                body[:200].decode(errors="replace"),
            )
            return
        history.append(now)
        LOG.error("model %s: python stub died; reloading it (unload + load; not ready meanwhile)", model)
        status, body = self.api.unload(model)
        if status != 200:
            LOG.error("model %s: unload answered %d: %s", model, status, body[:200].decode(errors="replace"))
        status, body = self.api.load(model)
        if status == 200:
            LOG.warning("model %s: reloaded; serving again", model)
        else:
            LOG.error("model %s: reload failed (%d): %s", model, status, body[:300].decode(errors="replace"))
        self.known = server_stubs(self.server.pid)

    def terminate(self, models: list[str]) -> None:
        LOG.error("python stub of model(s) %s died; stopping tritonserver so the platform replaces it", models)
        self.stopped_server = True
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            LOG.error("tritonserver did not stop within %.0f s of SIGTERM; SIGKILL", self.grace_s)
            self.server.kill()

    def poll(self) -> None:
        models = self.dead_models()
        if not models:
            return
        if self.action == "terminate":
            self.terminate(models)
            return
        for model in models:
            self.reload(model)


def _die_with_parent() -> None:
    """In the server's process before exec: the kernel SIGTERMs it when the watchdog dies (PR_SET_PDEATHSIG), so a
    killed watchdog never leaves tritonserver running unwatched."""
    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def parse_arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    if "--" not in argv:
        raise SystemExit("usage: triton_watchdog.py [options] -- /path/to/tritonserver ARGS...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--on-stub-death", choices=("reload", "terminate"), default="reload")
    parser.add_argument("--max-reloads", type=int, default=3, help="reloads of one model within --window-s")
    parser.add_argument("--window-s", type=float, default=600.0)
    parser.add_argument("--poll-s", type=float, default=0.5, help="how often /proc is read")
    parser.add_argument("--grace-s", type=float, default=30.0, help="SIGTERM -> SIGKILL (terminate)")
    options = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        raise SystemExit("triton_watchdog.py: no tritonserver command after --")
    return options, command


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s triton_watchdog %(levelname)s %(message)s")
    options, command = parse_arguments(sys.argv[1:] if argv is None else argv)
    url = repository_api_url(command)
    if url is None:
        # Without the index a clean unload (SageMaker evicting a model) looks like a death.
        raise SystemExit(
            "triton_watchdog.py needs tritonserver's repository API to tell an unload from a stub's death: "
            "run it with --model-control-mode=explicit and HTTP on (e.g. --allow-http=true --http-address=127.0.0.1)"
        )
    server = subprocess.Popen(command, preexec_fn=_die_with_parent)  # safe: this process has no threads
    forward = lambda signum, _frame: server.send_signal(signum)  # noqa: E731 - stop both together
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    watchdog = Watchdog(
        server,
        RepositoryApi(url),
        action=options.on_stub_death,
        max_reloads=options.max_reloads,
        window_s=options.window_s,
        grace_s=options.grace_s,
    )
    LOG.info(
        "watching tritonserver pid %d (stub death -> %s; repository API %s)", server.pid, options.on_stub_death, url
    )
    while server.poll() is None:
        watchdog.poll()
        time.sleep(options.poll_s)
    code = server.returncode
    return 1 if watchdog.stopped_server else (code if code >= 0 else 128 - code)


if __name__ == "__main__":
    sys.exit(main())
