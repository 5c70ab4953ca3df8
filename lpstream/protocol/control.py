"""Control messages on the reliable channel: hello, keyframe request, bye.

Sliders are not among them: they only travel from a browser to its node, as JSON
(docs/protocol.md §9), and apply where the avatar is rendered."""

from __future__ import annotations

from dataclasses import dataclass

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
