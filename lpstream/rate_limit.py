"""Rate limits: a token bucket (what the signaling server and the node use to keep one
client's flood from costing everybody else) and a log limiter (so that its bad messages do
not flood the log either)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable


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


class LogLimiter:
    """At most one log line per key (a peer, a link) every `interval_s`: a peer that sends
    a thousand bad messages a second costs one line per interval, not a thousand. The next
    line of a key says how many were left out since the last one."""

    MAX_KEYS = 4096
    """Keys remembered; beyond it the stale ones are forgotten (a key is one peer)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[Hashable, tuple[float, int]] = {}
        """Key → (time of its last line, lines left out since)."""

    def log(self, level: int, key: Hashable, message: str, *args: object) -> bool:
        """Log `message % args` for `key` unless it logged less than `interval_s` ago;
        True if a line was written."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if len(self._last) >= self.MAX_KEYS:
            self._forget(now)
        skipped = last[1] if last is not None else 0
        if skipped:
            message += " (and %d more like it in %.0f s)"
            args = (*args, skipped, now - last[0])  # type: ignore[index]
        self._last[key] = (now, 0)
        self.logger.log(level, message, *args)
        return True

    def warning(self, key: Hashable, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def info(self, key: Hashable, message: str, *args: object) -> bool:
        return self.log(logging.INFO, key, message, *args)

    def _forget(self, now: float) -> None:
        stale = [k for k, (t, _) in self._last.items() if now - t >= self.interval_s]
        for key in stale or list(self._last)[: self.MAX_KEYS // 2]:
            del self._last[key]
