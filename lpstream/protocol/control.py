"""Control messages on the reliable channel: hello, slider controls, keyframe request, bye."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from lpstream.backend import Controls
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.wire import (
    PROTOCOL_VERSION,
    Kind,
    Reader,
    expect_kind,
    header,
    text_field,
)

MAX_NAME_BYTES = 32
MAX_CAPABILITIES = 16
MAX_TEXT_BYTES = 200
CONTROL_LIMIT = 4.0
"""Slider values (eye/lip ratio targets, head-motion multiplier) must lie in [0, 4]."""


@dataclass(frozen=True)
class Hello:
    """First message of each side: who speaks, which protocol and what it can do."""

    backend: str
    """Backend name, e.g. "liveportrait" or "meshwarp" (≤ 32 UTF-8 bytes)."""
    capabilities: tuple[str, ...] = ()
    """Short feature names, e.g. ("eye_ratio", "lip_ratio", "stitching"); ≤ 16 of ≤ 32 bytes."""
    protocol_version: int = PROTOCOL_VERSION
    """Highest protocol version the sender speaks (the header byte says which it uses)."""

    def encode(self) -> bytes:
        if len(self.capabilities) > MAX_CAPABILITIES:
            raise ProtocolError(f"hello: more than {MAX_CAPABILITIES} capabilities")
        if not 0 <= self.protocol_version <= 255:
            raise ProtocolError("hello: protocol version must fit in a byte")
        body = bytes((self.protocol_version,)) + text_field(self.backend, MAX_NAME_BYTES, "backend")
        body += bytes((len(self.capabilities),))
        for capability in self.capabilities:
            body += text_field(capability, MAX_NAME_BYTES, "capability")
        return header(Kind.HELLO) + body

    @classmethod
    def decode(cls, packet: bytes) -> Hello:
        _, _, offset = expect_kind(packet, Kind.HELLO)
        reader = Reader(packet, offset, "hello")
        version = reader.u8()
        backend = reader.text(MAX_NAME_BYTES)
        count = reader.u8()
        if count > MAX_CAPABILITIES:
            raise ProtocolError(f"hello: {count} capabilities exceed {MAX_CAPABILITIES}")
        capabilities = tuple(reader.text(MAX_NAME_BYTES) for _ in range(count))
        reader.end()
        return cls(backend, capabilities, version)


_EYE, _LIP, _STITCH = 1, 2, 4


def _check_slider(value: float, name: str) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= CONTROL_LIMIT:
        raise ProtocolError(f"controls: {name}={value} must be a number in [0, {CONTROL_LIMIT}]")
    return value


def encode_controls(controls: Controls) -> bytes:
    """lpstream.backend.Controls → packet (flags, then float32 values)."""
    flags = _STITCH if controls.stitching else 0
    values = [_check_slider(float(controls.head_motion), "head_motion")]
    if controls.eye_open is not None:
        flags |= _EYE
        values.append(_check_slider(float(controls.eye_open), "eye_open"))
    if controls.lip_open is not None:
        flags |= _LIP
        values.append(_check_slider(float(controls.lip_open), "lip_open"))
    return header(Kind.CONTROLS) + bytes((flags,)) + struct.pack(f">{len(values)}f", *values)


def decode_controls(packet: bytes) -> Controls:
    _, _, offset = expect_kind(packet, Kind.CONTROLS)
    reader = Reader(packet, offset, "controls")
    flags = reader.u8()
    if flags & ~(_EYE | _LIP | _STITCH):
        raise ProtocolError(f"controls: unknown flag bits 0x{flags:02x}")
    (head_motion,) = reader.unpack("f")
    eye = reader.unpack("f")[0] if flags & _EYE else None
    lip = reader.unpack("f")[0] if flags & _LIP else None
    reader.end()
    return Controls(
        eye_open=None if eye is None else _check_slider(eye, "eye_open"),
        lip_open=None if lip is None else _check_slider(lip, "lip_open"),
        head_motion=_check_slider(head_motion, "head_motion"),
        stitching=bool(flags & _STITCH),
    )


def encode_keyframe_request() -> bytes:
    """Ask the motion sender for a keyframe (MotionEncoder.on_feedback accepts it)."""
    return header(Kind.KEYFRAME_REQUEST)


@dataclass(frozen=True)
class Bye:
    """Orderly end of a call."""

    reason: str = ""
    """Human-readable reason (≤ 200 UTF-8 bytes)."""

    def encode(self) -> bytes:
        return header(Kind.BYE) + text_field(self.reason, MAX_TEXT_BYTES, "bye reason")

    @classmethod
    def decode(cls, packet: bytes) -> Bye:
        _, _, offset = expect_kind(packet, Kind.BYE)
        reader = Reader(packet, offset, "bye")
        reason = reader.text(MAX_TEXT_BYTES)
        reader.end()
        return cls(reason)
