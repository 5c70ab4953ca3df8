"""Limits that keep one bad or hostile client from hurting other calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Limits:
    """Server-wide limits; every one is enforced per connection or per room."""

    max_rooms: int = 100
    """Open rooms at once."""
    max_participants: int = 4
    """Participants per room (a call is 2–4 people)."""
    max_nodes: int = 8
    """Media nodes registered at once."""
    max_connections: int = 256
    """Websocket connections at once."""
    max_message_bytes: int = 64 * 1024
    """Largest signaling message (an SDP offer is a few kB)."""
    messages_per_second: float = 20.0
    """Sustained message rate per connection (ICE candidates arrive in bursts)."""
    message_burst: int = 120
    """Messages a connection may send at once before the rate applies."""
    max_protocol_errors: int = 10
    """Malformed messages tolerated before the connection is closed."""
    max_name_length: int = 40
    """Longest room or participant name."""


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
