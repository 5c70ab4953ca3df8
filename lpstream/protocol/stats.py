"""Sender statistics, sent about once a second on the reliable channel."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.wire import Kind, Reader, expect_kind, header

_UNKNOWN = 0xFFFF
_LAYOUT = "HIIHH"


def _ms_field(value: float | None, name: str) -> int:
    if value is None:
        return _UNKNOWN
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(f"stats: {name}={value} must be a non-negative number or None")
    return min(_UNKNOWN - 1, round(value))


@dataclass(frozen=True)
class Stats:
    fps: float
    """Frames per second the sender currently encodes (0.01 resolution, ≤ 655)."""
    bytes_sent: int
    """Motion bytes sent since the call started (wraps at 2^32)."""
    frames_sent: int
    """Motion packets sent since the call started (wraps at 2^32)."""
    extract_ms: float | None = None
    """Sender's capture → motion latency, milliseconds (None: unknown)."""
    rtt_ms: float | None = None
    """Round trip the sender measured (e.g. from feedback timing), milliseconds."""

    def encode(self) -> bytes:
        if not math.isfinite(self.fps) or not 0 <= self.fps <= 655:
            raise ProtocolError(f"stats: fps={self.fps} must be in [0, 655]")
        if self.bytes_sent < 0 or self.frames_sent < 0:
            raise ProtocolError("stats: counters must be non-negative")
        return header(Kind.STATS) + struct.pack(
            ">" + _LAYOUT,
            round(self.fps * 100),
            self.bytes_sent % (1 << 32),
            self.frames_sent % (1 << 32),
            _ms_field(self.extract_ms, "extract_ms"),
            _ms_field(self.rtt_ms, "rtt_ms"),
        )

    @classmethod
    def decode(cls, packet: bytes) -> Stats:
        _, _, offset = expect_kind(packet, Kind.STATS)
        reader = Reader(packet, offset, "stats")
        fps, nbytes, frames, extract, rtt = reader.unpack(_LAYOUT)
        reader.end()
        if fps > 65500:
            raise ProtocolError(f"stats: fps field {fps} out of range")
        return cls(
            fps / 100,
            nbytes,
            frames,
            None if extract == _UNKNOWN else float(extract),
            None if rtt == _UNKNOWN else float(rtt),
        )
