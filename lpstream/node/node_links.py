"""Links to the other nodes of this node's rooms, and what travels on them.

For every room shared with another node there is one `NodeLink` to it (data channels only):
the smaller member id offers, the other answers. On an open link, each participant hosted
here whose room the other node serves is a sink of the router (`LinkSink`) and a relay of
its sound (`AudioSource.relays`), and each participant hosted there is a source here, of
motion in the router and of sound in `AudioForwarding`, fed by the link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from lpstream.ice import IceServer
from lpstream.node.audio_forwarding import AudioForwarding, AudioFrame
from lpstream.node.link import LinkEvents, NodeLink
from lpstream.node.peer_connection import peer_connection
from lpstream.node.portrait_image import Portrait
from lpstream.node.rooms import RoomDirectory
from lpstream.node.router import Router
from lpstream.node.shutdown import CLOSE_TIMEOUT_S, bounded
from lpstream.protocol import Stats

log = logging.getLogger("lpstream.node")

LINK_OPEN_TIMEOUT_S = 20.0
FIRST_RETRY_S = 0.5
"""After a link failed, the offering side offers again after this, doubling per failure."""
LAST_RETRY_S = 10.0
STATS_PERIOD_S = 2.0
"""Sender figures (protocol Stats, camera bitrate) of each carried participant, this often."""

SendSignal = Callable[[str, dict[str, Any]], Awaitable[None]]
ScalePortrait = Callable[[np.ndarray, str], Awaitable[Portrait]]


class LinkSink:
    """A participant of this node, carried to another node: a sink of the router."""

    def __init__(self, link: NodeLink, source_id: str) -> None:
        self.link = link
        self.source_id = source_id
        self.key = link_key(link.remote_node)

    def on_motion(self, packet: bytes, stamp: float | None) -> bytes | None:
        self.link.send_motion(self.source_id, packet)
        return None  # the far node's merged feedback comes back over the link

    def on_portrait(self, portrait: Portrait) -> None:
        if portrait.encoded:
            self.link.send_portrait(self.source_id, portrait.encoded)

    def on_face(self, face_id: int) -> None:
        self.link.send_face(self.source_id, face_id)

    def on_audio(self, frame: AudioFrame) -> None:
        self.link.send_audio(self.source_id, frame)


def link_key(remote_node: str) -> str:
    return f"link:{remote_node}"


class NodeLinks:
    def __init__(
        self,
        own_id: str,
        ice_servers: list[IceServer],
        directory: RoomDirectory,
        router: Router,
        send_signal: SendSignal,
        scale_portrait: ScalePortrait,
        backend_name: str,
        audio: AudioForwarding | None = None,
    ) -> None:
        self.own_id = own_id
        self._audio = audio if audio is not None else AudioForwarding()
        self._ice_servers = ice_servers
        self._directory = directory
        self._router = router
        self._send_signal = send_signal
        self._scale_portrait = scale_portrait
        self._backend_name = backend_name
        self.links: dict[str, NodeLink] = {}
        self._sinks: dict[tuple[str, str], LinkSink] = {}
        """(remote node, local participant) → sink."""
        self._feeders: dict[tuple[str, str], Callable[[bytes], None]] = {}
        """(remote node, remote participant) → what sends that source's feedback back."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats_task: asyncio.Task[None] | None = None
        self.refused = 0
        """Link offers refused (from a participant, or a node of no shared room)."""
        self.failures = 0
        """Links that failed or did not open in time (each is rebuilt)."""
        self._retry_s: dict[str, float] = {}
        """Remote node → the back-off before its next offer, while its link keeps failing."""

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- building links ----------------------------------------------------------------------

    def _shared_nodes(self) -> set[str]:
        nodes: set[str] = set()
        for room in self._directory.rooms:
            nodes.update(self._directory.nodes_of(room))
        nodes.discard(self.own_id)
        return nodes

    async def update(self) -> None:
        """After a room change: offer links that are missing, drop those no room needs,
        and connect what each open link carries."""
        if self._stats_task is None:
            self._stats_task = asyncio.create_task(self._stats_loop(), name="link-stats")
        wanted = self._shared_nodes()
        for other in sorted(wanted - set(self.links)):
            if self.own_id < other:  # the smaller id offers; the other waits for it
                link = self._new_link(other)
                sdp = await link.offer()
                await self._send_signal(other, {"kind": "link-offer", "sdp": sdp})
        for other in sorted(set(self.links) - wanted):
            await self._drop(other)
        self.rewire()

    def _new_link(self, other: str) -> NodeLink:
        events = LinkEvents(
            motion=self._on_motion,
            feedback=self._on_feedback,
            portrait=self._on_portrait,
            stats=self._on_stats,
            face=self._on_face,
            failed=self._on_failed,
            audio=self._on_audio,
        )
        link = NodeLink(peer_connection(self._ice_servers), other, events)
        self.links[other] = link
        self._spawn(self._when_open(link))
        return link

    async def accept_offer(self, other: str, sdp: str) -> None:
        if other not in self._shared_nodes():
            # Signaling relays a participant's messages to its node too: only a node this
            # one shares a room with may open a link (and cost a peer connection).
            log.warning("refusing a link offer from %.60s: not a node of a shared room", other)
            self.refused += 1
            return
        old = self.links.pop(other, None)
        if old is not None:
            self._unwire(other)
            await old.close()
        link = self._new_link(other)
        answer = await link.answer(sdp)
        await self._send_signal(other, {"kind": "link-answer", "sdp": answer})

    async def accept_answer(self, other: str, sdp: str) -> None:
        link = self.links.get(other)
        if link is not None:
            await link.accept_answer(sdp)

    async def _when_open(self, link: NodeLink) -> None:
        try:
            await asyncio.wait_for(link.opened.wait(), LINK_OPEN_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "link to %s did not open within %.0f s", link.remote_node, LINK_OPEN_TIMEOUT_S
            )
            self._on_failed(link)
            return
        self._retry_s.pop(link.remote_node, None)
        link.send_hello(self._backend_name)
        self.rewire()

    def _on_failed(self, link: NodeLink) -> None:
        if self.links.get(link.remote_node) is not link:
            return  # already replaced or dropped
        self.failures += 1
        log.warning("link to %s failed; rebuilding it", link.remote_node)
        self._spawn(self._rebuild(link.remote_node))

    async def _rebuild(self, other: str) -> None:
        """Drop the failed link; the offering side offers a new one after a back-off (the
        answering side waits for it: two offers at once would cross)."""
        await self._drop(other)
        if self.own_id < other:
            delay = self._retry_s.get(other, FIRST_RETRY_S)
            self._retry_s[other] = min(2 * delay, LAST_RETRY_S)
            await asyncio.sleep(delay)
            await self.update()

    async def _drop(self, other: str) -> None:
        link = self.links.pop(other, None)
        self._unwire(other)
        if link is not None:
            await bounded(link.close(), f"closing the link to {other}", 2 * CLOSE_TIMEOUT_S)

    # -- what each link carries --------------------------------------------------------------

    def rewire(self) -> None:
        """Connect each open link to the streams it should carry, and only those."""
        wanted_sinks: set[tuple[str, str]] = set()
        wanted_feeders: set[tuple[str, str]] = set()
        for other, link in self.links.items():
            if not link.is_open:
                continue
            for room in self._directory.rooms_with_node(other):
                wanted_sinks.update(
                    (other, m) for m in self._directory.hosted_by(room, self.own_id)
                )
                wanted_feeders.update((other, m) for m in self._directory.hosted_by(room, other))
        for key in set(self._sinks) - wanted_sinks:
            self._disconnect_sink(key)
        for other, participant in sorted(wanted_sinks - set(self._sinks)):
            route = self._router.get(participant)
            if route is not None:
                sink = self._sinks[(other, participant)] = LinkSink(self.links[other], participant)
                route.connect(sink)
                self._audio.source(participant).relays.add(sink.on_audio)
        for key in set(self._feeders) - wanted_feeders:
            route = self._router.get(key[1])
            feeder = self._feeders.pop(key)
            if route is not None:
                route.detach_sender(feeder)
        for other, participant in sorted(wanted_feeders - set(self._feeders)):
            route = self._router.get(participant)
            if route is not None:
                link = self.links[other]
                feeder = self._feeders[(other, participant)] = _feedback_sender(link, participant)
                route.attach_sender(feeder)

    def _disconnect_sink(self, key: tuple[str, str]) -> None:
        sink = self._sinks.pop(key)
        route = self._router.get(key[1])
        if route is not None:
            route.disconnect(sink.key)
        source = self._audio.sources.get(key[1])
        if source is not None:
            source.relays.discard(sink.on_audio)

    def _unwire(self, other: str) -> None:
        for key in [k for k in self._sinks if k[0] == other]:
            self._disconnect_sink(key)
        for key in [k for k in self._feeders if k[0] == other]:
            feeder = self._feeders.pop(key)
            route = self._router.get(key[1])
            if route is not None:
                route.detach_sender(feeder)

    def _remote_route(self, link: NodeLink, participant_id: str) -> Any:
        """The source a link may speak for: only participants hosted by that node."""
        member = self._directory.members.get(participant_id)
        if member is None or member.node != link.remote_node:
            return None
        return self._router.get(participant_id)

    def _on_motion(self, link: NodeLink, participant_id: str, packet: bytes) -> None:
        route = self._remote_route(link, participant_id)
        if route is not None:
            route.publish(packet, None)

    def _on_audio(self, link: NodeLink, participant_id: str, frame: AudioFrame) -> None:
        member = self._directory.members.get(participant_id)
        if member is not None and member.node == link.remote_node:
            self._audio.source(participant_id).publish(
                frame.payload, frame.timestamp, frame.sequence, frame.level_dbov
            )

    def _on_feedback(self, link: NodeLink, participant_id: str, packet: bytes) -> None:
        if (link.remote_node, participant_id) in self._sinks:
            route = self._router.get(participant_id)
            if route is not None:
                route.feedback(link_key(link.remote_node), packet)

    def _on_stats(
        self, link: NodeLink, participant_id: str, stats: Stats | None, camera_kbps: float | None
    ) -> None:
        route = self._remote_route(link, participant_id)
        if route is None:
            return
        route.figures.backend = link.remote_backend
        if camera_kbps is not None:
            route.figures.camera_kbps = camera_kbps
        if stats is not None:
            route.figures.remote_stats = stats

    def _on_face(self, link: NodeLink, participant_id: str, face_id: int) -> None:
        route = self._remote_route(link, participant_id)
        if route is not None:
            route.set_face(face_id)

    def _on_portrait(self, link: NodeLink, participant_id: str, rgb: Any, sha256: str) -> None:
        if self._remote_route(link, participant_id) is not None:
            self._spawn(self._install_portrait(link, participant_id, rgb, sha256))

    async def _install_portrait(
        self, link: NodeLink, participant_id: str, rgb: Any, sha256: str
    ) -> None:
        portrait = await self._scale_portrait(rgb, sha256)
        route = self._remote_route(link, participant_id)
        if route is not None:
            route.set_portrait(portrait)

    async def _stats_loop(self) -> None:
        """Once a second, each carried participant's sender figures to the far node."""
        while True:
            await asyncio.sleep(STATS_PERIOD_S)
            for (_, participant), sink in list(self._sinks.items()):
                route = self._router.get(participant)
                if route is None:
                    continue
                figures = route.figures
                stats = Stats(
                    fps=min(655.0, figures.sender_fps),
                    bytes_sent=int(route.motion_bytes.total),
                    frames_sent=route.packets,
                    extract_ms=figures.extract_ms or None,
                )
                sink.link.send_stats(participant, stats, figures.camera_kbps)

    async def close(self) -> None:
        if self._stats_task is not None:
            self._stats_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for other in list(self.links):
            await self._drop(other)


def _feedback_sender(link: NodeLink, participant_id: str) -> Callable[[bytes], None]:
    def send(packet: bytes) -> None:
        link.send_feedback(participant_id, packet)

    return send
