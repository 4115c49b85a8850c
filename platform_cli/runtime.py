"""What every command gets: the deployment's clients and outputs, a clock, and the two output streams.

Commands never build boto3 clients or sleep themselves, so tests hand in moto-backed sessions, Stubber-wrapped
clients and a fake clock, and run the real command code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import boto3
from tqdm import tqdm

from platform_cli.outputs import OutputRef, StackOutputs
from platform_cli.project import Deployment


@dataclass
class Runtime:
    deployment: Deployment
    session: boto3.session.Session
    # Clients to use instead of the session's, by service name (tests: a Stubber-wrapped medical-imaging client).
    client_overrides: Mapping[str, Any] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _outputs: StackOutputs | None = field(default=None, init=False, repr=False)

    def client(self, service: str) -> Any:
        if service in self.client_overrides:
            return self.client_overrides[service]
        if service not in self._clients:
            self._clients[service] = self.session.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    def output(self, ref: OutputRef) -> str:
        if self._outputs is None:
            self._outputs = StackOutputs(self.client("cloudformation"), self.deployment)
        return self._outputs.get(ref)

    def note(self, message: str) -> None:
        """Progress and diagnostics go to stderr; stdout carries only results, so it can be piped."""
        print(message, file=self.stderr, flush=True)

    def emit(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def progress(self, **kwargs: Any) -> tqdm:
        # disable=None: a bar on a terminal, nothing when stderr is a file or pipe (CI logs stay readable).
        return tqdm(file=self.stderr, disable=None, **kwargs)
