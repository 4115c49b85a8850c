"""Wait for something the platform does asynchronously, with a deadline and a progress bar on stderr."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from platform_cli.errors import CommandFailedError
from platform_cli.runtime import Runtime

T = TypeVar("T")


def wait_for(
    runtime: Runtime,
    poll: Callable[[], tuple[T | None, str]],
    *,
    what: str,
    timeout_s: float,
    interval_s: float,
    on_timeout: str,
) -> T:
    """Call ``poll`` until it returns a result; ``poll`` returns ``(result or None, status shown on the bar)``.

    The bar counts seconds towards the timeout: the services report states, not percentages.
    Raises :class:`CommandFailedError` naming ``what`` and ``on_timeout`` (what the user can do) at the deadline.
    """
    if timeout_s <= 0 or interval_s <= 0:
        raise ValueError(f"timeout_s and interval_s must be > 0, got {timeout_s} and {interval_s}")
    start = runtime.clock()
    status = "starting"
    with runtime.progress(total=round(timeout_s), desc=what, unit="s", leave=False) as bar:
        while True:
            result, status = poll()
            elapsed = runtime.clock() - start
            bar.set_postfix_str(status, refresh=False)
            bar.update(max(0, min(round(elapsed), bar.total) - bar.n))
            if result is not None:
                return result
            remaining = timeout_s - elapsed
            if remaining <= 0:
                break
            runtime.sleep(min(interval_s, remaining))
    raise CommandFailedError(f"{what}: not finished after {timeout_s:g} s (last status: {status}): {on_timeout}")
