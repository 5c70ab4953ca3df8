"""Outgoing avatar video: an aiortc track that always shows the newest rendered frame."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lpstream.node.media_clock import SendLag

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
IDLE_FPS = 2.0
"""Repeat rate of an unchanged frame (placeholder, frozen sender)."""


def placeholder_frame(size: int = 256) -> np.ndarray:
    """A dark frame with a faint ring: 'nobody here yet' (never mistaken for a face)."""
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    ring = (np.abs(radius - size * 0.3) < 2).astype(np.uint8) * 60
    frame = np.full((size, size, 3), 24, np.uint8)
    frame[..., 1] += ring
    frame[..., 2] += ring
    return frame


class AvatarTrack(MediaStreamTrack):
    """Sends each newly rendered frame as soon as it exists; repeats the last one when idle.

    Frames are never queued: `publish()` replaces the pending frame (newest wins). Output is
    driven by rendering, not by a fixed clock, so a frame never waits for the next tick
    (up to 1/fps of latency saved) and no rendered frame is lost to clock aliasing.
    With nothing new, the last frame is repeated slowly to keep the encoder and the
    receiver's jitter buffer alive. `on_sent` callbacks get each new frame's camera
    arrival time (for latency measurement).
    """

    kind = "video"

    def __init__(self, fps: float = 25.0) -> None:
        super().__init__()
        self.fps = fps
        self._frame = av.VideoFrame.from_ndarray(placeholder_frame(), format="rgb24")
        self._origin = time.monotonic()
        self._last_sent = 0.0
        self._new_frame = asyncio.Event()
        self._pending_stamp: float | None = None
        self._pending_content: float | None = None
        self.lag = SendLag()
        """How much later than their content time new frames leave (`media_clock.py`)."""
        self._content_in_flight: float | None = None
        """Content time of the frame handed to aiortc last: its lag is taken when aiortc
        asks for the next frame, after it has encoded and sent that one (the packets' send
        time is what its sender reports carry)."""
        self._has_pending = False
        self.frames_sent = 0
        self.published = 0
        self.on_sent: list[Callable[[float | None], None]] = []
        """Called with the frame's camera arrival time when a newly published frame goes out."""

    def publish(
        self, rgb: np.ndarray, stamp: float | None = None, content: float | None = None
    ) -> None:
        """Send `rgb` (H, W, 3 uint8) next; `stamp` is its camera frame's arrival time,
        `content` its motion's content time (`media_clock.ArrivalMapping`), both monotonic."""
        self._frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._pending_stamp = stamp
        self._pending_content = content
        self._has_pending = True
        self.published += 1
        self._new_frame.set()

    def clear(self) -> None:
        """Back to the placeholder (the participant on this slot left)."""
        self._frame = av.VideoFrame.from_ndarray(placeholder_frame(), format="rgb24")
        self._has_pending = False
        self._new_frame.set()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._content_in_flight is not None:
            self.lag.add(time.monotonic() - self._content_in_flight)
            self._content_in_flight = None
        # Never faster than 1.5 × fps, so a burst of renders cannot flood the encoder.
        spacing = self._last_sent + 1.0 / (1.5 * self.fps) - time.monotonic()
        if spacing > 0:
            await asyncio.sleep(spacing)
        if not self._new_frame.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_frame.wait(), 1.0 / IDLE_FPS)
        self._new_frame.clear()
        frame = self._frame
        now = time.monotonic()
        self._last_sent = now
        frame.pts = int((now - self._origin) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        if self._has_pending:
            self._has_pending = False
            self._content_in_flight = self._pending_content
            for callback in self.on_sent:
                callback(self._pending_stamp)
        return frame
