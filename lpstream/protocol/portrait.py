"""Source portrait transfer on the reliable channel: content-addressed, chunked, validated.

Sender: PORTRAIT_OFFER(sha256, size). Receiver: PORTRAIT_ACCEPTED if its cache already holds
that hash (nothing is resent), else PORTRAIT_NEED. Sender: PORTRAIT_CHUNKs (≤ 1100 bytes each:
aiortc's SCTP has no path-MTU discovery). Receiver: checks hash, size and image limits, then
PORTRAIT_ACCEPTED or PORTRAIT_REJECTED(code, reason) — a reason the sender can show.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.wire import (
    MAX_PACKET_BYTES,
    Kind,
    Reader,
    expect_kind,
    header,
    text_field,
)

SHA_BYTES = 32
CHUNK_HEADER_BYTES = 2 + SHA_BYTES + 4
MAX_CHUNK_DATA = MAX_PACKET_BYTES - CHUNK_HEADER_BYTES
"""1062 data bytes per chunk, so every chunk packet is ≤ 1100 bytes."""
MAX_CHUNKS = 0xFFFF
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_SIDE = 4096
DEFAULT_MAX_PIXELS = 16 * 1024 * 1024
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
MAX_PENDING_TRANSFERS = 2


class RejectCode(IntEnum):
    TOO_LARGE = 1
    """Declared or received size above the receiver's byte limit."""
    BAD_HASH = 2
    """Reassembled bytes do not hash to the offered sha256."""
    UNSUPPORTED_FORMAT = 3
    """Not a PNG or JPEG."""
    TOO_MANY_PIXELS = 4
    """Width, height or pixel count above the receiver's limits."""
    UNDECODABLE = 5
    """Looks like an image but does not decode."""
    BUSY = 6
    """Too many transfers at once."""


@dataclass(frozen=True)
class PortraitOffer:
    sha256: bytes
    size: int

    def encode(self) -> bytes:
        return header(Kind.PORTRAIT_OFFER) + _sha(self.sha256) + struct.pack(">I", self.size)

    @classmethod
    def decode(cls, packet: bytes) -> PortraitOffer:
        reader = _reader(packet, Kind.PORTRAIT_OFFER, "portrait offer")
        sha = reader.take(SHA_BYTES)
        (size,) = reader.unpack("I")
        reader.end()
        return cls(sha, size)


@dataclass(frozen=True)
class PortraitChunk:
    sha256: bytes
    index: int
    count: int
    data: bytes

    def encode(self) -> bytes:
        if not 0 <= self.index < self.count <= MAX_CHUNKS:
            raise ProtocolError(f"portrait chunk {self.index} of {self.count} out of range")
        if len(self.data) > MAX_CHUNK_DATA:
            raise ProtocolError(f"portrait chunk data of {len(self.data)} > {MAX_CHUNK_DATA}")
        return (
            header(Kind.PORTRAIT_CHUNK)
            + _sha(self.sha256)
            + struct.pack(">HH", self.index, self.count)
            + self.data
        )

    @classmethod
    def decode(cls, packet: bytes) -> PortraitChunk:
        reader = _reader(packet, Kind.PORTRAIT_CHUNK, "portrait chunk")
        sha = reader.take(SHA_BYTES)
        index, count = reader.unpack("HH")
        if not index < count:
            raise ProtocolError(f"portrait chunk: index {index} not below count {count}")
        return cls(sha, index, count, reader.rest())


@dataclass(frozen=True)
class PortraitReply:
    """PORTRAIT_NEED / PORTRAIT_ACCEPTED / PORTRAIT_REJECTED from the receiver."""

    kind: Kind
    sha256: bytes
    code: RejectCode | None = None
    reason: str = ""

    def encode(self) -> bytes:
        body = header(self.kind) + _sha(self.sha256)
        if self.kind is Kind.PORTRAIT_REJECTED:
            assert self.code is not None
            body += bytes((int(self.code),)) + text_field(self.reason[:200], 255, "reason")
        return body

    @classmethod
    def decode(cls, packet: bytes) -> PortraitReply:
        kind, _, offset = expect_kind(
            packet, Kind.PORTRAIT_NEED, Kind.PORTRAIT_ACCEPTED, Kind.PORTRAIT_REJECTED
        )
        reader = Reader(packet, offset, "portrait reply")
        sha = reader.take(SHA_BYTES)
        code = None
        reason = ""
        if kind is Kind.PORTRAIT_REJECTED:
            raw = reader.u8()
            try:
                code = RejectCode(raw)
            except ValueError:
                raise ProtocolError(f"portrait reply: unknown reject code {raw}") from None
            reason = reader.text(255)
        reader.end()
        return cls(kind, sha, code, reason)


