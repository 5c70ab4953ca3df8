"""The browser's JSON messages on the `control` data channel (docs/protocol.md §9): parsing
with real ranges, and the messages the node sends back.

Browser → node: `controls` (sliders, the voice-mouth switch), `portrait` (upload header; the
bytes follow as binary messages), `portrait-end`, `ping`. Node → browser: `hello`, `slots`,
`stats`, `portrait-ok`, `error`, `pong`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from lpstream.backend import Controls

MAX_CONTROL_MESSAGE_BYTES = 4096
"""Largest JSON control message accepted (the real ones are < 200 bytes)."""
EYE_RANGE = (0.0, 1.0)
"""Target eye-open ratio (null: follow the sender)."""
LIP_RANGE = (0.0, 1.0)
"""Target lip-open ratio (null: follow the sender)."""
HEAD_RANGE = (0.0, 3.0)
"""Multiplier on the sender's head motion."""


class ControlMessageError(ValueError):
    """A control message the node refuses (answered with an `error` message)."""


def parse_message(data: str) -> dict[str, Any]:
    """One JSON control message: an object with a string `type`."""
    if len(data) > MAX_CONTROL_MESSAGE_BYTES:
        raise ControlMessageError(f"control messages are at most {MAX_CONTROL_MESSAGE_BYTES} B")
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ControlMessageError(f"control message is not JSON ({exc})") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ControlMessageError("control messages are JSON objects with a string 'type'")
    return message


def _number(value: object, limits: tuple[float, float], name: str) -> float | None:
    if value is None:
        return None
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlMessageError(f"slider {name} must be a number, got {value!r:.40}")
    number = float(value) if abs(value) < 1e300 else math.inf
    if not low <= number <= high:
        raise ControlMessageError(f"slider {name} value {value!r:.40} outside [{low}, {high}]")
    return number


def _switch(message: dict[str, Any], name: str, default: bool) -> bool:
    value = message.get(name, default)
    if not isinstance(value, bool):
        raise ControlMessageError(f"switch {name} must be true or false, got {value!r:.40}")
    return value


def parse_controls(message: dict[str, Any]) -> Controls:
    """Sliders from the browser; out-of-range values are refused, not clamped silently."""
    head = _number(message.get("head", 1.0), HEAD_RANGE, "head")
    return Controls(
        eye_open=_number(message.get("eye"), EYE_RANGE, "eye"),
        lip_open=_number(message.get("lip"), LIP_RANGE, "lip"),
        head_motion=1.0 if head is None else head,
        stitching=bool(message.get("stitching", True)),
        voice_mouth=_switch(message, "voice", Controls.voice_mouth),
    )


@dataclass(frozen=True)
class PortraitHeader:
    """`{"type": "portrait", "bytes": N, "sha256": HEX}`: an upload of N bytes follows."""

    size: int
    sha256: str

    @staticmethod
    def parse(message: dict[str, Any], max_bytes: int) -> PortraitHeader:
        size = message.get("bytes")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= max_bytes:
            raise ControlMessageError(
                f"portrait size must be 1..{max_bytes} bytes, got {size!r:.40}"
            )
        sha256 = message.get("sha256")
        if not isinstance(sha256, str) or len(sha256) != 64:
            raise ControlMessageError("portrait needs its sha256 (64 hex digits)")
        return PortraitHeader(size, sha256.lower())


def encode(message: dict[str, Any]) -> str:
    """Node → browser: compact JSON with no NaN or Infinity (the browser's JSON.parse
    refuses them)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
