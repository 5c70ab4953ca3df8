"""The media node: registers with signaling, hosts browser sessions, routes motion in rooms.

Motion always travels as encoded packets: in-process from a local sender to the local
decoder of that source, and over a data-channel-only link to every other node in the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lpstream.backend import AvatarRenderer, MotionSender
from lpstream.motion import Motion
from lpstream.node.config import NodeConfig
from lpstream.node.link import LinkEvents, NodeLink
from lpstream.node.portrait import Portrait, decode_portrait, scale_portrait
from lpstream.node.session import BrowserSession, peer_connection
from lpstream.node.shutdown import CLOSE_TIMEOUT_S, bounded
from lpstream.node.sources import AvatarView, SourceStream
from lpstream.node.stages import BackendFactory, close_stage, create_renderer, create_sender
from lpstream.protocol import Stats

log = logging.getLogger("lpstream.node")

LOCAL = "local"
"""Destination name of the in-process path (viewers on this node)."""


@dataclass
class Member:
    """A participant as the signaling server announced it."""

    id: str
    name: str
    node: str
    room: str


def default_backend_factory(config: NodeConfig) -> BackendFactory:
    def create() -> tuple[MotionSender, AvatarRenderer]:
        from lpstream.backends import create_backend

        weights = Path(config.weights) if config.weights else None
        return create_backend(config.backend, weights=weights, device=config.device)

    return create


class Node:
    def __init__(self, config: NodeConfig, backend_factory: BackendFactory | None = None) -> None:
        self.config = config
        self.member_id = f"node:{config.node_id}"
        self.backend_factory = backend_factory or default_backend_factory(config)
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="lpstream-stage")
        self.backend_name = ""
        self.sessions: dict[str, BrowserSession] = {}
        self.sources: dict[str, SourceStream] = {}
        self.members: dict[str, Member] = {}
        self.rooms: dict[str, list[str]] = {}
        """Room → member ids in join order."""
        self.room_nodes: dict[str, list[str]] = {}
        self.links: dict[str, NodeLink] = {}
        self.views: dict[tuple[str, str], AvatarView] = {}
        """(viewer id, source id) → view."""
        self._opening: set[tuple[str, str]] = set()
        self._stages: list[Any] = []
        """Every backend stage created, so `stop` can release them all."""
        self.errors = 0
        self._probe: AvatarRenderer | None = None
        self._spare_sender: MotionSender | None = None
        self._probe_lock = asyncio.Lock()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.registered = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the backend once (fail early on bad weights), then register with signaling."""
        loop = asyncio.get_running_loop()
        sender, renderer = await loop.run_in_executor(self.executor, self.backend_factory)
        self.backend_name = getattr(renderer, "name", "") or getattr(sender, "name", "")
        self._probe = renderer
        self._spare_sender = sender
        self._task = asyncio.create_task(self._signaling_loop(), name="node-signaling")
        await asyncio.wait_for(self.registered.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for view in list(self.views.values()):
            await bounded(view.close(), "closing an avatar view", 2 * CLOSE_TIMEOUT_S)
        for session in list(self.sessions.values()):
            await bounded(session.close(), "closing a session", 4 * CLOSE_TIMEOUT_S)
        for link in list(self.links.values()):
            await bounded(link.close(), "closing a node link", 2 * CLOSE_TIMEOUT_S)
        for task in list(self._tasks):
            task.cancel()
        # Every stage ever created, closed again (closing twice is harmless) in case a path
        # forgot one: a stage left to the garbage collector can deadlock MediaPipe.
        self.executor.shutdown(wait=True, cancel_futures=True)
        for stage in (self._probe, self._spare_sender, *self._stages):
            close_stage(stage)
        self._stages.clear()
        self._probe = self._spare_sender = None

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- signaling ---------------------------------------------------------------------------

    async def _signaling_loop(self) -> None:
        delay = 0.5
        while True:
            try:
                async with connect(self.config.signaling_url, max_size=256 * 1024) as ws:
                    self._ws = ws
                    await ws.send(
                        json.dumps(
                            {
                                "type": "register-node",
                                "node": self.config.node_id,
                                "token": self.config.node_token,
                            }
                        )
                    )
                    async for raw in ws:
                        await self._on_signaling(json.loads(raw))
                        delay = 0.5
            except (OSError, ConnectionClosed, InvalidStatus) as exc:
                log.warning("signaling connection lost (%s); retrying in %.1fs", exc, delay)
            self._ws = None
            self.registered.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _send_signal(self, to: str, data: dict[str, Any]) -> None:
        if self._ws is not None:
            await self._ws.send(json.dumps({"type": "signal", "to": to, "data": data}))

    async def _on_signaling(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        try:
            if kind == "registered":
                self.registered.set()
            elif kind == "room":
                await self._on_room(message)
            elif kind == "signal":
                await self._on_signal(str(message.get("from")), message.get("data") or {})
            elif kind == "error":
                log.warning("signaling error: %s", message)
        except Exception:  # one broken peer must not stop the node
            self.errors += 1
            log.exception("handling signaling message %s failed", kind)

    async def _on_signal(self, sender: str, data: dict[str, Any]) -> None:
        kind = data.get("kind")
        if kind == "offer":
            await self._accept_browser(sender, str(data["sdp"]))
        elif kind == "link-offer":
            await self._accept_link(sender, str(data["sdp"]))
        elif kind == "link-answer" and sender in self.links:
            await self.links[sender].accept_answer(str(data["sdp"]))

    async def _accept_browser(self, participant_id: str, sdp: str) -> None:
        member = self.members.get(participant_id)
        if member is None or member.node != self.member_id:
            raise ValueError(f"offer from unknown participant {participant_id}")
        old = self.sessions.pop(participant_id, None)
        if old is not None:  # the browser reconnected with a fresh RTCPeerConnection
            await self._close_session(old)
        session = BrowserSession(self, participant_id, member.name, member.room)
        self.sessions[participant_id] = session
        answer = await session.accept_offer(sdp)
        await self._send_signal(participant_id, {"kind": "answer", "sdp": answer})

    # -- rooms -------------------------------------------------------------------------------

    async def _on_room(self, message: dict[str, Any]) -> None:
        room = str(message["room"])
        members = [
            Member(str(m["id"]), str(m["name"]), str(m["node"]), room) for m in message["members"]
        ]
        previous = set(self.rooms.get(room, []))
        current = [m.id for m in members]
        self.rooms[room] = current
        self.room_nodes[room] = [str(n) for n in message.get("nodes", [])]
        for member in members:
            self.members[member.id] = member
            if member.id not in self.sources:
                self.sources[member.id] = SourceStream(
                    member.id, member.name, self._feedback_sender(member)
                )
        for gone in previous - set(current):
            await self._forget_member(gone)
        if not current:
            self.rooms.pop(room, None)
            self.room_nodes.pop(room, None)
        await self._ensure_links(room)
        self.update_slots(room)

    async def _forget_member(self, participant_id: str) -> None:
        self.members.pop(participant_id, None)
        await self._close_views([k for k in self.views if participant_id in k])
        self.sources.pop(participant_id, None)
        session = self.sessions.pop(participant_id, None)
        if session is not None:
            await self._close_session(session)

    async def _close_session(self, session: BrowserSession) -> None:
        await self._close_views([k for k in self.views if k[0] == session.id])
        await session.close()

    async def _close_views(self, keys: list[tuple[str, str]]) -> None:
        # Take them all out first: closing awaits, and meanwhile a failed connection or a
        # room update may close (and remove) the same views.
        views = [view for view in (self.views.pop(key, None) for key in keys) if view]
        for view in views:
            await view.close()

    async def drop_session(self, participant_id: str, session: BrowserSession) -> None:
        """The browser's connection failed; its member entry stays until signaling says so."""
        if self.sessions.get(participant_id) is session:
            del self.sessions[participant_id]
            await self._close_session(session)

    def has_audience(self, session: BrowserSession) -> bool:
        others = [m for m in self.rooms.get(session.room, []) if m != session.id]
        return bool(others)

    def update_slots(self, room: str) -> None:
        """Give each local viewer one tile per other participant, keeping tiles stable."""
        for viewer_id in self.rooms.get(room, []):
            session = self.sessions.get(viewer_id)
            if session is None:
                continue
            others = [m for m in self.rooms[room] if m != viewer_id]
            slots = [s if s in others else None for s in session.slots]
            for other in others:
                if other not in slots and None in slots:
                    slots[slots.index(None)] = other
            session.slots = slots
            for key in [k for k in self.views if k[0] == viewer_id and k[1] not in slots]:
                self._spawn(self.views.pop(key).close())
            for slot, source_id in enumerate(slots):
                if source_id is not None and (viewer_id, source_id) not in self.views:
                    self._spawn(self._open_view(session, slot, source_id))
            session.send_control(
                {
                    "type": "slots",
                    "slots": [
                        {"slot": i, "id": s, "name": self.members[s].name}
                        for i, s in enumerate(slots)
                        if s is not None and s in self.members
                    ],
                }
            )

    async def _open_view(self, session: BrowserSession, slot: int, source_id: str) -> None:
        key = (session.id, source_id)
        if key in self._opening:
            return
        self._opening.add(key)  # the renderer loads in the executor; don't load it twice
        try:
            renderer = await self.new_renderer()
        finally:
            self._opening.discard(key)
        source = self.sources.get(source_id)
        if source is None or session.closed or session.slots[slot] != source_id:
            self.release_stage(renderer)  # the room changed while the renderer loaded
            return
        self.views[key] = AvatarView(
            source,
            session.tracks[slot],
            renderer,
            lambda: session.controls,
            self.executor,
            self._render_error,
            self.release_stage,
        )

    def view_of(self, session: BrowserSession, source_id: str) -> AvatarView | None:
        return self.views.get((session.id, source_id))

    def _render_error(self, source: SourceStream, exc: Exception) -> None:
        self.errors += 1
        message = str(exc) or type(exc).__name__
        if source.last_error == message:
            return  # a persistent failure is reported once, not at every retry
        source.last_error = message
        log.warning("rendering %s failed: %s", source.id, message)
        owner = self.sessions.get(source.id)
        if owner is not None:
            owner.send_control({"type": "error", "code": "render", "message": message})

    # -- backends ----------------------------------------------------------------------------

    async def new_sender(self) -> MotionSender:
        spare, self._spare_sender = self._spare_sender, None
        if spare is not None:
            return spare
        loop = asyncio.get_running_loop()
        sender = await loop.run_in_executor(self.executor, create_sender, self.backend_factory)
        self._stages.append(sender)
        return sender

    async def new_renderer(self) -> AvatarRenderer:
        loop = asyncio.get_running_loop()
        renderer = await loop.run_in_executor(self.executor, create_renderer, self.backend_factory)
        self._stages.append(renderer)
        return renderer

    def release_stage(self, stage: object) -> None:
        """Close a stage and forget it (runs in the executor, under the owner's lock)."""
        close_stage(stage)
        with contextlib.suppress(ValueError):
            self._stages.remove(stage)

    async def accept_portrait(self, encoded: bytes) -> Portrait:
        """Decode and check that the portrait has a face (raises ImageError / NoFaceError)."""
        loop = asyncio.get_running_loop()
        config = self.config
        portrait = await loop.run_in_executor(
            self.executor,
            decode_portrait,
            encoded,
            config.portrait_max_side,
            config.portrait_max_bytes,
        )
        async with self._probe_lock:
            assert self._probe is not None
            await loop.run_in_executor(self.executor, self._probe.set_source, portrait.rgb)
        return portrait

    def set_portrait(self, participant_id: str, portrait: Portrait) -> None:
        source = self.sources.get(participant_id)
        if source is not None:
            source.set_portrait(portrait)
        member = self.members.get(participant_id)
        if member is not None:
            for link in self._links_for(member.room):
                link.send_portrait(participant_id, portrait.encoded)

    # -- routing -----------------------------------------------------------------------------

    def route_motion(
        self, session: BrowserSession, motion: Motion | None, timestamp_ms: int, stamp: float
    ) -> None:
        """Encode once per destination and deliver: the local decoder, then each linked node.

        Even in-process the motion goes through the codec: those bytes are what is measured.
        """
        packet = session.encoder(LOCAL).encode(motion, timestamp_ms)
        session.motion_sent.add(len(packet))
        source = self.sources.get(session.id)
        track = motion.extra.get("track_id") if motion is not None else None
        new_face = track is not None and int(track) != session.track_id
        if new_face:  # diagnostics in `extra` never cross the wire: say it out of band
            session.track_id = int(track)
        if source is not None:
            if session.track_id is not None:
                source.set_track(session.track_id)  # before the new face's first motion
            source.receive(packet, stamp)
        for link in self._links_for(session.room):
            if new_face:
                link.send_face(session.id, session.track_id)
            link.send_motion(
                session.id, session.encoder(link.remote_node).encode(motion, timestamp_ms)
            )

    def _feedback_sender(self, member: Member) -> Any:
        def send(feedback: bytes) -> None:
            if member.node == self.member_id:
                session = self.sessions.get(member.id)
                if session is not None:
                    session.encoder(LOCAL).on_feedback(feedback)
            elif member.node in self.links:
                self.links[member.node].send_feedback(member.id, feedback)

        return send

    def refresh_camera_rate(self, session: BrowserSession) -> None:
        kbps = session.camera_kbps()
        source = self.sources.get(session.id)
        if source is not None:
            source.camera_kbps = kbps
        stats = Stats(
            fps=min(655.0, session.sender_fps.rate()),
            bytes_sent=int(session.motion_sent.total),
            frames_sent=session.motion_sent.count,
            extract_ms=session.extract_timing.last_ms or None,
        )
        for link in self._links_for(session.room):
            link.send_stats(session.id, stats, kbps)
            if session.track_id is not None:  # again, in case the change was missed
                link.send_face(session.id, session.track_id)

    # -- node-to-node links ------------------------------------------------------------------

    def _links_for(self, room: str) -> list[NodeLink]:
        return [self.links[n] for n in self.room_nodes.get(room, []) if n in self.links]

    async def _ensure_links(self, room: str) -> None:
        for other in self.room_nodes.get(room, []):
            if other == self.member_id or other in self.links:
                continue
            if self.member_id < other:  # the smaller id offers; the other waits for it
                link = self._new_link(other)
                sdp = await link.offer()
                await self._send_signal(other, {"kind": "link-offer", "sdp": sdp})
        for link in self._links_for(room):
            self._spawn(self._share_room(link, room))

    def _new_link(self, other: str) -> NodeLink:
        events = LinkEvents(
            motion=self._link_motion,
            feedback=self._link_feedback,
            portrait=self._link_portrait,
            stats=self._link_stats,
            face=self._link_face,
        )
        link = NodeLink(peer_connection(self.config.ice_servers), other, events)
        self.links[other] = link
        return link

    async def _accept_link(self, other: str, sdp: str) -> None:
        old = self.links.pop(other, None)
        if old is not None:
            await old.close()
        link = self._new_link(other)
        answer = await link.answer(sdp)
        await self._send_signal(other, {"kind": "link-answer", "sdp": answer})
        for room, nodes in self.room_nodes.items():  # what we owe the new link
            if other in nodes:
                self._spawn(self._share_room(link, room))

    async def _share_room(self, link: NodeLink, room: str) -> None:
        """Once the link is open, send it this node's portraits for `room`."""
        try:
            await asyncio.wait_for(link.opened.wait(), 20)
        except TimeoutError:
            log.warning("link to %s did not open within 20 s", link.remote_node)
            return
        link.send_hello(self.backend_name)
        for member_id in self.rooms.get(room, []):
            session = self.sessions.get(member_id)
            source = self.sources.get(member_id)
            if session is not None and source is not None and source.portrait is not None:
                link.send_portrait(member_id, source.portrait.encoded)

    def _remote_source(self, link: NodeLink, participant_id: str) -> SourceStream | None:
        """A source this link may speak for: only participants hosted by that node."""
        member = self.members.get(participant_id)
        if member is None or member.node != link.remote_node:
            return None
        return self.sources.get(participant_id)

    def _link_motion(self, link: NodeLink, participant_id: str, packet: bytes) -> None:
        source = self._remote_source(link, participant_id)
        if source is not None:
            source.receive(packet, None)

    def _link_feedback(self, link: NodeLink, participant_id: str, feedback: bytes) -> None:
        member = self.members.get(participant_id)
        session = self.sessions.get(participant_id)
        if member is not None and member.node == self.member_id and session is not None:
            session.encoder(link.remote_node).on_feedback(feedback)

    def _link_stats(
        self, link: NodeLink, participant_id: str, stats: Stats | None, camera_kbps: float | None
    ) -> None:
        source = self._remote_source(link, participant_id)
        if source is None:
            return
        source.backend = link.remote_backend
        if camera_kbps is not None:
            source.camera_kbps = camera_kbps
        if stats is not None:
            source.remote_stats = stats

    def _link_face(self, link: NodeLink, participant_id: str, track_id: int) -> None:
        source = self._remote_source(link, participant_id)
        if source is not None:
            source.set_track(track_id)

    def _link_portrait(self, link: NodeLink, participant_id: str, rgb: Any, sha256: str) -> None:
        if self._remote_source(link, participant_id) is not None:
            self._spawn(self._install_remote_portrait(participant_id, rgb, sha256))

    async def _install_remote_portrait(self, participant_id: str, rgb: Any, sha256: str) -> None:
        loop = asyncio.get_running_loop()
        scaled = await loop.run_in_executor(
            self.executor, scale_portrait, rgb, self.config.portrait_max_side
        )
        source = self.sources.get(participant_id)
        if source is not None:
            source.set_portrait(Portrait(b"", sha256, scaled))
