"""Which browser origins may open the signaling websocket."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class OriginPolicy:
    """Same-origin pages are always allowed; others only if listed (or '*').

    Clients without an Origin header (nodes, scripts) are not browsers and are allowed:
    the origin check exists to stop other web sites from using a visitor's browser.
    """

    allowed: list[str] = field(default_factory=list)
    """Extra origins such as 'https://call.example.org', or '*' for any."""

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        if "*" in self.allowed or origin.rstrip("/") in (o.rstrip("/") for o in self.allowed):
            return True
        parts = urlsplit(origin)
        return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host
