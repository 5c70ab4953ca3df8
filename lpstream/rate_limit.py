"""A token bucket: what the signaling server and the node use to keep one client's flood
from costing everybody else."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Classic token bucket: `allow()` is False once the burst is spent faster than `rate`."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
