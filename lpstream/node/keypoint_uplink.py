"""Uplink `keypoints`: the browser extracts and encodes its own motion; the camera never
leaves it. The node relays the packets as they are (it never decodes them here) and sends the
merged feedback of every receiver back.

Data channel `motion-up` (browser-created, unordered, no retransmits): browser → node one
motion packet per message (docs/protocol.md §3); node → browser one Feedback (§5) per message.
Control message `{"type":"face","track":N}`: the browser's face tracker acquired face N.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lpstream.node.browser_control import ControlMessageError
from lpstream.node.endpoints import EndpointContext
from lpstream.node.meters import RateMeter
from lpstream.protocol import MAX_PACKET_BYTES, MotionPacket, ProtocolError
from lpstream.rate_limit import TokenBucket

log = logging.getLogger("lpstream.node")

CHANNEL = "motion-up"
MAX_FACE_ID = 2**31 - 1


class KeypointUplink:
    kind = "keypoints"

    def __init__(self, context: EndpointContext) -> None:
        self.route = context.route
        fps = context.config.fps
        self._budget = TokenBucket(rate=2 * fps, burst=int(4 * fps))
        """Twice the frame rate: more is a flood, not a face."""
        self.channel: Any = None
        self.motion_in = RateMeter()
        self.packets_in = RateMeter()
        self.feedback_out = RateMeter()
        self.refused = 0

    def adopt_track(self, track: Any, receiver: Any) -> bool:
        return False  # a keypoint page sends no camera; a stray track is not decoded

    def adopt_channel(self, channel: Any) -> bool:
        if channel.label != CHANNEL or self.channel is not None:
            return False
        self.channel = channel
        channel.on("message", self._on_packet)
        self.route.attach_sender(self._send_feedback)
        return True

    def _on_packet(self, data: str | bytes) -> None:
        if not isinstance(data, bytes) or not 2 <= len(data) <= MAX_PACKET_BYTES:
            self.refused += 1
            return
        if not self._budget.allow():
            self.refused += 1
            return
        try:
            MotionPacket.parse(data)  # the header only: a non-motion packet is not relayed
        except ProtocolError:
            self.refused += 1
            return
        self.motion_in.add(len(data))
        self.packets_in.add()
        # The arrival here stands in for the camera time: tiles rendered on this node then
        # measure node-in to avatar-out.
        self.route.publish(data, time.monotonic())

    def _send_feedback(self, packet: bytes) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(packet)
            self.feedback_out.add(len(packet))

    def handle_control(self, message: dict[str, Any]) -> bool:
        if message.get("type") != "face":
            return False
        track = message.get("track")
        if isinstance(track, bool) or not isinstance(track, int) or not 0 <= track <= MAX_FACE_ID:
            raise ControlMessageError(f"face track id must be 0..{MAX_FACE_ID}, got {track!r:.40}")
        self.route.set_face(track)
        return True

    def figures(self) -> dict[str, float]:
        return {
            "motion_kbps": self.motion_in.rate() * 8 / 1000,
            "sender_fps": self.packets_in.rate(),
            "feedback_kbps": self.feedback_out.rate() * 8 / 1000,
            "refused_packets": float(self.refused),
        }

    async def close(self) -> None:
        self.route.detach_sender(self._send_feedback)
