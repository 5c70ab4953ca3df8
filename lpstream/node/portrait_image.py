"""Source portraits as they arrive from a browser: encoded bytes → validated RGB image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from lpstream.errors import ImageError

MAX_PIXELS = 4096 * 4096


@dataclass
class Portrait:
    """A participant's source portrait, kept encoded (to forward) and decoded (to render)."""

    encoded: bytes
    """The JPEG/PNG bytes as uploaded, forwarded unchanged to other nodes (empty when the
    portrait itself came from another node)."""
    sha256: str
    """Content address: nodes and renderers cache by it."""
    rgb: np.ndarray
    """Decoded, scaled so the longest side is at most the node's `portrait_max_side`."""


def decode_portrait(encoded: bytes, max_side: int, max_bytes: int) -> Portrait:
    """Decode and scale an uploaded portrait; raise ImageError with a message a user can act on."""
    if not encoded:
        raise ImageError("the portrait is empty")
    if len(encoded) > max_bytes:
        raise ImageError(
            f"the portrait is {len(encoded) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB"
        )
    if not (encoded.startswith(b"\xff\xd8") or encoded.startswith(b"\x89PNG\r\n\x1a\n")):
        # Only what every node accepts (the portrait protocol carries JPEG and PNG).
        raise ImageError("the portrait is not a JPEG or PNG image")
    declared = declared_size(encoded)
    if declared is None:  # a decoder may still find a frame header this walk cannot reach
        raise ImageError("the portrait's size cannot be read from its header (a damaged image?)")
    _check_size(*declared)  # refuse before decoding: a few kB can unpack to gigabytes
    buffer = np.frombuffer(encoded, np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError("the portrait could not be decoded (a damaged JPEG or PNG?)")
    height, width = bgr.shape[:2]
    _check_size(width, height)
    rgb = scale_portrait(np.ascontiguousarray(bgr[..., ::-1]), max_side)
    return Portrait(encoded, hashlib.sha256(encoded).hexdigest(), rgb)


def _check_size(width: int, height: int) -> None:
    if height * width > MAX_PIXELS or min(height, width) < 32:
        raise ImageError(f"the portrait is {width}×{height}; use 32–4096 pixels per side")


# JPEG start-of-frame markers (SOF0..SOF15 except DHT, JPG and DAC, which share the range).
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def declared_size(encoded: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, None if not found."""
    if encoded.startswith(b"\x89PNG\r\n\x1a\n") and encoded[12:16] == b"IHDR":
        return int.from_bytes(encoded[16:20], "big"), int.from_bytes(encoded[20:24], "big")
    offset = 2  # after SOI; walk the marker segments up to the frame header
    while offset + 9 <= len(encoded) and encoded[offset] == 0xFF:
        marker = encoded[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = int.from_bytes(encoded[offset + 2 : offset + 4], "big")
        if marker in _JPEG_SOF:
            height = int.from_bytes(encoded[offset + 5 : offset + 7], "big")
            width = int.from_bytes(encoded[offset + 7 : offset + 9], "big")
            return width, height
        if length < 2:
            return None
        offset += 2 + length
    return None


def scale_portrait(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Longest side at most `max_side`, even sides (the video encoders need them)."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1.0:
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2])
