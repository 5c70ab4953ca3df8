"""Node-to-node link: one RTCPeerConnection with data channels only (no RTP media).

`motion` (unordered, maxRetransmits=0) carries motion packets and the participants' sound
(Opus packets as their browsers sent them, `link_audio.py`): a late packet is worthless,
the next one supersedes it. A sound packet goes out at once and takes the motion waiting
for a batch with it, so while someone speaks motion costs no packets of its own.

`control` (reliable, ordered) carries the protocol's messages
(lpstream.protocol): Hello, portrait transfer (offer / need / chunks / accepted), codec
feedback and Stats. Both channels carry many participants, so every binary message is
framed as `[len(id)][participant id][protocol packet]` (empty id: about the link itself).
The camera-equivalent bitrate, which the protocol's Stats has no field for, travels as a
small JSON text message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

from lpstream.errors import LpstreamError
from lpstream.node.audio_forwarding import AudioFrame
from lpstream.node.framing import frame_packet, pack_item, unframe_packet, unpack_batch
from lpstream.node.link_audio import decode_audio, encode_audio, is_audio
from lpstream.node.meters import RateMeter
from lpstream.node.shutdown import bounded
from lpstream.protocol import (
    Bye,
    Feedback,
    Hello,
    Kind,
    PortraitReceiver,
    PortraitRejectedError,
    PortraitSender,
    Stats,
    decode_message,
)
from lpstream.protocol.portrait import PortraitChunk, PortraitOffer, PortraitReply
from lpstream.rate_limit import LogLimiter

log = logging.getLogger("lpstream.node")
quiet = LogLimiter(log)
"""Per-message complaints: one line per peer per interval."""

MAX_JSON_MESSAGE_BYTES = 512
MOTION_BATCH_PACKETS = 3
"""Motion packets sent together in one message (one SCTP packet, one acknowledgement): a
motion packet is ~25 bytes, its headers on the wire ~93, so the link's cost is its packet
rate. With several participants on a link a batch is mostly their frames of one moment; with
one, a frame waits for up to two more (≤ 80 ms at 25 fps, 40 ms on average). Measured with
bench/user_link.py (one participant per side): one packet per message 47–56 kbit/s per
direction at 54 packets/s; pairs 28–31 kbit/s at 25–29; threes 21–22 kbit/s at 17–19."""
MOTION_BATCH_WAIT_S = 0.09
"""A batch goes out after this long even if not full."""
MAX_BATCH_BYTES = 1100
SOUND_ACTIVE_S = 0.15
"""While a sound packet went out on the link this recently (packets come every 60 ms while
someone speaks), motion waits for the next one instead of filling a batch of its own; the
batch timer and the byte limit still send it if none comes."""
FEEDBACK_COALESCE_S = 0.2
"""Feedback of one participant is sent at most this often (the newest supersedes the ones
before it), riding in the next motion batch the other way when there is one, else alone on
`control`; a keyframe request goes out at once on `control`."""
MAX_CAMERA_KBPS = 1_000_000.0


class LinkEvents:
    """What a link reports to its node; each callback gets the link and a participant id."""

    def __init__(
        self,
        motion: Callable[[NodeLink, str, bytes], None],
        feedback: Callable[[NodeLink, str, bytes], None],
        portrait: Callable[[NodeLink, str, np.ndarray, str], None],
        stats: Callable[[NodeLink, str, Stats | None, float | None], None],
        face: Callable[[NodeLink, str, int], None] | None = None,
        failed: Callable[[NodeLink], None] | None = None,
        audio: Callable[[NodeLink, str, AudioFrame], None] | None = None,
    ) -> None:
        self.motion = motion
        self.feedback = feedback
        self.portrait = portrait
        """(link, participant, RGB image, sha256 hex) once a portrait is complete and valid."""
        self.stats = stats
        """(link, participant, protocol Stats or None, camera kbit/s or None)."""
        self.face = face
        """(link, participant, tracker id): the sender's tracker acquired another face."""
        self.failed = failed
        """(link): its peer connection failed or was closed by the far side (reported once,
        never for a close this side asked for)."""
        self.audio = audio
        """(link, participant, frame): an Opus packet of a participant of the far node."""


