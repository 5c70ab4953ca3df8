"""Sliding-window rate meters for the stats overlay and /metrics."""

from __future__ import annotations

import time
from collections import deque


class RateMeter:
    """Events (with an amount, e.g. bytes) per second over the last `window_s` seconds."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self.total = 0.0
        self.count = 0
        self._events: deque[tuple[float, float]] = deque()
        self._started: float | None = None

    def add(self, amount: float = 1.0, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._started is None:
            self._started = now
        self.total += amount
        self.count += 1
        self._events.append((now, amount))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self.window_s:
            self._events.popleft()

    def rate(self, now: float | None = None) -> float:
        """Amount per second over the window (or since the first event, if more recent)."""
        now = time.monotonic() if now is None else now
        self._trim(now)
        if self._started is None:
            return 0.0
        span = min(self.window_s, now - self._started)
        if span < 0.2:  # too early to say anything honest
            return 0.0
        return sum(amount for _, amount in self._events) / span


class LatencyMeter:
    """Recent latencies (ms): median and count."""

    def __init__(self, keep: int = 100) -> None:
        self._values: deque[float] = deque(maxlen=keep)
        self.count = 0
        self.total_ms = 0.0

    def add(self, milliseconds: float) -> None:
        self._values.append(milliseconds)
        self.count += 1
        self.total_ms += milliseconds

    def median(self) -> float:
        if not self._values:
            return 0.0
        ordered = sorted(self._values)
        return ordered[len(ordered) // 2]

    def values(self) -> list[float]:
        return list(self._values)
