"""The one error type every protocol decoder raises on bad input."""

from __future__ import annotations

from lpstream.errors import LpstreamError


class ProtocolError(LpstreamError):
    """A packet is malformed, of an unknown version or kind, or breaks a size limit."""
