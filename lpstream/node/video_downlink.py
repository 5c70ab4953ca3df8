"""Downlink `video`: this node renders each other participant and sends one video track per
tile — the path LivePortrait needs (GPU rendering on the node).

Each tile is a receiver stage connected to the router as a sink of the source it shows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lpstream.backend import Controls
from lpstream.node.avatar_track import AvatarTrack
from lpstream.node.endpoints import EndpointContext
from lpstream.node.media_clock import join_tile_stream
from lpstream.node.receiver_stage import ReceiverStage
from lpstream.node.shutdown import bounded

log = logging.getLogger("lpstream.node")


class VideoDownlink:
    kind = "video"

    def __init__(self, context: EndpointContext) -> None:
        self._context = context
        slots = context.config.avatar_slots
        self.tracks = [AvatarTrack(context.config.fps) for _ in range(slots)]
        self.slots: list[str | None] = [None] * slots
        self.tiles: dict[int, ReceiverStage] = {}
        self.controls = Controls()
        self._pending: set[asyncio.Task[None]] = set()
        self.closed = False

    def prepare(self, pc: Any) -> None:
        # One avatar per video transceiver the browser offered, and no more: a track beyond
        # them would add a transceiver the offer lacks, and aiortc could not answer.
        offered = sum(1 for t in pc.getTransceivers() if t.kind == "video")
        for track in self.tracks[offered:]:
            track.stop()
        self.tracks, self.slots = self.tracks[:offered], self.slots[:offered]
        for slot, track in enumerate(self.tracks):
            sender = pc.addTrack(track)
            if self._context.config.lip_sync:
                join_tile_stream(sender, slot)  # with its voice: the browser syncs them

    def audio_delay(self, slot: int) -> float:
        """Hold tile `slot`'s voice as long as its frames are late (`media_clock.py`)."""
        if not self._context.config.lip_sync or slot >= len(self.tracks):
            return 0.0
        return self.tracks[slot].lag.seconds

    def adopt_channel(self, channel: Any) -> bool:
        return False

    def handle_control(self, message: dict[str, Any]) -> bool:
        return False

    def set_controls(self, controls: Controls) -> None:
        self.controls = controls
        for tile in self.tiles.values():
            tile.controls_changed()

    def show(self, slots: list[str | None]) -> None:
        for slot, source_id in enumerate(slots[: len(self.slots)]):
            if self.slots[slot] == source_id:
                continue
            self.slots[slot] = source_id
            self._spawn(self._replace_tile(slot, source_id))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _key(self, slot: int) -> str:
        return f"{self._context.participant_id}#{slot}"

    async def _replace_tile(self, slot: int, source_id: str | None) -> None:
        old = self.tiles.pop(slot, None)
        if old is not None:
            route = self._context.router.get(old.source_id)
            if route is not None:
                route.disconnect(old.key)
            await old.close()
        if source_id is None or self.closed:
            return
        renderer = await self._context.stages.new_renderer()  # loads in the executor
        route = self._context.router.get(source_id)
        if self.closed or self.slots[slot] != source_id or slot in self.tiles or route is None:
            # The room changed while the renderer loaded; the newer change owns the tile.
            await asyncio.get_running_loop().run_in_executor(
                self._context.stages.executor, self._context.stages.release, renderer
            )
            return
        tile = ReceiverStage(
            self._key(slot),
            source_id,
            self.tracks[slot],
            renderer,
            lambda: self.controls,
            self._context.stages.executor,
            self._context.report_render_error,
            self._context.stages.release,
            lambda: self._context.voice_level(source_id),
            lambda: self._context.voice_arrival(source_id),
        )
        self.tiles[slot] = tile
        route.connect(tile)

    def tile_of(self, source_id: str) -> ReceiverStage | None:
        return next((t for t in self.tiles.values() if t.source_id == source_id), None)

    def tile_figures(self, source_id: str) -> dict[str, float] | None:
        tile = self.tile_of(source_id)
        if tile is None:
            return None
        return {
            "fps": tile.fps.rate(),
            "node_latency_ms": tile.latency.median(),
            "render_ms": tile.render_timing.last_ms,
            "render_errors": tile.render_timing.errors,
            "decode_errors": tile.decode_errors,
            "voice_mouth": float(tile.voice_mouth),
        }

    async def close(self) -> None:
        self.closed = True
        for task in list(self._pending):
            await bounded(task, "a tile change")
        for slot in list(self.tiles):
            tile = self.tiles.pop(slot)
            route = self._context.router.get(tile.source_id)
            if route is not None:
                route.disconnect(tile.key)
            await bounded(tile.close(), "closing a tile", 10)
        for track in self.tracks:
            track.stop()
