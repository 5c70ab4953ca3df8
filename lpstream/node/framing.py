"""Packets of many participants on one data channel: `[u8 n][n bytes: participant id][packet]`.

Used by node links and by browsers that send or receive several participants' motion
(docs/protocol.md §10). An empty id means the channel's own peer.
"""

from __future__ import annotations

MAX_ID_BYTES = 255


def frame_packet(participant_id: str, packet: bytes) -> bytes:
    name = participant_id.encode()
    if len(name) > MAX_ID_BYTES:
        raise ValueError("participant id too long")
    return bytes([len(name)]) + name + packet


def unframe_packet(message: bytes) -> tuple[str, bytes]:
    """(participant id, packet); raises ValueError on a truncated frame or a bad id."""
    if not message or len(message) < 1 + message[0]:
        raise ValueError("truncated frame")
    length = message[0]
    try:
        participant_id = message[1 : 1 + length].decode()
    except UnicodeDecodeError:
        raise ValueError("participant id is not UTF-8") from None
    return participant_id, message[1 + length :]
