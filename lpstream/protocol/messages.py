"""One entry point for the reliable channel: bytes → the message object of its kind."""

from __future__ import annotations

from dataclasses import dataclass

from lpstream.protocol.control import Bye, Hello
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.feedback import Feedback
from lpstream.protocol.portrait import PortraitChunk, PortraitOffer, PortraitReply
from lpstream.protocol.stats import Stats
from lpstream.protocol.wire import Kind, Reader, parse_header


@dataclass(frozen=True)
class KeyframeRequest:
    """The receiver asks for a keyframe (also expressible as a Feedback flag)."""


Message = (
    Feedback | Hello | KeyframeRequest | Bye | Stats | PortraitOffer | PortraitChunk
    | PortraitReply
)


def decode_message(packet: bytes) -> Message:
    """Decode any reliable-channel message. Motion packets belong to MotionDecoder."""
    kind, _, offset = parse_header(packet)
    if kind is Kind.FEEDBACK:
        return Feedback.decode(packet)
    if kind is Kind.HELLO:
        return Hello.decode(packet)
    if kind is Kind.KEYFRAME_REQUEST:
        Reader(packet, offset, "keyframe request").end()
        return KeyframeRequest()
    if kind is Kind.BYE:
        return Bye.decode(packet)
    if kind is Kind.STATS:
        return Stats.decode(packet)
    if kind is Kind.PORTRAIT_OFFER:
        return PortraitOffer.decode(packet)
    if kind is Kind.PORTRAIT_CHUNK:
        return PortraitChunk.decode(packet)
    if kind in (Kind.PORTRAIT_NEED, Kind.PORTRAIT_ACCEPTED, Kind.PORTRAIT_REJECTED):
        return PortraitReply.decode(packet)
    raise ProtocolError(f"{kind.name} packets belong to the motion channel (MotionDecoder)")
