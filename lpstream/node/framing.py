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


def pack_item(participant_id: str, packet: bytes) -> bytes:
    """One packet of a batch: `[u8 n][id][u16 length][packet]` (several share a message)."""
    if len(packet) > 0xFFFF:
        raise ValueError("packet too long for a batch")
    return frame_packet(participant_id, len(packet).to_bytes(2, "big") + packet)


def unpack_batch(message: bytes) -> list[tuple[str, bytes]]:
    """Every (participant id, packet) of a batch; raises ValueError if any is truncated."""
    items = []
    offset = 0
    while offset < len(message):
        length = message[offset]
        start = offset + 1 + length
        if start + 2 > len(message):
            raise ValueError("truncated batch item")
        try:
            participant_id = message[offset + 1 : start].decode()
        except UnicodeDecodeError:
            raise ValueError("participant id is not UTF-8") from None
        size = int.from_bytes(message[start : start + 2], "big")
        end = start + 2 + size
        if end > len(message):
            raise ValueError("truncated batch item")
        items.append((participant_id, message[start + 2 : end]))
        offset = end
    return items
