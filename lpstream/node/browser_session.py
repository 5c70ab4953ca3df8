"""One browser's connection to this node: its peer connection, its `control` channel, and
the uplink and downlink that carry its motion and the others'.

The session never sees the node: what it reports goes through `SessionEvents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from lpstream.errors import LpstreamError
from lpstream.node import browser_control
from lpstream.node.audio_forwarding import AudioSeat
from lpstream.node.browser_control import ControlMessageError, PortraitHeader
from lpstream.node.endpoints import Downlink, Uplink
from lpstream.node.router import Router
from lpstream.node.shutdown import bounded
from lpstream.rate_limit import LogLimiter, TokenBucket

log = logging.getLogger("lpstream.node")
quiet = LogLimiter(log)
"""Per-message complaints: one line per peer per interval."""

STATS_PERIOD_S = 2.0
CONTROL_MESSAGES_PER_S = 60.0
"""Sustained JSON control messages per session (a dragged slider sends one per input event)."""
CONTROL_BURST = 120


@dataclass
class SessionEvents:
    """What a browser session reports to its owner."""

    ready: Callable[[BrowserSession], None]
    """The control channel is open: the session can be told its tiles."""
    portrait: Callable[[BrowserSession, bytes], Awaitable[str]]
    """A complete upload: check it, make it the participant's portrait, return its sha256
    (raises LpstreamError with a message for the user)."""
    failed: Callable[[BrowserSession], Awaitable[None]]
    """The peer connection failed or closed."""


@dataclass(frozen=True)
class SessionInfo:
    participant_id: str
    name: str
    room: str
    node_id: str
    backend: str
    portrait_max_bytes: int


class BrowserSession:
    def __init__(
        self,
        info: SessionInfo,
        pc: RTCPeerConnection,
        uplink: Uplink,
        downlink: Downlink,
        router: Router,
        events: SessionEvents,
        audio: AudioSeat,
    ) -> None:
        self.info = info
        self.id = info.participant_id
        self.name = info.name
        self.room = info.room
        self.pc = pc
        self.uplink = uplink
        self.downlink = downlink
        self.audio = audio
        """The microphone up and one voice per tile down, whatever the uplink and downlink."""
        self._router = router
        self._events = events
        self.slots: list[str | None] = []
        self.control: Any = None
        self.errors = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._upload: bytearray | None = None
        self._upload_header: PortraitHeader | None = None
        self._portrait_budget = TokenBucket(rate=0.5, burst=6)
        """Each portrait costs a face detection per viewer: a client may not spin it."""
        self._control_budget = TokenBucket(CONTROL_MESSAGES_PER_S, CONTROL_BURST)
        self._flood_notices = TokenBucket(rate=0.2, burst=1)
        self.dropped_control = 0
        self._portrait_lock = asyncio.Lock()
        """Uploads are checked one at a time, in order: the last one sent is the one kept."""
        """JSON control messages dropped over the rate limit."""
        self.closed = False
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    # -- WebRTC ------------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self.downlink.prepare(self.pc)
        self.audio.prepare(self.pc, self.downlink.audio_delay)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._stats_loop())
        return self.audio.tune_answer(self.pc.localDescription.sdp)

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.create_task(coroutine))

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        audio = self.audio.adopt_track(track, receiver)
        if not (audio or self.uplink.adopt_track(track, receiver)):
            quiet.info(self.name, "%s: ignoring a %s track", self.name, track.kind)

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self._events.failed(self)

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label == "control":
            self._adopt_control(channel)
        elif not (self.uplink.adopt_channel(channel) or self.downlink.adopt_channel(channel)):
            quiet.info(self.name, "%s: ignoring data channel %.60r", self.name, channel.label)

    # -- control channel ---------------------------------------------------------------------

    def _adopt_control(self, channel: Any) -> None:
        self.control = channel
        channel.on("message", self._on_control)
        self.send_control(
            {
                "type": "hello",
                "id": self.id,
                "node": self.info.node_id,
                "backend": self.info.backend,
                "uplink": self.uplink.kind,
                "downlink": self.downlink.kind,
            }
        )
        self._events.ready(self)

    def send_control(self, message: dict[str, Any]) -> None:
        if self.control is None or self.control.readyState != "open":
            return
        try:
            self.control.send(browser_control.encode(message))
        except ValueError as exc:  # NaN/Infinity: a bug, never the browser's problem
            log.warning("not sending %s to %s: %s", message.get("type"), self.name, exc)

    def show(self, slots: list[str | None], names: dict[str, str]) -> None:
        """The tiles this viewer shows now: the downlink follows, the page is told."""
        self.slots = slots
        self.downlink.show(slots)
        self.audio.show(slots)
        self.send_control(
            {
                "type": "slots",
                "slots": [
                    {"slot": i, "id": s, "name": names[s]}
                    for i, s in enumerate(slots)
                    if s is not None and s in names
                ],
            }
        )

    def error(self, code: str, message: str) -> None:
        self.errors += 1
        self.send_control({"type": "error", "code": code, "message": message})

    def _on_control(self, data: str | bytes) -> None:
        try:
            if isinstance(data, bytes):
                self._portrait_chunk(data)
                return
            if not self._control_budget.allow():
                self.dropped_control += 1
                if self._flood_notices.allow():  # one error now and then, not one per message
                    raise ControlMessageError("too many control messages; some were dropped")
                return
            message = browser_control.parse_message(data)
            kind = message["type"]
            if kind == "controls":
                self.downlink.set_controls(browser_control.parse_controls(message))
            elif kind == "portrait":
                self._portrait_begin(message)
            elif kind == "portrait-end":
                upload, header = self._upload, self._upload_header
                self._upload = self._upload_header = None  # the next upload starts clean
                self._spawn(self._portrait_end(upload, header))
            elif kind == "ping":
                t = message.get("t")
                self.send_control({"type": "pong", "t": t if isinstance(t, int | float) else None})
            elif not (self.uplink.handle_control(message) or self.downlink.handle_control(message)):
                raise ControlMessageError(f"unknown control message {kind!r:.40}")
        except ControlMessageError as exc:
            self.error("control", str(exc))

    def _portrait_begin(self, message: dict[str, Any]) -> None:
        if not self._portrait_budget.allow():
            raise ControlMessageError(
                "too many portraits in a short time; try again in a few seconds"
            )
        self._upload_header = PortraitHeader.parse(message, self.info.portrait_max_bytes)
        self._upload = bytearray()

    def _portrait_chunk(self, chunk: bytes) -> None:
        if self._upload is None or self._upload_header is None:
            raise ControlMessageError("portrait data without a 'portrait' header")
        self._upload += chunk
        if len(self._upload) > self._upload_header.size:
            self._upload = self._upload_header = None
            raise ControlMessageError("portrait data longer than announced")

    async def _portrait_end(self, upload: bytearray | None, header: PortraitHeader | None) -> None:
        if upload is None or header is None or len(upload) != header.size:
            self.error("portrait", "portrait upload incomplete; try again")
            return
        if hashlib.sha256(upload).hexdigest() != header.sha256:
            self.error("portrait", "portrait upload corrupted (sha256 mismatch)")
            return
        async with self._portrait_lock:
            try:
                sha256 = await self._events.portrait(self, bytes(upload))
            except LpstreamError as exc:
                self.error("portrait", str(exc))
                return
            self.send_control({"type": "portrait-ok", "sha256": sha256})

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        tiles = []
        for slot, source_id in enumerate(self.slots):
            route = self._router.get(source_id) if source_id else None
            figures = self.downlink.tile_figures(source_id) if source_id else None
            if route is None or figures is None:
                continue
            tiles.append(
                {
                    "slot": slot,
                    "id": route.id,
                    "name": route.name,
                    "motion_kbps": route.motion_bytes.rate() * 8 / 1000,
                    "camera_kbps": route.figures.camera_kbps,
                    "backend": route.figures.backend or self.info.backend,
                    "face_hidden_s": round(route.face_hidden_for(), 1),
                    **figures,
                }
            )
        own = self._router.get(self.id)
        return {
            "type": "stats",
            "backend": self.info.backend,
            "self": {
                **self.uplink.figures(),
                **self.audio.figures(),
                "face_hidden_s": round(own.face_hidden_for(), 1) if own is not None else 0.0,
            },
            "tiles": tiles,
        }

    async def _stats_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(STATS_PERIOD_S)
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
        await bounded(self.downlink.close(), "closing a downlink", 15)
        await bounded(self.uplink.close(), "closing an uplink", 10)
        await bounded(self.audio.close(), "closing a session's audio")
        await bounded(self.pc.close(), "closing a browser peer connection")