def _sha(value: bytes) -> bytes:
    if len(value) != SHA_BYTES:
        raise ProtocolError(f"sha256 must be {SHA_BYTES} bytes, got {len(value)}")
    return bytes(value)


def _reader(packet: bytes, kind: Kind, what: str) -> Reader:
    _, _, offset = expect_kind(packet, kind)
    return Reader(packet, offset, what)


class PortraitRejectedError(ProtocolError):
    """The receiver refused our portrait; `code` and the message say why."""

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(f"receiver rejected the portrait ({code.name}): {reason}")
        self.code = code


class PortraitSender:
    """Offers one encoded image (PNG/JPEG bytes) and answers the receiver's replies."""

    def __init__(self, image_bytes: bytes, chunk_bytes: int = MAX_CHUNK_DATA) -> None:
        if not 1 <= chunk_bytes <= MAX_CHUNK_DATA:
            raise ValueError(f"chunk_bytes must be in 1..{MAX_CHUNK_DATA}")
        if not image_bytes:
            raise ValueError("image_bytes is empty")
        self.data = bytes(image_bytes)
        self.sha256 = hashlib.sha256(self.data).digest()
        self.chunk_bytes = chunk_bytes
        if self.chunk_count > MAX_CHUNKS:
            raise ValueError("image too large for one transfer")
        self.accepted = False
        self.chunks_sent = 0

    @property
    def chunk_count(self) -> int:
        return -(-len(self.data) // self.chunk_bytes)

    def offer(self) -> bytes:
        return PortraitOffer(self.sha256, len(self.data)).encode()

    def chunks(self) -> list[bytes]:
        count = self.chunk_count
        return [
            PortraitChunk(
                self.sha256, i, count, self.data[i * self.chunk_bytes : (i + 1) * self.chunk_bytes]
            ).encode()
            for i in range(count)
        ]

    def on_reply(self, packet: bytes) -> list[bytes]:
        """Packets to send next. Raises PortraitRejectedError if the receiver refused."""
        reply = PortraitReply.decode(packet)
        if reply.sha256 != self.sha256:
            return []  # a reply about another portrait
        if reply.kind is Kind.PORTRAIT_ACCEPTED:
            self.accepted = True
            return []
        if reply.kind is Kind.PORTRAIT_REJECTED:
            assert reply.code is not None
            raise PortraitRejectedError(reply.code, reply.reason)
        chunks = self.chunks()
        self.chunks_sent += len(chunks)
        return chunks


@dataclass
class _Transfer:
    size: int
    count: int | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    received: int = 0


def image_dimensions(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from a PNG or JPEG header without decoding pixels."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):
                pos += 2
                continue
            (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
            if length < 2:
                return None
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if pos + 9 > len(data):
                    return None
                height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
                return "jpeg", width, height
            pos += 2 + length
    return None


class PortraitReceiver:
    """Reassembles, validates and caches portraits; LRU cache bounded in bytes."""

    def __init__(
        self,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_side: int = DEFAULT_MAX_SIDE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if max_bytes > cache_bytes:
            raise ValueError("max_bytes must not exceed cache_bytes")
        self.cache_bytes = cache_bytes
        self.max_bytes = max_bytes
        self.max_side = max_side
        self.max_pixels = max_pixels
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cached_total = 0
        self._pending: dict[bytes, _Transfer] = {}
        self.latest: bytes | None = None
        """sha256 of the portrait most recently accepted (or found in the cache)."""
        self.last_rejection: PortraitReply | None = None

    @property
    def cached_bytes(self) -> int:
        return self._cached_total

    def has(self, sha256: bytes) -> bool:
        return sha256 in self._cache

    def image(self, sha256: bytes) -> np.ndarray:
        """The cached portrait as RGB uint8 (H, W, 3). KeyError if not cached."""
        data = self._cache[sha256]
        self._cache.move_to_end(sha256)
        return _decode_rgb(data)

    def on_packet(self, packet: bytes) -> list[bytes]:
        """Handle an offer or chunk; returns the replies to send back."""
        kind, _, _ = expect_kind(packet, Kind.PORTRAIT_OFFER, Kind.PORTRAIT_CHUNK)
        if kind is Kind.PORTRAIT_OFFER:
            return self._on_offer(PortraitOffer.decode(packet))
        return self._on_chunk(PortraitChunk.decode(packet))

    def _on_offer(self, offer: PortraitOffer) -> list[bytes]:
        if offer.sha256 in self._cache:
            self._cache.move_to_end(offer.sha256)
            self.latest = offer.sha256
            return [PortraitReply(Kind.PORTRAIT_ACCEPTED, offer.sha256).encode()]
        if offer.size == 0 or offer.size > self.max_bytes:
            return self._reject(
                offer.sha256,
                RejectCode.TOO_LARGE,
                f"portrait of {offer.size} bytes; this receiver accepts 1..{self.max_bytes}",
            )
        if offer.sha256 not in self._pending and len(self._pending) >= MAX_PENDING_TRANSFERS:
            return self._reject(offer.sha256, RejectCode.BUSY, "too many portrait transfers")
        self._pending[offer.sha256] = _Transfer(offer.size)
        return [PortraitReply(Kind.PORTRAIT_NEED, offer.sha256).encode()]

    def _on_chunk(self, chunk: PortraitChunk) -> list[bytes]:
        transfer = self._pending.get(chunk.sha256)
        if transfer is None and chunk.sha256 in self._cache:
            return self._late_chunk(chunk)
        if transfer is None:
            raise ProtocolError("portrait chunk for a portrait that was never offered")
        if transfer.count is None:
            transfer.count = chunk.count
        if chunk.count != transfer.count:
            raise ProtocolError("portrait chunk: chunk count changed during a transfer")
        if chunk.index not in transfer.chunks:
            transfer.received += len(chunk.data)
            transfer.chunks[chunk.index] = chunk.data
        if transfer.received > transfer.size:
            del self._pending[chunk.sha256]
            return self._reject(
                chunk.sha256, RejectCode.TOO_LARGE, "more bytes arrived than were offered"
            )
        if len(transfer.chunks) < transfer.count:
            return []
        del self._pending[chunk.sha256]
        data = b"".join(transfer.chunks[i] for i in range(transfer.count))
        return self._finish(chunk.sha256, data)

    def _late_chunk(self, chunk: PortraitChunk) -> list[bytes]:
        """A chunk of a portrait that is already cached: two senders offered the same bytes
        at once (two participants with the same picture), their transfers shared one pending
        entry, and the other sender's completed it. The rest of this sender's chunks are
        redundant; its last one is answered ACCEPTED, so that sender (and whoever the reply
        is framed for) learns the portrait arrived. Chunks of one transfer arrive in order on
        the reliable channel, so the last one comes after the ones it makes redundant."""
        if chunk.index != chunk.count - 1:
            return []
        self._cache.move_to_end(chunk.sha256)
        self.latest = chunk.sha256
        return [PortraitReply(Kind.PORTRAIT_ACCEPTED, chunk.sha256).encode()]

    def _finish(self, sha256: bytes, data: bytes) -> list[bytes]:
        if hashlib.sha256(data).digest() != sha256:
            return self._reject(sha256, RejectCode.BAD_HASH, "bytes do not match their sha256")
        dims = image_dimensions(data)
        if dims is None:
            return self._reject(
                sha256, RejectCode.UNSUPPORTED_FORMAT, "not a PNG or JPEG image; send one"
            )
        _, width, height = dims
        if width > self.max_side or height > self.max_side or width * height > self.max_pixels:
            return self._reject(
                sha256,
                RejectCode.TOO_MANY_PIXELS,
                f"{width}x{height} exceeds {self.max_side}px a side / {self.max_pixels} pixels",
            )
        try:
            rgb = _decode_rgb(data)
        except ProtocolError as error:
            return self._reject(sha256, RejectCode.UNDECODABLE, str(error))
        if rgb.shape[:2] != (height, width):
            return self._reject(sha256, RejectCode.UNDECODABLE, "image header and pixels disagree")
        self._store(sha256, data)
        self.latest = sha256
        return [PortraitReply(Kind.PORTRAIT_ACCEPTED, sha256).encode()]

    def _store(self, sha256: bytes, data: bytes) -> None:
        self._cache[sha256] = data
        self._cached_total += len(data)
        while self._cached_total > self.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cached_total -= len(evicted)

    def _reject(self, sha256: bytes, code: RejectCode, reason: str) -> list[bytes]:
        reply = PortraitReply(Kind.PORTRAIT_REJECTED, sha256, code, reason)
        self.last_rejection = reply
        return [reply.encode()]


def _decode_rgb(data: bytes) -> np.ndarray:
    import cv2  # imported lazily: only the receiver of a portrait needs OpenCV

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ProtocolError("portrait bytes do not decode as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
