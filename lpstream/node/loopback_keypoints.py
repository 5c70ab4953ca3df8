"""An aiortc peer that behaves like the web client in keypoint mode, for tests and benches.

It sends motion it extracted itself (`motion-up`), receives the others' motion (`motion-down`)
and decodes it with the project's codec, answers with feedback, and receives the portraits
(`portraits`): what web_client/ does in the browser, minus the rendering.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect

from lpstream.backend import SenderOutput
from lpstream.node.framing import frame_packet, unframe_packet
from lpstream.node.loopback import add_audio_slots, next_signaling_message, upload_portrait
from lpstream.node.shutdown import bounded
from lpstream.protocol import (
    LANDMARKS,
    DecodeStatus,
    FeedbackPacer,
    MotionDecoder,
    MotionEncoder,
    PortraitReceiver,
    ProtocolError,
)
from lpstream.protocol.portrait import PortraitReply
from lpstream.protocol.wire import Kind

FPS = 25.0


@dataclass
class SourceSeen:
    """What the page knows of one other participant."""

    decoder: MotionDecoder = field(default_factory=MotionDecoder)
    pacer: FeedbackPacer | None = None
    statuses: list[DecodeStatus] = field(default_factory=list)
    portrait_sha256: str | None = None
    source_data: dict[str, Any] | None = None
    source_sha256: str | None = None
    """The image the source data belongs to (the portrait as the node renders it)."""
    face: int | None = None
    packet_bytes: int = 0


@dataclass
class KeypointBrowser:
    """Joins through real signaling with `uplink`/`downlink` kinds; plays `motions`."""

    url: str
    room: str
    name: str
    uplink: str = "keypoints"
    downlink: str = "keypoints"
    node: str | None = None
    """Preferred media node id (as the page served by that node asks for)."""
    resume: str | None = None
    """The secret of this name's last join: set, the join is a reconnect (as a reloaded tab)."""
    ws: ClientConnection | None = None
    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    channels: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, SourceSeen] = field(default_factory=dict)
    encoder: MotionEncoder = field(default_factory=lambda: MotionEncoder(profile=LANDMARKS))
    portraits: PortraitReceiver = field(default_factory=PortraitReceiver)
    feedback_in: int = 0
    portrait_errors: list[str] = field(default_factory=list)
    """Portrait packets from the node that raised (unframing or PortraitReceiver)."""
    audio: dict[int, MediaStreamTrack] = field(default_factory=dict)
    """The voice of each tile, by slot (audio transceiver i is tile i)."""
    audio_slots: int = 3
    _task: asyncio.Task[None] | None = None

    async def join(
        self, motions: Sequence[SenderOutput] = (), microphone: MediaStreamTrack | None = None
    ) -> None:
        self.ws = await connect(self.url)
        join = {
            "type": "join",
            "room": self.room,
            "name": self.name,
            "node": self.node,
            "resume": self.resume,
        }
        await self.ws.send(json.dumps(join))
        joined = await self._next("joined")
        self.resume = joined["resume"]
        control = self._channel("control")
        control.on("message", self._on_control)
        if self.uplink == "keypoints":
            up = self._channel("motion-up", ordered=False, maxRetransmits=0)
            up.on("message", self._on_feedback)
        if self.downlink == "keypoints":
            down = self._channel("motion-down", ordered=False, maxRetransmits=0)
            down.on("message", self._on_motion)
            self._channel("portraits").on("message", self._on_portrait)
        audio = add_audio_slots(self.pc, self.audio_slots, microphone)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            slot = next(i for i, t in enumerate(audio) if t.receiver.track is track)
            self.audio[slot] = track

        opened = asyncio.Event()
        control.on("open", opened.set)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {
            "kind": "offer",
            "sdp": self.pc.localDescription.sdp,
            "uplink": self.uplink,
            "downlink": self.downlink,
        }
        await self.ws.send(json.dumps({"type": "signal", "to": joined["node"], "data": offer}))
        answer = await self._next("signal")
        if answer["data"].get("kind") == "refused":
            raise ConnectionRefusedError(answer["data"]["message"])
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["data"]["sdp"], "answer"))
        await asyncio.wait_for(opened.wait(), 15)
        if motions:
            self._task = asyncio.create_task(self._send_motion(motions))

    def _channel(self, label: str, **options: Any) -> Any:
        channel = self.channels[label] = self.pc.createDataChannel(label, **options)
        return channel

    async def _next(self, kind: str) -> dict[str, Any]:
        assert self.ws is not None
        return await next_signaling_message(self.ws, kind)

    # -- uplink ------------------------------------------------------------------------------

    async def _send_motion(self, motions: Sequence[SenderOutput]) -> None:
        """The motions back and forth at 25 fps, as a camera would give them."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        face = None
        order = [*motions, *reversed(motions)]
        for index in range(1_000_000):
            output = order[index % len(order)]
            if output.face_id is not None and output.face_id != face:
                face = output.face_id
                self.send_control({"type": "face", "track": face})
            channel = self.channels["motion-up"]
            if channel.readyState == "open":
                channel.send(self.encoder.encode(output.motion, round(index * 1000 / FPS)))
            await asyncio.sleep(max(0.0, start + (index + 1) / FPS - loop.time()))

    def _on_feedback(self, message: bytes) -> None:
        self.feedback_in += 1
        self.encoder.on_feedback(message)

    # -- downlink ----------------------------------------------------------------------------

    def _on_motion(self, message: bytes) -> None:
        source_id, packet = unframe_packet(message)
        seen = self.seen.setdefault(source_id, SourceSeen())
        seen.packet_bytes += len(message)
        if seen.pacer is None:
            seen.pacer = FeedbackPacer(seen.decoder)
        seen.decoder.decode(packet)
        seen.statuses.append(seen.decoder.last_status)
        feedback = seen.pacer.poll()
        if feedback is not None:
            self.channels["motion-down"].send(frame_packet(source_id, feedback))

    def _on_portrait(self, message: bytes) -> None:
        # An exception escaping an aiortc data-channel handler closes the whole DTLS transport
        # (the page's connection); a browser only loses that message. So a bad packet is
        # counted here, not raised.
        try:
            source_id, packet = unframe_packet(message)
            replies = self.portraits.on_packet(packet)
        except (ProtocolError, ValueError) as exc:
            self.portrait_errors.append(f"{type(exc).__name__}: {exc}")
            return
        for reply in replies:
            self.channels["portraits"].send(frame_packet(source_id, reply))
            answer = PortraitReply.decode(reply)
            if answer.kind is Kind.PORTRAIT_ACCEPTED:
                seen = self.seen.setdefault(source_id, SourceSeen())
                seen.portrait_sha256 = answer.sha256.hex()

    def _on_control(self, message: str) -> None:
        parsed = json.loads(message)
        self.messages.append(parsed)
        if parsed["type"] == "source":
            seen = self.seen.setdefault(parsed["id"], SourceSeen())
            seen.source_data, seen.source_sha256 = parsed["data"], parsed["sha256"]
        elif parsed["type"] == "face":
            self.seen.setdefault(parsed["id"], SourceSeen()).face = parsed["track"]

    def send_control(self, message: dict[str, Any]) -> None:
        channel = self.channels["control"]
        if channel.readyState == "open":
            channel.send(json.dumps(message))

    def upload(self, encoded: bytes) -> None:
        upload_portrait(self.channels["control"], encoded)

    async def wait_for(self, predicate: Any, limit_s: float = 20, what: str = "") -> None:
        deadline = asyncio.get_running_loop().time() + limit_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await bounded(self._task, "a keypoint browser's sender")
        await bounded(self.pc.close(), "closing a keypoint browser's peer connection")
        if self.ws is not None:
            await bounded(self.ws.close(), "closing a keypoint browser's websocket")
