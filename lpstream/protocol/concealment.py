"""What the receiver shows when a motion frame is missing (docs/protocol.md §5).

Linear extrapolation from the last two frames shown, bounded in time, then hold: a loss
burst never runs the face away. Knows nothing of packets or references; MotionDecoder feeds
it every frame it shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpstream.motion import Motion
from lpstream.protocol.wire import TIMESTAMP_MODULO, seq_delta

MAX_EXTRAPOLATION_MS = 100
"""Concealment extrapolates at most this far past the last decoded frame, then holds."""
DEFAULT_INTERVAL_MS = 33
"""Frame interval assumed until two frames have been shown."""


@dataclass(frozen=True)
class ShownFrame:
    seq: int
    timestamp_ms: int
    """Sender timestamp, ms mod 2³²."""
    motion: Motion


class Concealment:
    """The last two frames shown, and the motion to show in place of a missing one."""

    def __init__(self) -> None:
        self._frames: list[ShownFrame] = []

    def shown(self, seq: int, timestamp_ms: int, motion: Motion) -> None:
        """Record a decoded frame that was shown (`motion` must not be modified later)."""
        self._frames = [*self._frames[-1:], ShownFrame(seq, timestamp_ms, motion)]

    @property
    def last(self) -> ShownFrame | None:
        return self._frames[-1] if self._frames else None

    def interval_ms(self) -> int:
        """Milliseconds per frame, from the last two frames shown."""
        if len(self._frames) == 2:
            prev, last = self._frames
            frames = seq_delta(last.seq, prev.seq)
            elapsed = (last.timestamp_ms - prev.timestamp_ms) % TIMESTAMP_MODULO
            if frames > 0:
                return max(1, elapsed // frames)
        return DEFAULT_INTERVAL_MS

    def next_frame(self, moving: bool = True) -> Motion | None:
        """In place of the frame one interval after the last one shown."""
        last = self.last
        if last is None:
            return None
        return self.at(last.timestamp_ms + self.interval_ms(), moving)

    def at(self, timestamp_ms: int, moving: bool = True) -> Motion | None:
        """Motion to show at sender time `timestamp_ms`; None before any frame was shown.

        `moving`: False holds the last frame (the sender saw no face).
        """
        if not self._frames:
            return None
        last = self._frames[-1]
        if len(self._frames) < 2 or not moving:
            return last.motion.copy()
        prev = self._frames[-2]
        span = (last.timestamp_ms - prev.timestamp_ms) % TIMESTAMP_MODULO
        ahead = (int(timestamp_ms) - last.timestamp_ms) % TIMESTAMP_MODULO
        if span == 0 or span > 4 * MAX_EXTRAPOLATION_MS or ahead > 1 << 31:
            return last.motion.copy()
        w = min(ahead, MAX_EXTRAPOLATION_MS) / span
        a, b = prev.motion, last.motion
        return Motion(
            pitch=b.pitch + w * (b.pitch - a.pitch),
            yaw=b.yaw + w * (b.yaw - a.yaw),
            roll=b.roll + w * (b.roll - a.roll),
            t=b.t + w * (b.t - a.t),
            scale=b.scale + w * (b.scale - a.scale),
            exp=b.exp + w * (b.exp - a.exp),
            eye_ratio=b.eye_ratio,
            lip_ratio=b.lip_ratio,
        )
