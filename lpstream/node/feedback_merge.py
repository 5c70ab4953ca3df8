"""One motion stream, several receivers: their feedback merged into what the sender may trust.

A sender has one encoder per stream, and its deltas may only reference frames that every
receiver decoded. So the router keeps, per receiver, the frames it acknowledged, and hands
the sender the intersection; a keyframe request from any receiver (or a receiver that just
joined) is a keyframe request for the stream. The packets are the protocol's Feedback
(docs/protocol.md §5), so a sender cannot tell one receiver from many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpstream.protocol import Feedback, Kind, ProtocolError
from lpstream.protocol.feedback import ACK_WINDOW
from lpstream.protocol.wire import expect_kind, seq_delta

ACK_MEMORY = 64
"""Acknowledgements older than this many frames behind a receiver's newest are forgotten
(the protocol's decoders keep 64 frames; encoders reference at most 48 back)."""


@dataclass
class _ReceiverAcks:
    newest: int | None = None
    acked: set[int] = field(default_factory=set)

    def add(self, feedback: Feedback) -> None:
        if feedback.keyframe_request:  # its earlier acknowledgements are worthless now
            self.acked.clear()
            self.newest = None
        for seq in feedback.acked:
            self.acked.add(seq)
            if self.newest is None or seq_delta(seq, self.newest) > 0:
                self.newest = seq
        newest = self.newest
        if newest is not None:
            self.acked = {s for s in self.acked if 0 <= seq_delta(newest, s) < ACK_MEMORY}


class FeedbackMerger:
    """Feedback of every receiver of one stream → feedback for its sender."""

    def __init__(self) -> None:
        self._receivers: dict[str, _ReceiverAcks] = {}
        self._sent: tuple[int, ...] | None = None

    @property
    def receivers(self) -> tuple[str, ...]:
        return tuple(self._receivers)

    def add_receiver(self, key: str) -> bytes:
        """A new receiver: it has no references yet, so the sender must send a keyframe."""
        self._receivers[key] = _ReceiverAcks()
        self._sent = ()
        return Feedback(None, (), keyframe_request=True).encode()

    def remove_receiver(self, key: str) -> bytes | None:
        """The receiver left: what the others acknowledged may now be trusted."""
        if self._receivers.pop(key, None) is None:
            return None
        return self._merged(keyframe_request=False)

    def on_feedback(self, key: str, packet: bytes) -> bytes | None:
        """A receiver's Feedback or KeyframeRequest → the sender's, or None if nothing changed.

        Raises ProtocolError on bytes that are neither."""
        kind, _, _ = expect_kind(packet, Kind.FEEDBACK, Kind.KEYFRAME_REQUEST)
        if kind is Kind.KEYFRAME_REQUEST:
            if len(packet) != 2:
                raise ProtocolError("keyframe request: trailing bytes")
            feedback = Feedback(None, (), keyframe_request=True)
        else:
            feedback = Feedback.decode(packet)
        receiver = self._receivers.get(key)
        if receiver is None:
            return None  # feedback from a receiver that already left
        receiver.add(feedback)
        return self._merged(feedback.keyframe_request)

    def _merged(self, keyframe_request: bool) -> bytes | None:
        common: set[int] | None = None
        for receiver in self._receivers.values():
            common = set(receiver.acked) if common is None else common & receiver.acked
        acked = common or set()
        newest = None
        for seq in acked:
            if newest is None or seq_delta(seq, newest) > 0:
                newest = seq
        window = tuple(
            sorted(
                (
                    s
                    for s in acked
                    if newest is not None and 0 <= seq_delta(newest, s) <= ACK_WINDOW
                ),
                key=lambda s: seq_delta(newest, s) if newest is not None else 0,
            )
        )
        if not keyframe_request and window == self._sent:
            return None
        self._sent = window
        return Feedback(newest, window, keyframe_request).encode()