class NodeLink:
    """The link to one other node."""

    def __init__(self, pc: RTCPeerConnection, remote_node: str, events: LinkEvents) -> None:
        self.pc = pc
        self.remote_node = remote_node
        self.events = events
        self.motion: Any = None
        self.control: Any = None
        self.opened = asyncio.Event()
        self.motion_bytes_out = RateMeter()
        self.motion_bytes_in = RateMeter()
        self.audio_bytes_out = RateMeter()
        self.audio_bytes_in = RateMeter()
        self._motion_queue: list[bytes] = []
        self._motion_queued_bytes = 0
        self._motion_timer: asyncio.TimerHandle | None = None
        self._last_sound = -1.0
        """Loop time of the last sound packet sent."""
        self._pending_feedback: dict[str, bytes] = {}
        self._feedback_timer: asyncio.TimerHandle | None = None
        self.errors = 0
        self.remote_backend = ""
        self.hello_sent = False
        self.portraits_in = PortraitReceiver()
        """Content-addressed cache: a portrait already received is never sent again."""
        self._portraits_out: dict[str, PortraitSender] = {}
        self.closing = False
        pc.on("datachannel", self._adopt)
        pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and not self.closing:
            self.closing = True
            if self.events.failed is not None:
                self.events.failed(self)

    def _adopt(self, channel: Any) -> None:
        if channel.label == "motion":
            self.motion = channel
            channel.on("message", self._motion_message)
        elif channel.label == "control":
            self.control = channel
            channel.on("message", self._control_message)
            if channel.readyState == "open":
                self.opened.set()
            else:
                channel.on("open", self.opened.set)

    async def offer(self) -> str:
        """Offerer side: both channels are created before the offer, so no renegotiation."""
        self._adopt(self.pc.createDataChannel("motion", ordered=False, maxRetransmits=0))
        self._adopt(self.pc.createDataChannel("control"))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    @property
    def is_open(self) -> bool:
        return self.control is not None and self.control.readyState == "open"

    # -- sending -----------------------------------------------------------------------------

    def _send(self, participant_id: str, packet: bytes) -> None:
        if self.is_open:
            self.control.send(frame_packet(participant_id, packet))

    def send_motion(self, participant_id: str, packet: bytes) -> None:
        if self.motion is None or self.motion.readyState != "open":
            return
        item = pack_item(participant_id, packet)
        if self._motion_queued and self._motion_queued_bytes + len(item) > MAX_BATCH_BYTES:
            self._flush_motion()
        self._motion_queue.append(item)
        self._motion_queued_bytes += len(item)
        self.motion_bytes_out.add(len(packet))
        if len(self._motion_queue) >= MOTION_BATCH_PACKETS and not self._sound_flowing():
            self._flush_motion()
        elif self._motion_timer is None:
            loop = asyncio.get_running_loop()
            self._motion_timer = loop.call_later(MOTION_BATCH_WAIT_S, self._flush_motion)

    def send_audio(self, participant_id: str, frame: AudioFrame) -> None:
        """An Opus packet goes at once (no batching delay for sound), with the motion that
        was waiting for its batch."""
        if self.motion is None or self.motion.readyState != "open":
            return
        try:
            item = pack_item(participant_id, encode_audio(frame))
        except ValueError as exc:
            self.errors += 1
            log.warning("not carrying a sound packet of %s: %s", participant_id, exc)
            return
        if self._motion_queued and self._motion_queued_bytes + len(item) > MAX_BATCH_BYTES:
            self._flush_motion()
        self._motion_queue.append(item)
        self._motion_queued_bytes += len(item)
        self.audio_bytes_out.add(len(frame.payload))
        self._last_sound = asyncio.get_running_loop().time()
        self._flush_motion()

    def _sound_flowing(self) -> bool:
        return asyncio.get_running_loop().time() - self._last_sound < SOUND_ACTIVE_S

    @property
    def _motion_queued(self) -> bool:
        return bool(self._motion_queue)

    def _flush_motion(self) -> None:
        if self._motion_timer is not None:
            self._motion_timer.cancel()
            self._motion_timer = None
        queue, self._motion_queue, self._motion_queued_bytes = self._motion_queue, [], 0
        if not queue or self.motion is None or self.motion.readyState != "open":
            return
        # Feedback waiting to go the other way rides along: no packet of its own.
        size = sum(len(item) for item in queue)
        for participant_id, feedback in list(self._pending_feedback.items()):
            item = pack_item(participant_id, feedback)
            if size + len(item) > MAX_BATCH_BYTES:
                break
            queue.append(item)
            size += len(item)
            del self._pending_feedback[participant_id]
        self.motion.send(b"".join(queue))

    def send_hello(self, backend: str) -> None:
        if not self.hello_sent and self.is_open:
            self._send("", Hello(backend, ("stitching",)).encode())
            self.hello_sent = True

    def send_bye(self) -> None:
        self._send("", Bye().encode())

    def send_feedback(self, participant_id: str, feedback: bytes) -> None:
        if _asks_for_keyframe(feedback):
            self._pending_feedback.pop(participant_id, None)
            self._send(participant_id, feedback)
            return
        self._pending_feedback[participant_id] = feedback
        if self._feedback_timer is None:
            loop = asyncio.get_running_loop()
            self._feedback_timer = loop.call_later(FEEDBACK_COALESCE_S, self._flush_feedback)

    def _flush_feedback(self) -> None:
        self._feedback_timer = None
        pending, self._pending_feedback = self._pending_feedback, {}
        for participant_id, feedback in pending.items():
            self._send(participant_id, feedback)

    def send_stats(self, participant_id: str, stats: Stats, camera_kbps: float) -> None:
        self._send(participant_id, stats.encode())
        if self.is_open:
            self.control.send(
                json.dumps({"type": "camera", "id": participant_id, "kbps": round(camera_kbps, 1)})
            )

    def send_face(self, participant_id: str, track_id: int) -> None:
        """The sender's face-tracker id, so the far node resets its renderers' reference
        when another face is acquired (the motion codec carries no identity)."""
        if self.is_open:
            self.control.send(json.dumps({"type": "face", "id": participant_id, "track": track_id}))

    def send_portrait(self, participant_id: str, encoded: bytes) -> None:
        """Offer a portrait; the receiver asks for the chunks only if it lacks them."""
        sender = self._portraits_out.get(participant_id)
        if sender is not None and sender.data == encoded:
            return
        sender = PortraitSender(encoded)
        self._portraits_out[participant_id] = sender
        self._send(participant_id, sender.offer())

    # -- receiving ---------------------------------------------------------------------------

    def _motion_message(self, message: str | bytes) -> None:
        try:
            if isinstance(message, str):
                raise ValueError("motion messages are binary")
            items = unpack_batch(message)
        except ValueError as exc:
            self.errors += 1
            quiet.warning(self.remote_node, "bad motion frame from %s: %s", self.remote_node, exc)
            return
        for participant_id, packet in items:
            if is_audio(packet):
                self._audio_item(participant_id, packet)
                continue
            if len(packet) >= 2 and packet[1] == Kind.FEEDBACK:
                self.events.feedback(self, participant_id, packet)
                continue
            self.motion_bytes_in.add(len(packet))
            self.events.motion(self, participant_id, packet)

    def _audio_item(self, participant_id: str, packet: bytes) -> None:
        try:
            frame = decode_audio(packet)
        except ValueError as exc:
            self.errors += 1
            quiet.warning(self.remote_node, "bad sound packet from %s: %s", self.remote_node, exc)
            return
        self.audio_bytes_in.add(len(frame.payload))
        if self.events.audio is not None:
            self.events.audio(self, participant_id, frame)

    def _control_message(self, message: str | bytes) -> None:
        try:
            if isinstance(message, str):
                self._json_message(message)
                return
            participant_id, packet = unframe_packet(message)
            self._protocol_message(participant_id, packet)
        except (ValueError, KeyError, TypeError, RecursionError, LpstreamError) as exc:
            self.errors += 1
            quiet.warning(
                self.remote_node, "bad control message from %s: %.200s", self.remote_node, exc
            )

    def _json_message(self, text: str) -> None:
        """`camera` and `face`, the link's two JSON messages (docs/protocol.md §10)."""
        if len(text) > MAX_JSON_MESSAGE_BYTES:
            raise ValueError("link JSON message too long")
        parsed = json.loads(text)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str):
            raise ValueError("link JSON messages are objects with a string 'id'")
        if parsed.get("type") == "camera":
            kbps = parsed.get("kbps")
            if isinstance(kbps, bool) or not isinstance(kbps, int | float):
                raise ValueError(f"camera kbps must be a number, got {kbps!r:.40}")
            if not 0 <= kbps <= MAX_CAMERA_KBPS:
                raise ValueError(f"camera kbps {kbps!r:.40} outside [0, {MAX_CAMERA_KBPS}]")
            self.events.stats(self, parsed["id"], None, float(kbps))
        elif parsed.get("type") == "face" and self.events.face is not None:
            track = parsed.get("track")
            if not isinstance(track, int) or isinstance(track, bool) or not 0 <= track < 2**31:
                raise ValueError(f"face track id must be a small integer, got {track!r:.40}")
            self.events.face(self, parsed["id"], track)

    def _protocol_message(self, participant_id: str, packet: bytes) -> None:
        message = decode_message(packet)
        if isinstance(message, Hello):
            self.remote_backend = message.backend
        elif isinstance(message, Feedback):
            self.events.feedback(self, participant_id, packet)
        elif isinstance(message, Stats):
            self.events.stats(self, participant_id, message, None)
        elif isinstance(message, PortraitOffer | PortraitChunk):
            self._portrait_in(participant_id, packet, message)
        elif isinstance(message, PortraitReply):
            self._portrait_reply(participant_id, packet)
        elif isinstance(message, Bye):
            log.info("node %s said bye", self.remote_node)

    def _portrait_in(
        self, participant_id: str, packet: bytes, message: PortraitOffer | PortraitChunk
    ) -> None:
        replies = self.portraits_in.on_packet(packet)
        for reply in replies:
            self._send(participant_id, reply)
            answer = PortraitReply.decode(reply)
            if answer.kind is Kind.PORTRAIT_ACCEPTED:
                # the reply is for this participant's transfer, also when another's
                # transfer of the same picture completed it (PortraitReceiver._late_chunk)
                image = self.portraits_in.image(answer.sha256)
                self.events.portrait(self, participant_id, image, answer.sha256.hex())
            elif answer.kind is Kind.PORTRAIT_REJECTED:
                log.warning("portrait of %s refused: %s", participant_id, answer.reason)

    def _portrait_reply(self, participant_id: str, packet: bytes) -> None:
        sender = self._portraits_out.get(participant_id)
        if sender is None:
            return
        try:
            for chunk in sender.on_reply(packet):
                self._send(participant_id, chunk)
        except PortraitRejectedError as exc:
            log.warning(
                "node %s refused the portrait of %s: %s", self.remote_node, participant_id, exc
            )

    async def close(self) -> None:
        self.closing = True
        for timer in (self._motion_timer, self._feedback_timer):
            if timer is not None:
                timer.cancel()
        self._motion_timer = self._feedback_timer = None
        self.send_bye()
        await bounded(self.pc.close(), "closing a node link")


def _asks_for_keyframe(feedback: bytes) -> bool:
    """A KeyframeRequest, or a Feedback with its keyframe flag (docs/protocol.md §5)."""
    if len(feedback) < 2:
        return True  # not ours to judge: let the far end refuse it at once
    if feedback[1] == Kind.KEYFRAME_REQUEST:
        return True
    return feedback[1] == Kind.FEEDBACK and len(feedback) > 2 and bool(feedback[2] & 1)


__all__ = ["LinkEvents", "NodeLink"]
