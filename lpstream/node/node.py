"""The media node, composed: signaling client, room directory, router, node links, stage
pool and browser sessions, wired together by callbacks. Nothing here moves a packet itself.

See docs/architecture.md for the data flow and which thread runs what.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lpstream.backend import BackendOptions
from lpstream.backend_registry import choose_backend
from lpstream.node import ice_consent, sctp_acks, sctp_text, wire_meter
from lpstream.node.audio_forwarding import AudioForwarding
from lpstream.node.browser_session import BrowserSession, SessionEvents, SessionInfo
from lpstream.node.config import NodeConfig
from lpstream.node.endpoint_kinds import (
    DOWNLINKS,
    FALLBACK_DOWNLINK,
    FALLBACK_UPLINK,
    UPLINKS,
    create_downlink,
    create_uplink,
    offered,
)
from lpstream.node.endpoints import EndpointContext
from lpstream.node.node_links import NodeLinks
from lpstream.node.peer_connection import peer_connection
from lpstream.node.rooms import RoomDirectory, RoomUpdate, assign_slots
from lpstream.node.router import Router
from lpstream.node.shutdown import CLOSE_TIMEOUT_S, bounded
from lpstream.node.signaling_client import SignalingClient, SignalingEvents
from lpstream.node.stage_pool import StagePool
from lpstream.protocol import CodecProfile, MotionEncoder

log = logging.getLogger("lpstream.node")

REGISTER_TIMEOUT_S = 10.0


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.member_id = f"node:{config.node_id}"
        options = BackendOptions(Path(config.weights) if config.weights else None, config.device)
        self.backend = choose_backend(config.backend, options).backend
        self.backend_name = self.backend.name
        sctp_acks.install()  # acknowledge every second packet, as browsers do
        sctp_text.install()  # a peer's non-UTF-8 text is dropped, not fatal to its connection
        wire_meter.install()  # bytes per connection at the UDP sockets, for /metrics
        ice_consent.install()  # a busy loop's late consent answers still count (RFC 7675)
        self.uplinks = offered(UPLINKS, self.backend)
        """Kinds of uplink a page may ask for, the preferred first."""
        self.downlinks = offered(DOWNLINKS, self.backend)
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="lpstream-stage")
        self.stages = StagePool(self.backend, options, self.executor)
        self.router = Router()
        self.audio = AudioForwarding()
        self.directory = RoomDirectory()
        self.sessions: dict[str, BrowserSession] = {}
        self._encoders: dict[str, MotionEncoder] = {}
        """Participant → its motion encoder, kept across its connection restarts."""
        self.render_errors = 0
        self._last_render_error: dict[str, str] = {}
        self.signaling = SignalingClient(
            config.signaling_url,
            config.node_id,
            config.node_token,
            SignalingEvents(room=self._on_room, signal=self._on_signal),
        )
        self.links = NodeLinks(
            self.member_id,
            config.ice_servers,
            self.directory,
            self.router,
            self.signaling.send_signal,
            lambda rgb, sha: self.stages.scaled_portrait(rgb, sha, config.portrait_max_side),
            self.backend_name,
            self.audio,
        )
        self._session_events = SessionEvents(
            ready=lambda session: self._update_slots(session.room),
            portrait=self._on_portrait,
            failed=self._drop_session,
        )

    @property
    def registered(self) -> asyncio.Event:
        return self.signaling.registered

    @property
    def errors(self) -> int:
        return self.signaling.errors + self.render_errors

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the backend's first stages (fail early on bad weights), then register."""
        await self.stages.start()
        self.signaling.start()
        await asyncio.wait_for(self.registered.wait(), REGISTER_TIMEOUT_S)

    async def stop(self) -> None:
        await self.signaling.stop()
        for session in list(self.sessions.values()):
            await bounded(session.close(), "closing a session", 4 * CLOSE_TIMEOUT_S)
        self.sessions.clear()
        await bounded(self.links.close(), "closing the node links", 4 * CLOSE_TIMEOUT_S)
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.stages.close()

    # -- signaling ---------------------------------------------------------------------------

    async def _on_room(self, message: dict[str, Any]) -> None:
        change = self.directory.update(RoomUpdate.parse(message))
        for member in change.joined:
            self.router.add_source(member.id, member.name)
        for gone in change.left:
            session = self.sessions.pop(gone, None)
            if session is not None:
                await session.close()
        self._update_slots(change.room)  # tiles of the ones who left close now
        await self.links.update()
        for gone in change.left:
            self.router.remove_source(gone)
            self.audio.forget(gone)
            self._encoders.pop(gone, None)
            self._last_render_error.pop(gone, None)

    async def _on_signal(self, sender: str, data: dict[str, Any]) -> None:
        kind = data.get("kind")
        sdp = data.get("sdp")
        if not isinstance(sdp, str):
            raise ValueError(f"signal {kind!r} from {sender} has no SDP")
        if kind == "offer":
            await self._accept_browser(sender, sdp, data)
        elif kind == "link-offer":
            await self.links.accept_offer(sender, sdp)
        elif kind == "link-answer":
            await self.links.accept_answer(sender, sdp)

    # -- browser sessions --------------------------------------------------------------------

    async def _accept_browser(self, participant_id: str, sdp: str, data: dict[str, Any]) -> None:
        member = self.directory.members.get(participant_id)
        if member is None or member.node != self.member_id:
            raise ValueError(f"offer from unknown participant {participant_id}")
        old = self.sessions.pop(participant_id, None)
        restart = old is not None or data.get("restart") is True
        if old is not None:  # the page replaces a stalled connection (docs: "Recovery")
            await old.close()
        route = self.router.add_source(member.id, member.name)
        context = EndpointContext(
            participant_id,
            self.config,
            self.backend,
            self.stages,
            self.router,
            route,
            self._report_render_error,
            lambda message: self._send_control(participant_id, message),
            lambda profile: self._motion_encoder(participant_id, profile),
            self.audio.voice_level,
            self.audio.voice_arrival,
        )
        try:
            uplink = create_uplink(str(data.get("uplink", FALLBACK_UPLINK)), context)
            downlink = create_downlink(str(data.get("downlink", FALLBACK_DOWNLINK)), context)
        except ValueError as exc:  # the page asked for a kind this node cannot serve
            await self.signaling.send_signal(
                participant_id, {"kind": "refused", "message": str(exc)}
            )
            return
        info = SessionInfo(
            participant_id,
            member.name,
            member.room,
            self.config.node_id,
            self.backend_name,
            self.config.portrait_max_bytes,
        )
        pc = peer_connection(self.config.ice_servers)
        session = BrowserSession(
            info,
            pc,
            uplink,
            downlink,
            self.router,
            self._session_events,
            self.audio.seat(participant_id),
        )
        if old is not None:
            session.slots = list(old.slots)  # the page's tiles stay where they were
        self.sessions[participant_id] = session
        log.info(
            "%s %s its media connection",
            member.name,
            "restarted" if restart else "opened",
            extra={
                "event": "media-restart" if restart else "media-connect",
                "room": member.room,
                "participant": participant_id,
            },
        )
        try:
            answer = await session.accept_offer(sdp)
        except Exception as exc:  # an offer aiortc cannot answer: say so, keep the others
            log.warning("cannot answer the offer of %s: %s", participant_id, exc)
            await self._drop_session(session)
            await self.signaling.send_signal(
                participant_id, {"kind": "refused", "message": f"cannot answer this offer ({exc})"}
            )
            return
        await self.signaling.send_signal(participant_id, {"kind": "answer", "sdp": answer})

    def _motion_encoder(self, participant_id: str, profile: CodecProfile) -> MotionEncoder:
        encoder = self._encoders.get(participant_id)
        if encoder is None or encoder.profile != profile:
            encoder = self._encoders[participant_id] = MotionEncoder(profile=profile)
        return encoder

    async def _drop_session(self, session: BrowserSession) -> None:
        """The browser's connection failed; its member entry stays until signaling says so."""
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        await session.close()

    def _update_slots(self, room: str) -> None:
        """Give each local viewer one tile per other participant, keeping tiles stable."""
        names = {m.id: m.name for m in self.directory.members.values()}
        for viewer_id in self.directory.rooms.get(room, []):
            session = self.sessions.get(viewer_id)
            if session is None or session.closed:
                continue
            previous = session.slots or [None] * self.config.avatar_slots
            session.show(assign_slots(previous, self.directory.others(viewer_id)), names)

    async def _on_portrait(self, session: BrowserSession, encoded: bytes) -> str:
        config = self.config
        portrait = await self.stages.check_portrait(
            encoded, config.portrait_max_side, config.portrait_max_bytes
        )
        route = self.router.get(session.id)
        if route is not None:
            self._last_render_error.pop(session.id, None)
            route.set_portrait(portrait)
        return portrait.sha256

    def _send_control(self, participant_id: str, message: dict[str, Any]) -> None:
        session = self.sessions.get(participant_id)
        if session is not None:
            session.send_control(message)

    def _report_render_error(self, source_id: str, exc: Exception) -> None:
        self.render_errors += 1
        message = str(exc) or type(exc).__name__
        if self._last_render_error.get(source_id) == message:
            return  # a persistent failure is reported once, not at every retry
        self._last_render_error[source_id] = message
        log.warning("rendering %s failed: %s", source_id, message)
        owner = self.sessions.get(source_id)
        if owner is not None:
            owner.error("render", message)
