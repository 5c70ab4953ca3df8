"""The router: encoded motion, codec feedback, portraits and face changes, from whoever sends
them to whoever receives them, without knowing what either is.

A *source* is one participant's motion stream. Whatever produces it — an uplink on this node
(camera → extraction → encoder), or a node link carrying a participant of another node —
publishes packets to the source's `SourceRoute` and gets the merged feedback of every
receiver back through the callback it attached. A *sink* is anything that receives a
source's stream: a tile that renders it, a node link that carries it on, a browser that
decodes it itself. Packets are never decoded here; the router reads only the packet kind
(to tell "no face" from motion, for the overlay).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lpstream.node.feedback_merge import FeedbackMerger
from lpstream.node.meters import RateMeter
from lpstream.node.neutral_pose import SILENCE_S
from lpstream.node.portrait_image import Portrait
from lpstream.protocol import ProtocolError, Stats
from lpstream.protocol.wire import Kind
from lpstream.rate_limit import LogLimiter

log = logging.getLogger("lpstream.node")
quiet = LogLimiter(log)
"""Per-message complaints: one line per peer per interval."""


class MotionSink(Protocol):
    """A receiver of one source's stream."""

    key: str
    """Unique among the sinks of one source (feedback is merged per key)."""

    def on_motion(self, packet: bytes, stamp: float | None) -> bytes | None:
        """A motion packet; `stamp` is its camera frame's arrival (monotonic s) when the sender
        is on this node. Returns codec feedback for the sender, if the sink decodes."""
        ...

    def on_portrait(self, portrait: Portrait) -> None:
        """The source's portrait (again after each change)."""
        ...

    def on_face(self, face_id: int) -> None:
        """The sender's face tracker acquired face `face_id` (a new id: a different face)."""
        ...


def is_no_face(packet: bytes) -> bool:
    return len(packet) >= 2 and packet[1] & 0xF0 == Kind.NO_FACE


@dataclass
class SourceFigures:
    """What the overlay and /metrics show about a source, whoever produces it."""

    camera_kbps: float = 0.0
    """Bitrate of the sender's camera video as it reached its node (what video would cost)."""
    backend: str = ""
    """Backend of the node that extracts this source's motion."""
    sender_fps: float = 0.0
    """Motion frames extracted per second (sources on this node)."""
    extract_ms: float = 0.0
    """Last motion extraction time (sources on this node)."""
    remote_stats: Stats | None = None
    """The sender node's protocol Stats, for sources on another node."""


class SourceRoute:
    """One participant's motion stream and everything the router knows about it."""

    def __init__(self, participant_id: str, name: str) -> None:
        self.id = participant_id
        self.name = name
        self.portrait: Portrait | None = None
        self.face_id: int | None = None
        self.figures = SourceFigures()
        self.motion_bytes = RateMeter()
        self.packets = 0
        self.bad_feedback = 0
        self.face_lost_at: float | None = None
        self.last_packet_at: float | None = None
        """Monotonic time since which the sender reports no face; None while it sees one."""
        self._sinks: dict[str, MotionSink] = {}
        self._merger = FeedbackMerger()
        self._to_sender: Callable[[bytes], None] | None = None

    # -- the sender's side -------------------------------------------------------------------

    def attach_sender(self, on_feedback: Callable[[bytes], None]) -> None:
        """Whoever produces the stream now (a new uplink, a rebuilt link) takes feedback."""
        self._to_sender = on_feedback

    def detach_sender(self, on_feedback: Callable[[bytes], None]) -> None:
        if self._to_sender == on_feedback:  # bound methods are equal, not identical
            self._to_sender = None

    @property
    def has_audience(self) -> bool:
        return bool(self._sinks)

    def publish(self, packet: bytes, stamp: float | None = None) -> None:
        self.packets += 1
        self.motion_bytes.add(len(packet))
        self.last_packet_at = time.monotonic()
        if is_no_face(packet):
            if self.face_lost_at is None:
                self.face_lost_at = time.monotonic()
        else:
            self.face_lost_at = None
        for key, sink in list(self._sinks.items()):
            reply = sink.on_motion(packet, stamp)
            if reply is not None:
                self.feedback(key, reply)

    def set_face(self, face_id: int) -> None:
        if face_id == self.face_id:
            return
        self.face_id = face_id
        for sink in list(self._sinks.values()):
            sink.on_face(face_id)

    def set_portrait(self, portrait: Portrait) -> None:
        self.portrait = portrait
        for sink in list(self._sinks.values()):
            sink.on_portrait(portrait)

    def face_hidden_for(self) -> float:
        """Seconds the sender has been reporting no face, or sending no motion at all (its
        camera is off: `neutral_pose.SILENCE_S`); 0 while its face is visible."""
        now = time.monotonic()
        if self.face_lost_at is not None:
            return now - self.face_lost_at
        if self.last_packet_at is not None and now - self.last_packet_at > SILENCE_S:
            return now - self.last_packet_at
        return 0.0

    # -- the receivers' side -----------------------------------------------------------------

    def connect(self, sink: MotionSink) -> None:
        """Start delivering to `sink`: it gets the portrait and face now, a keyframe soon."""
        self._sinks[sink.key] = sink
        if self.face_id is not None:
            sink.on_face(self.face_id)
        if self.portrait is not None:
            sink.on_portrait(self.portrait)
        self._to_sender_safely(self._merger.add_receiver(sink.key))

    def disconnect(self, key: str) -> None:
        if self._sinks.pop(key, None) is not None:
            self._to_sender_safely(self._merger.remove_receiver(key))

    def sinks(self) -> list[MotionSink]:
        return list(self._sinks.values())

    def feedback(self, key: str, packet: bytes) -> None:
        """Codec feedback from receiver `key` (from a sink, or from a node link)."""
        try:
            merged = self._merger.on_feedback(key, packet)
        except ProtocolError as exc:
            self.bad_feedback += 1
            quiet.warning(key, "bad feedback for %s from %s: %s", self.id, key, exc)
            return
        self._to_sender_safely(merged)

    def _to_sender_safely(self, packet: bytes | None) -> None:
        if packet is not None and self._to_sender is not None:
            self._to_sender(packet)


class Router:
    """Every source this node knows about, local or remote."""

    def __init__(self) -> None:
        self.sources: dict[str, SourceRoute] = {}

    def add_source(self, participant_id: str, name: str) -> SourceRoute:
        route = self.sources.get(participant_id)
        if route is None:
            route = self.sources[participant_id] = SourceRoute(participant_id, name)
        return route

    def remove_source(self, participant_id: str) -> SourceRoute | None:
        """Forget a source; its sinks are the caller's to close."""
        return self.sources.pop(participant_id, None)

    def get(self, participant_id: str) -> SourceRoute | None:
        return self.sources.get(participant_id)
