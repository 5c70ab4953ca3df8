"""HMAC room tokens: `<expiry unix seconds>.<hex HMAC-SHA256(secret, "room|expiry")>`.

A token admits anyone holding it to one room until it expires, so invite links can be
shared without accounts. Node registrations use the room name `node:<node id>`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from signaling.errors import TokenError

DEFAULT_TTL_S = 24 * 3600


def _signature(secret: str, room: str, expiry: int) -> str:
    message = f"{room}|{expiry}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def make_token(secret: str, room: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    if not secret:
        raise ValueError("token secret must not be empty")
    expiry = int((time.time() if now is None else now) + ttl_s)
    return f"{expiry}.{_signature(secret, room, expiry)}"


def verify_token(secret: str, room: str, token: object, now: float | None = None) -> None:
    """Raise TokenError unless `token` admits `room` right now."""
    if not isinstance(token, str) or not token:
        raise TokenError(f"room {room!r} needs a token (the server runs with --token-secret)")
    expiry_text, _, signature = token.partition(".")
    if not expiry_text.isdigit() or len(signature) != 64:
        raise TokenError("malformed token: expected '<expiry>.<64 hex digits>'")
    expiry = int(expiry_text)
    if not hmac.compare_digest(signature, _signature(secret, room, expiry)):
        raise TokenError(f"token is not valid for room {room!r}")
    if expiry < (time.time() if now is None else now):
        raise TokenError("token has expired; ask for a new invite link")
