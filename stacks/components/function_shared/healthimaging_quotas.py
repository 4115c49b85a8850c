"""HealthImaging's published API rate quotas, the one place the backfill reads them, and a pacer that keeps under them.

Source: AWS HealthImaging Developer Guide, "AWS HealthImaging throttling limits"
(https://docs.aws.amazon.com/healthimaging/latest/devguide/throttling-limits.html, read 2026-12-02). The quotas are
per account and Region and adjustable through AWS Support; a ``ThrottlingException`` (HTTP 429) answers any call
over them. The page's versions disagree on the write APIs (StartDICOMImportJob 40, 1 or 0.25 TPS) but agree on the
read APIs the backfill calls, written here. An account with raised quotas overrides them in the backfill's input
(``quotaScale``), never by editing a second copy. Copied into every function's asset as the top-level module
``healthimaging_quotas`` (stacks/components/function_shared/__init__.py), so it uses the standard library only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

QUOTAS_SOURCE = "https://docs.aws.amazon.com/healthimaging/latest/devguide/throttling-limits.html"


@dataclass(frozen=True)
class Quota:
    """A throttle: the sustained rate (requests per second) and the burst the token bucket allows."""

    operation: str
    rate_per_s: float
    burst: float


SEARCH_IMAGE_SETS = Quota("SearchImageSets", rate_per_s=25.0, burst=50.0)
GET_IMAGE_SET_METADATA = Quota("GetImageSetMetadata", rate_per_s=50.0, burst=100.0)
GET_IMAGE_FRAME = Quota("GetImageFrame", rate_per_s=1000.0, burst=2000.0)
QUOTAS = {quota.operation: quota for quota in (SEARCH_IMAGE_SETS, GET_IMAGE_SET_METADATA, GET_IMAGE_FRAME)}
# The share of a quota the backfill takes: the live flow (new image sets, the viewer, the endpoint's own reads)
# shares the account's quota with it.
BACKFILL_SHARE = 0.5


class Pacer:
    """A token bucket at ``rate_per_s`` holding at most ``burst`` tokens: ``acquire()`` waits until a call may go.

    The clock and the sleep are injected so tests run in simulated time; thread-safe for a pool of callers.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"a pacer needs a positive rate and a burst of at least 1, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    @classmethod
    def for_quota(
        cls,
        quota: Quota,
        *,
        workers: int = 1,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Pacer:
        """One worker's pacer: the backfill's share of the quota split among ``workers`` running at once."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        share = BACKFILL_SHARE * scale / workers
        return cls(quota.rate_per_s * share, max(1.0, quota.burst * share), clock=clock, sleep=sleep)

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate_per_s)
            self._last = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self.rate_per_s
                self._sleep(wait)
                self.waited_s += wait
                self._tokens = 1.0
                self._last = max(self._clock(), now + wait)
            self._tokens -= 1.0
