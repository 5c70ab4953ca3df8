"""The random RTP timestamp origin of an aiortc sender, so that forwarded audio can leave
the node with the speaker's own RTP timestamps.

aiortc sends a pre-encoded packet at `timestamp_origin + packet.pts`, where
`timestamp_origin` is a random 32-bit number drawn when the sender's send loop starts and kept
in a local variable of that loop (`RTCRtpSender._run_rtp`); there is no public way to choose
or read it. A listener's page needs the speaker's timestamps (the keypoint downlink plays each
motion frame when the voice of the same RTP time plays: web_client/audio_clock.js), so the
forwarding track gives `pts = speaker timestamp − origin` and the packet leaves with the
speaker's timestamp.

`timestamp_origin(sender)` reads the local from the running loop's frame. If aiortc changes
(no such task or local), it returns None and the forwarded timestamps are aiortc's own: sound
still plays, only the keypoint downlink's lip sync falls back to arrival times.
"""

from __future__ import annotations

from typing import Any

RTP_MODULO = 1 << 32


def timestamp_origin(sender: Any) -> int | None:
    """The sender's RTP timestamp origin once its send loop runs, else None."""
    task = getattr(sender, "_RTCRtpSender__rtp_task", None)
    if task is None or task.done():
        return None
    frame = getattr(task.get_coro(), "cr_frame", None)
    if frame is None:
        return None
    origin = frame.f_locals.get("timestamp_origin")
    return origin if isinstance(origin, int) else None


def pts_for(rtp_timestamp: int, origin: int) -> int:
    """The pts that makes a sender with `origin` send `rtp_timestamp`."""
    return (rtp_timestamp - origin) % RTP_MODULO
