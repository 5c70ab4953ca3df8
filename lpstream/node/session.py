"""One browser's connection to this node: camera up, avatar tiles down, `control` channel.

The sender stage lives here: camera frames → (newest only) → motion extraction → motion
packets, handed to the node for routing. The browser's `control` channel carries the
source-portrait upload, the sliders and, back to the browser, the tile map and stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lpstream.backend import Controls, MotionSender
from lpstream.errors import LpstreamError
from lpstream.node.meters import RateMeter
from lpstream.node.shutdown import bounded
from lpstream.node.stages import StageTiming, frame_to_rgb, run_timed
from lpstream.node.tracks import AvatarTrack
from lpstream.protocol import MotionEncoder, profile_for_backend
from signaling.limits import TokenBucket

if TYPE_CHECKING:
    from lpstream.node.node import Node

log = logging.getLogger("lpstream.node")

RTP_HEADER_BYTES = 12
"""Counted on top of each payload so camera bitrate compares with what a video call sends."""


def codec_encoder(backend_name: str) -> MotionEncoder:
    try:
        return MotionEncoder(profile=profile_for_backend(backend_name))
    except ValueError:  # a backend without its own profile speaks LivePortrait's motion
        return MotionEncoder()


def peer_connection(ice_servers: list[str]) -> RTCPeerConnection:
    servers = [RTCIceServer(urls=url) for url in ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


def _number(value: object, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or not low <= float(value) <= high:
        raise ValueError(f"slider value {value!r} outside [{low}, {high}]")
    return float(value)


def parse_controls(message: dict[str, Any]) -> Controls:
    """Sliders from the browser; out-of-range values are refused, not clamped silently."""
    head = _number(message.get("head", 1.0), 0.0, 3.0)
    return Controls(
        eye_open=_number(message.get("eye"), 0.0, 1.0),
        lip_open=_number(message.get("lip"), 0.0, 1.0),
        head_motion=1.0 if head is None else head,
        stitching=bool(message.get("stitching", True)),
    )


class BrowserSession:
    def __init__(self, node: Node, participant_id: str, name: str, room: str) -> None:
        self.node = node
        self.id = participant_id
        self.name = name
        self.room = room
        config = node.config
        self.pc = peer_connection(config.ice_servers)
        self.tracks = [AvatarTrack(config.fps) for _ in range(config.avatar_slots)]
        self.slots: list[str | None] = [None] * config.avatar_slots
        self.controls = Controls()
        self.control: Any = None
        # The codec profile (quantisers, statistics) matches the backend's kind of motion;
        # it travels in keyframes, so receivers need no configuration.
        self.encoders: dict[str, MotionEncoder] = {}
        """One encoder per destination (this node, each linked node): each path has its
        own losses, so each gets its own acknowledged references and keyframes."""
        self.sender: MotionSender | None = None
        self.track_id: int | None = None
        """The sender's face-tracker id of the last motion (a new id = a different face)."""
        self._sender_lock = threading.Lock()
        self.started = time.monotonic()
        self.camera_bytes = RateMeter()
        self.camera_fps = RateMeter()
        self.sender_fps = RateMeter()
        self.motion_sent = RateMeter()
        self.extract_timing = StageTiming()
        self.errors = 0
        self._latest_frame: tuple[Any, float] | None = None
        self._new_frame = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._upload: bytearray | None = None
        self._upload_meta: dict[str, Any] = {}
        self._portrait_budget = TokenBucket(rate=0.5, burst=6)
        self.closed = False

        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    # -- WebRTC ------------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for track in self.tracks:  # one avatar per video transceiver the browser offered
            self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._stats_loop())
        return self.pc.localDescription.sdp

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.create_task(coroutine))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._count_rtp_bytes(receiver)
        self._spawn(self._consume_camera(track))
        self._spawn(self._sender_loop())

    def _count_rtp_bytes(self, receiver: Any) -> None:
        """Measure the camera's real RTP bitrate: what sending video would cost."""
        handle = receiver._handle_rtp_packet  # aiortc has no bytesReceived in inbound stats

        async def counting(packet: Any, arrival_time_ms: int) -> None:
            self.camera_bytes.add(len(packet.payload) + RTP_HEADER_BYTES)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = counting

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.node.drop_session(self.id, self)

    # -- sender stage ------------------------------------------------------------------------

    async def _consume_camera(self, track: MediaStreamTrack) -> None:
        """Drain the camera as fast as it comes, keeping only the newest frame."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.camera_fps.add()
                self._latest_frame = (frame, time.monotonic())
                self._new_frame.set()

    async def _sender_loop(self) -> None:
        period = 1.0 / self.node.config.fps
        next_at = 0.0
        while not self.closed:
            await self._new_frame.wait()
            self._new_frame.clear()
            wait = next_at - time.monotonic()
            if wait > 0:  # at most `fps` extractions per second whatever the camera sends
                await asyncio.sleep(wait)
            assert self._latest_frame is not None
            frame, stamp = self._latest_frame
            next_at = max(time.monotonic(), next_at + period)
            if not self.node.has_audience(self):
                continue  # nobody watches: spend no CPU on extraction
            try:
                if self.sender is None:
                    self.sender = await self.node.new_sender()
                motion = await run_timed(
                    self.node.executor, self.extract_timing, self._extract, frame, stamp
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                self.extract_timing.errors += 1
                log.exception("motion extraction failed for %s", self.id)
                await asyncio.sleep(0.2)
                continue
            self.sender_fps.add()
            self.node.route_motion(self, motion, int((stamp - self.started) * 1000), stamp)

    def encoder(self, destination: str) -> MotionEncoder:
        encoder = self.encoders.get(destination)
        if encoder is None:
            encoder = self.encoders[destination] = codec_encoder(self.node.backend_name)
        return encoder

    def _extract(self, frame: Any, stamp: float) -> Any:
        rgb = frame_to_rgb(frame)
        with self._sender_lock:  # close() must not release the sender mid-extraction
            if self.sender is None:
                raise RuntimeError("session closed")
            return self.sender.extract(rgb, int((stamp - self.started) * 1000))

    def _release_sender(self) -> None:
        with self._sender_lock:
            if self.sender is not None:
                self.node.release_stage(self.sender)
            self.sender = None

    # -- control channel ---------------------------------------------------------------------

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label != "control":
            return
        self.control = channel
        channel.on("message", self._on_control)
        self.send_control(
            {
                "type": "hello",
                "id": self.id,
                "node": self.node.config.node_id,
                "backend": self.node.backend_name,
            }
        )
        self.node.update_slots(self.room)

    def send_control(self, message: dict[str, Any]) -> None:
        if self.control is not None and self.control.readyState == "open":
            self.control.send(json.dumps(message, separators=(",", ":")))

    def _error(self, code: str, message: str) -> None:
        self.errors += 1
        self.send_control({"type": "error", "code": code, "message": message})

    def _on_control(self, data: str | bytes) -> None:
        try:
            if isinstance(data, bytes):
                self._portrait_chunk(data)
                return
            message = json.loads(data)
            if not isinstance(message, dict):
                raise ValueError("control messages are JSON objects")
            kind = message.get("type")
            if kind == "controls":
                self.controls = parse_controls(message)
            elif kind == "portrait":
                self._portrait_begin(message)
            elif kind == "portrait-end":
                self._spawn(self._portrait_end())
            elif kind == "ping":
                self.send_control({"type": "pong", "t": message.get("t")})
            else:
                raise ValueError(f"unknown control message {kind!r}")
        except (ValueError, TypeError, LpstreamError) as exc:
            self._error("control", str(exc))

    def _portrait_begin(self, message: dict[str, Any]) -> None:
        if not self._portrait_budget.allow():
            # Each portrait costs a face detection per viewer: don't let a client spin it.
            raise ValueError("too many portraits in a short time; try again in a few seconds")
        size = message.get("bytes")
        limit = self.node.config.portrait_max_bytes
        if not isinstance(size, int) or not 0 < size <= limit:
            raise ValueError(f"portrait size must be 1..{limit} bytes, got {size!r}")
        if not isinstance(message.get("sha256"), str):
            raise ValueError("portrait needs its sha256")
        self._upload, self._upload_meta = bytearray(), message

    def _portrait_chunk(self, chunk: bytes) -> None:
        if self._upload is None:
            raise ValueError("portrait data without a 'portrait' header")
        self._upload += chunk
        if len(self._upload) > self._upload_meta["bytes"]:
            self._upload = None
            raise ValueError("portrait data longer than announced")

    async def _portrait_end(self) -> None:
        upload, meta, self._upload = self._upload, self._upload_meta, None
        if upload is None or len(upload) != meta.get("bytes"):
            self._error("portrait", "portrait upload incomplete; try again")
            return
        if hashlib.sha256(upload).hexdigest() != meta.get("sha256"):
            self._error("portrait", "portrait upload corrupted (sha256 mismatch)")
            return
        try:
            portrait = await self.node.accept_portrait(bytes(upload))
        except LpstreamError as exc:
            self._error("portrait", str(exc))
            return
        self.node.set_portrait(self.id, portrait)
        self.send_control({"type": "portrait-ok", "sha256": portrait.sha256})

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        tiles = []
        for slot, source_id in enumerate(self.slots):
            view = self.node.view_of(self, source_id) if source_id else None
            if view is None:
                continue
            source = view.source
            tiles.append(
                {
                    "slot": slot,
                    "id": source.id,
                    "name": source.name,
                    "motion_kbps": source.motion_bytes.rate() * 8 / 1000,
                    "camera_kbps": source.camera_kbps,
                    "fps": view.fps.rate(),
                    "node_latency_ms": view.latency.median(),
                    "render_ms": view.render_timing.last_ms,
                    "backend": source.backend or self.node.backend_name,
                    "face_hidden_s": round(source.face_hidden_for(), 1),
                }
            )
        own = self.node.sources.get(self.id)
        return {
            "type": "stats",
            "backend": self.node.backend_name,
            "self": {
                "camera_kbps": self.camera_kbps(),
                "camera_fps": self.camera_fps.rate(),
                "motion_kbps": self.motion_sent.rate() * 8 / 1000,
                "sender_fps": self.sender_fps.rate(),
                "extract_ms": self.extract_timing.last_ms,
                "face_hidden_s": round(own.face_hidden_for(), 1) if own is not None else 0.0,
            },
            "tiles": tiles,
        }

    def camera_kbps(self) -> float:
        return self.camera_bytes.rate() * 8 / 1000

    async def _stats_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(1.0)
            self.node.refresh_camera_rate(self)
            self.send_control(self.stats())

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await bounded(task, f"session task {task.get_name()}")
        for track in self.tracks:
            track.stop()
        await bounded(self.pc.close(), "closing a browser peer connection")
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.node.executor, self._release_sender)
        except RuntimeError:  # the node is stopping and its executor is gone
            self._release_sender()
