"""Client → server messages, parsed and validated into dataclasses with clear errors.

Wire format: one JSON object per websocket text message, with a `type` field.
  join           {"type": "join", "room", "name", "token"?, "node"?, "resume"?}  (participant)
  register-node  {"type": "register-node", "node", "token"?}             (media node)
  signal         {"type": "signal", "to", "data"}                        (relayed verbatim)
  leave          {"type": "leave"}
  ping           {"type": "ping"}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from signaling.errors import SignalingError

_NAME = re.compile(r"^[\w.\- ]+$")


@dataclass
class Join:
    room: str
    """Room name from the invite link."""
    name: str
    """Display name, unique in the room: a second join with a name in use is refused unless it
    carries that connection's `resume` secret (a reconnect), which replaces it."""
    token: str | None
    """HMAC room token, required when the server has a token secret."""
    node: str | None
    """Preferred media node id (the node that served the page), else the least loaded one."""
    resume: str | None = None
    """The `resume` secret the server gave this name's earlier connection (`joined`)."""


@dataclass
class RegisterNode:
    node: str
    """Unique id of the media node."""
    token: str | None
    """HMAC token for room `node:<id>`, required when the server has a token secret."""


@dataclass
class Signal:
    to: str
    """Member id of the recipient (a participant's node, a node, or a participant)."""
    data: Any
    """Opaque payload (SDP, ICE candidate...), relayed as is."""


@dataclass
class Leave:
    pass


@dataclass
class Ping:
    pass


ClientMessage = Join | RegisterNode | Signal | Leave | Ping


def _name(value: object, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SignalingError("bad-message", f"'{field}' must be a non-empty string")
    value = value.strip()
    if len(value) > max_length or not _NAME.match(value):
        raise SignalingError(
            "bad-message",
            f"'{field}' must be ≤ {max_length} letters, digits, spaces, '.', '-' or '_'",
        )
    return value


def _optional_str(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise SignalingError("bad-message", f"'{field}' must be a string of ≤ 200 characters")
    return value


def parse_message(raw: str | bytes, max_name_length: int = 40) -> ClientMessage:
    """Parse one websocket message; raise SignalingError("bad-message", ...) if invalid."""
    if isinstance(raw, bytes):
        raise SignalingError("bad-message", "binary messages are not accepted; send JSON text")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SignalingError("bad-message", f"not JSON: {exc.msg}") from None
    except RecursionError:  # deeply nested arrays: refused like any bad message
        raise SignalingError("bad-message", "JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise SignalingError("bad-message", "a message must be a JSON object")
    kind = obj.get("type")
    if kind == "join":
        return Join(
            room=_name(obj.get("room"), "room", max_name_length),
            name=_name(obj.get("name"), "name", max_name_length),
            token=_optional_str(obj.get("token"), "token"),
            node=_optional_str(obj.get("node"), "node"),
            resume=_optional_str(obj.get("resume"), "resume"),
        )
    if kind == "register-node":
        return RegisterNode(
            node=_name(obj.get("node"), "node", max_name_length),
            token=_optional_str(obj.get("token"), "token"),
        )
    if kind == "signal":
        to = obj.get("to")
        if not isinstance(to, str) or not to:
            raise SignalingError("bad-message", "'to' must be a member id")
        if "data" not in obj:
            raise SignalingError("bad-message", "'signal' needs a 'data' field")
        return Signal(to=to, data=obj["data"])
    if kind == "leave":
        return Leave()
    if kind == "ping":
        return Ping()
    raise SignalingError("bad-message", f"unknown message type {kind!r}")
