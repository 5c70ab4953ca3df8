"""ICE servers (STUN/TURN) with credentials, as browsers and aiortc take them.

TURN needs a username and a credential; a browser refuses a `turn:` entry without them. Two
kinds of credentials:

- static: one username/credential pair configured on the TURN server (`user=` in coturn);
- short-lived, minted from a secret shared with the TURN server (the "TURN REST API"
  convention, coturn's `use-auth-secret` + `static-auth-secret`): username is
  `<expiry unix time>:<name>`, credential is base64(HMAC-SHA1(secret, username)). The TURN
  server recomputes the HMAC and refuses an expired username, so a leaked page config stops
  working after `ttl_s`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

TURN_SCHEMES = ("turn:", "turns:")
ICE_SCHEMES = ("stun:", "stuns:", *TURN_SCHEMES)
DEFAULT_TTL_S = 12 * 3600
"""Lifetime of minted TURN credentials: a working day; coturn refuses expired usernames."""


def turn_rest_credentials(
    secret: str, name: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None
) -> tuple[str, str]:
    """(username, credential) valid for `ttl_s` seconds under coturn's `use-auth-secret`."""
    expiry = int(time.time() if now is None else now) + ttl_s
    username = f"{expiry}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def is_turn(url: str) -> bool:
    return url.startswith(TURN_SCHEMES)


@dataclass(frozen=True)
class IceServer:
    """One entry of `RTCConfiguration.iceServers`, possibly minting its own credentials."""

    urls: tuple[str, ...]
    """'stun:host:port', 'turn:host:port?transport=udp|tcp', 'turns:host:port'."""
    username: str | None = None
    """Static TURN username (None for STUN, or when `auth_secret` mints one)."""
    credential: str | None = None
    """Static TURN password."""
    auth_secret: str | None = None
    """Secret shared with the TURN server (coturn `static-auth-secret`): mint per peer."""
    ttl_s: int = DEFAULT_TTL_S
    """Lifetime of minted credentials."""

    def __post_init__(self) -> None:
        for url in self.urls:
            if not url.startswith(ICE_SCHEMES):
                raise ValueError(
                    f"ICE server URL must start with stun:, stuns:, turn: or turns:: {url!r}"
                )
        if any(is_turn(url) for url in self.urls) and not (
            self.auth_secret or (self.username and self.credential)
        ):
            raise ValueError(
                f"TURN URL {self.urls[0]!r} needs a username and credential "
                "(--turn-username/--turn-credential) or a shared secret (--turn-secret)"
            )

    def resolved(self, name: str, now: float | None = None) -> IceServer:
        """This server with concrete credentials for peer `name` (minted when shared-secret)."""
        if not self.auth_secret:
            return self
        username, credential = turn_rest_credentials(self.auth_secret, name, self.ttl_s, now)
        return IceServer(self.urls, username, credential)

    def browser_entry(self, name: str, now: float | None = None) -> dict[str, Any]:
        """The `RTCIceServer` dictionary for a page's `new RTCPeerConnection({iceServers})`."""
        server = self.resolved(name, now)
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username is not None:
            entry["username"] = server.username
            entry["credential"] = server.credential
        return entry


def ice_servers_from_urls(
    urls: list[str],
    username: str | None = None,
    credential: str | None = None,
    auth_secret: str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
) -> list[IceServer]:
    """Command-line form: STUN URLs as they are; all TURN URLs share one set of credentials."""
    stun = [IceServer((url,)) for url in urls if not is_turn(url)]
    turn = tuple(url for url in urls if is_turn(url))
    if not turn:
        return stun
    return [*stun, IceServer(turn, username, credential, auth_secret, ttl_s)]
