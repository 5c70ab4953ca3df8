"""Lip sync of node-rendered tiles: a tile's video and its voice are one stream to the
browser, and they leave the node equally late, so the browser's own lip sync lines them up.

Chromium synchronises a video track with the audio track of the same MediaStream (the stream
id of `a=msid` in our answer), using each track's RTCP sender reports (NTP ↔ RTP). aiortc
writes one stream id for a whole peer connection and, in every sender report, the wall time
at which the last packet went out for that packet's RTP timestamp. So:

- `join_tile_stream`: tile i's video sender and audio sender get the stream id
  `lpstream-tile-<i>` (one group per tile; with aiortc's single id every tile's video would
  be synchronised with whichever audio Chromium found first);
- a forwarded voice packet's report time is its arrival at the node, about when the speaker
  said it; a video frame's report time is when it leaves, after the motion's trip, the wait
  for the renderer and the render. A frame's content time is when the sound of its moment
  reached the node: `VoiceArrival` maps the speaker's voice-clock stamp to the node's clock
  by the voice's fastest trip; a stamp on another clock goes through `ArrivalMapping` ("when
  the motion would have arrived by the fastest trip seen"). `SendLag` measures how much
  later each frame goes out. The tile's voice is sent that much later too
  (`SlotTrack.delay`): both tracks' report times are then their content time plus the same
  lag, which is what the browser needs to line them up.

Why delay the voice instead of rewriting the video's sender reports to the content time:
aiortc has no public hook for sender reports (their NTP and RTP values are name-mangled
private attributes of RTCRtpSender, and the RTP timestamp origin is a local variable of its
send loop), and the delay costs no latency: a synchronising browser holds the voice back by
the same amount anyway, since it cannot show the mouth before the frame exists.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

TIMESTAMP_MODULO = 1 << 32
"""Motion timestamps are ms mod 2³² (docs/protocol.md)."""
WINDOW_S = 10.0
"""The fastest trip is looked for over this long (the newest samples)."""
RESTART_S = 60.0
"""A timestamp this far from the previous one is a new sender clock (a restarted page)."""
LAG_FRAMES = 50
"""A tile's lag is the median of this many recent frames (2 s at 25 fps)."""
MAX_LAG_S = 0.5
"""A voice is never held longer than this (a stuck renderer must not silence a call)."""


def tile_stream_id(slot: int) -> str:
    """The MediaStream id shared by tile `slot`'s video and audio tracks."""
    return f"lpstream-tile-{slot}"


def join_tile_stream(sender: Any, slot: int) -> None:
    """Put an aiortc sender's track in tile `slot`'s stream (written as `a=msid` in the
    answer; aiortc reads `_stream_id` there and offers no public setter)."""
    sender._stream_id = tile_stream_id(slot)


class ArrivalMapping:
    """A sender's motion timestamps (ms mod 2³²) → this node's clock (s), by the earliest
    arrival: content time = timestamp + the smallest arrival − timestamp offset of the
    last `WINDOW_S` seconds. Jitter only ever makes a packet later than the fastest one, so
    every frame is mapped as if it had come by the fastest trip."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._last: int | None = None
        self._unwrapped = 0
        self._offsets: deque[tuple[float, float]] = deque()
        """(arrival, offset), offsets increasing: the front is the window's minimum."""

    def add(self, timestamp_ms: int, arrival: float) -> float:
        """A packet of sender time `timestamp_ms` arrived at `arrival`: its content time."""
        timestamp_ms %= TIMESTAMP_MODULO
        if self._last is None:
            self._unwrapped = timestamp_ms
        else:
            step = (timestamp_ms - self._last + TIMESTAMP_MODULO // 2) % TIMESTAMP_MODULO
            step -= TIMESTAMP_MODULO // 2
            if abs(step) > RESTART_S * 1000:
                self._offsets.clear()
            self._unwrapped += step
        self._last = timestamp_ms
        sender_s = self._unwrapped / 1000.0
        offset = arrival - sender_s
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()
        self._offsets.append((arrival, offset))
        while self._offsets[0][0] < arrival - self.window_s:
            self._offsets.popleft()
        return sender_s + self._offsets[0][1]


class SendLag:
    """How much later than their content time a tile's frames leave (median, seconds)."""

    def __init__(self, frames: int = LAG_FRAMES) -> None:
        self._lags: deque[float] = deque(maxlen=frames)

    def add(self, lag_s: float) -> None:
        self._lags.append(min(max(lag_s, 0.0), MAX_LAG_S))

    @property
    def seconds(self) -> float:
        return statistics.median(self._lags) if self._lags else 0.0


RTP_MODULO = 1 << 32
OPUS_TICKS_PER_S = 48000
RTP_PERIOD_MS = RTP_MODULO * 1000 / OPUS_TICKS_PER_S
"""The voice clock in ms wraps after this long (2³² ticks at 48 kHz)."""
PLAUSIBLE_S = 2.0
"""A voice-clock stamp mapped further than this from now is on another clock."""


class VoiceArrival:
    """When the voice of a moment reached this node: a speaker's RTP timestamps → the
    node's clock (s) by the fastest trip seen, as `ArrivalMapping` does for motion.

    A keypoint page stamps its motion with its microphone's RTP time (ms of the 48 kHz
    clock, web_client/audio_clock.js). Mapped here, a frame's content time is when the sound
    of its moment arrived, so its video leaves exactly as much later than that sound as it
    is held back (`SendLag`), whatever the motion's own trip (landmarks, data channel)."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._last: int | None = None
        self._unwrapped = 0
        self._offsets: deque[tuple[float, float]] = deque()
        """(arrival, arrival − RTP time in s), offsets increasing: the front is the minimum."""

    def observe(self, rtp_timestamp: int, arrival: float) -> None:
        """A voice packet of RTP time `rtp_timestamp` arrived at `arrival`."""
        rtp_timestamp %= RTP_MODULO
        if self._last is None:
            self._unwrapped = rtp_timestamp
        else:
            step = (rtp_timestamp - self._last + RTP_MODULO // 2) % RTP_MODULO - RTP_MODULO // 2
            if abs(step) > RESTART_S * OPUS_TICKS_PER_S:
                self._offsets.clear()
            self._unwrapped += step
        self._last = rtp_timestamp
        offset = arrival - self._unwrapped / OPUS_TICKS_PER_S
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()
        self._offsets.append((arrival, offset))
        while self._offsets[0][0] < arrival - self.window_s:
            self._offsets.popleft()

    def arrival_of(self, stamp_ms: int, now: float) -> float | None:
        """When the voice of stamp `stamp_ms` (voice-clock ms, mod 2³²) arrived or will, on
        this node's clock; None if no voice was seen or the stamp is on another clock."""
        if not self._offsets:
            return None
        newest_ms = self._unwrapped * 1000 / OPUS_TICKS_PER_S
        ahead = (stamp_ms - newest_ms) % RTP_PERIOD_MS
        if ahead > RTP_PERIOD_MS / 2:
            ahead -= RTP_PERIOD_MS
        arrival = (newest_ms + ahead) / 1000 + self._offsets[0][1]
        return arrival if abs(arrival - now) < PLAUSIBLE_S else None
