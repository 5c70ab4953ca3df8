"""Signaling: rooms of participants and media nodes, SDP/ICE relay over websockets.

Run alone with `python -m signaling`; `python -m lpstream.serve` embeds it.
"""

from signaling.limits import Limits
from signaling.server import SignalingServer
from signaling.tokens import make_token, verify_token

__all__ = ["Limits", "SignalingServer", "make_token", "verify_token"]
