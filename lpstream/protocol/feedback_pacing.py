"""How often a receiver sends feedback: every few frames, not every frame.

Each feedback is a packet of its own on the wire (~100 bytes with DTLS, SCTP, UDP and IP
headers, and the acknowledgement it causes), for 9 bytes of payload. Acknowledging every
FEEDBACK_EVERY_PACKETS-th packet keeps the sender's references a few frames fresher than
MAX_GAP needs while cutting the feedback packets by that factor; a keyframe request (the
receiver is stuck) and the very first acknowledgement (the sender keyframes until then) go
out at once. Counting packets, not time, makes the pacing identical in every runtime.
"""

from __future__ import annotations

from lpstream.protocol.motion_codec import MotionDecoder

FEEDBACK_EVERY_PACKETS = 8


class FeedbackPacer:
    """Ask `poll()` after each packet given to `decoder`; it returns feedback when due."""

    def __init__(self, decoder: MotionDecoder, every: int = FEEDBACK_EVERY_PACKETS) -> None:
        if every < 1:
            raise ValueError("feedback pacing needs every >= 1")
        self.decoder = decoder
        self.every = every
        self._since = 0
        self._acknowledged = False

    def poll(self) -> bytes | None:
        self._since += 1
        due = self._since >= self.every or not self._acknowledged
        if not (due or self.decoder.keyframe_needed):
            return None
        packet = self.decoder.feedback()
        if packet is not None:
            self._since = 0
            self._acknowledged = True
        return packet
