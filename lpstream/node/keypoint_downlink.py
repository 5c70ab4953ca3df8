"""Downlink `keypoints`: the browser decodes the others' motion and renders them itself
(web_client/render, on the GPU); the node forwards the packets as they came, with no video.

Browser-created data channels (docs/protocol.md §12):
- `motion-down` (unordered, no retransmits): node → browser `[id][motion packet]` for the
  source `id` on one of the viewer's tiles; browser → node `[id][Feedback]` for that source.
- `portraits` (reliable): the source portraits, with the protocol's content-addressed transfer
  (§6) framed `[id][packet]` both ways: a portrait the page already holds is not sent again.
Control messages node → browser: `source` (what the page's renderer needs of a portrait:
`{"type":"source","id","sha256","data"}`) and `face` (`{"type":"face","id","track"}`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import cv2
import numpy as np

from lpstream.backend import Controls
from lpstream.errors import LpstreamError
from lpstream.node.endpoints import EndpointContext
from lpstream.node.framing import frame_packet, unframe_packet
from lpstream.node.meters import RateMeter
from lpstream.node.portrait_image import Portrait
from lpstream.node.shutdown import bounded
from lpstream.protocol import PortraitRejectedError, PortraitSender, ProtocolError
from lpstream.rate_limit import LogLimiter, TokenBucket

log = logging.getLogger("lpstream.node")
quiet = LogLimiter(log)
"""Per-message complaints: one line per peer per interval."""

MOTION_CHANNEL = "motion-down"
PORTRAIT_CHANNEL = "portraits"
CHANNEL_OPEN_TIMEOUT_S = 20.0
JPEG_QUALITY = 92
"""The page gets the portrait as this node renders it (scaled), as JPEG."""


class BrowserTile:
    """One tile of a keypoint page: a sink of the router that forwards to the page."""

    def __init__(self, downlink: KeypointDownlink, slot: int, source_id: str) -> None:
        self.downlink = downlink
        self.slot = slot
        self.source_id = source_id
        self.key = f"{downlink.participant_id}#{slot}"
        self.packets = RateMeter()

    def on_motion(self, packet: bytes, stamp: float | None) -> bytes | None:
        if self.downlink.send_motion(self.source_id, packet):
            self.packets.add()
        return None  # the page's feedback comes back on `motion-down`

    def on_portrait(self, portrait: Portrait) -> None:
        self.downlink.send_portrait(self.source_id, portrait)

    def on_face(self, face_id: int) -> None:
        self.downlink.send_control({"type": "face", "id": self.source_id, "track": face_id})


class KeypointDownlink:
    kind = "keypoints"

    def __init__(self, context: EndpointContext) -> None:
        self._context = context
        self.participant_id = context.participant_id
        self.slots: list[str | None] = [None] * context.config.avatar_slots
        self.tiles: dict[int, BrowserTile] = {}
        self.controls = Controls()
        """The viewer's sliders: applied by the page's own renderer, kept for the overlay."""
        self.motion: Any = None
        self.portraits: Any = None
        self._channels_open = asyncio.Event()
        self._portraits_out: dict[str, PortraitSender] = {}
        self._source_data: dict[str, dict[str, object]] = {}
        """Portrait sha256 → what the page's renderer needs of it (computed once)."""
        self._images: dict[str, tuple[bytes, str]] = {}
        """Portrait sha256 → the JPEG the page gets, and that JPEG's sha256."""
        self._feedback_budget = TokenBucket(rate=4 * context.config.fps, burst=200)
        self._tasks: set[asyncio.Task[None]] = set()
        self.bytes_out = RateMeter()
        self.refused = 0

    def prepare(self, pc: Any) -> None:
        pass  # nothing to send on RTP: the page renders

    def audio_delay(self, slot: int) -> float:
        """The page lines motion up with the voice itself (web_client/playout_sync.js)."""
        return 0.0

    def adopt_channel(self, channel: Any) -> bool:
        if channel.label == MOTION_CHANNEL and self.motion is None:
            self.motion = channel
            channel.on("message", self._on_feedback)
        elif channel.label == PORTRAIT_CHANNEL and self.portraits is None:
            self.portraits = channel
            channel.on("message", self._on_portrait_reply)
        else:
            return False
        self._check_open()
        for adopted in (self.motion, self.portraits):
            if adopted is not None and adopted.readyState != "open":
                adopted.on("open", self._check_open)
        return True

    def _check_open(self) -> None:
        if all(c is not None and c.readyState == "open" for c in (self.motion, self.portraits)):
            self._channels_open.set()

    def handle_control(self, message: dict[str, Any]) -> bool:
        return False

    def set_controls(self, controls: Controls) -> None:
        self.controls = controls

    # -- tiles -------------------------------------------------------------------------------

    def show(self, slots: list[str | None]) -> None:
        router = self._context.router
        for slot, source_id in enumerate(slots[: len(self.slots)]):
            if self.slots[slot] == source_id:
                continue
            self.slots[slot] = source_id
            old = self.tiles.pop(slot, None)
            if old is not None and (route := router.get(old.source_id)) is not None:
                route.disconnect(old.key)
            route = router.get(source_id) if source_id else None
            if source_id is not None and route is not None:
                tile = self.tiles[slot] = BrowserTile(self, slot, source_id)
                route.connect(tile)

    def tile_of(self, source_id: str) -> BrowserTile | None:
        return next((t for t in self.tiles.values() if t.source_id == source_id), None)

    def tile_figures(self, source_id: str) -> dict[str, float] | None:
        tile = self.tile_of(source_id)
        if tile is None:
            return None
        return {"relayed_fps": tile.packets.rate()}

    # -- to the page -------------------------------------------------------------------------

    def send_control(self, message: dict[str, Any]) -> None:
        self._context.send_control(message)

    def send_motion(self, source_id: str, packet: bytes) -> bool:
        if self.motion is None or self.motion.readyState != "open":
            return False
        framed = frame_packet(source_id, packet)
        self.motion.send(framed)
        self.bytes_out.add(len(framed))
        return True

    def send_portrait(self, source_id: str, portrait: Portrait) -> None:
        self._spawn(self._send_portrait(source_id, portrait))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_portrait(self, source_id: str, portrait: Portrait) -> None:
        stages = self._context.stages
        loop = asyncio.get_running_loop()
        try:
            data = self._source_data.get(portrait.sha256)
            if data is None:
                data = await loop.run_in_executor(
                    stages.executor, self._context.backend.browser_source, portrait.rgb
                )
                self._source_data[portrait.sha256] = data
            # The image as rendered here (scaled to the node's portrait size), so it matches
            # the renderer data; an upload may be larger.
            image = self._images.get(portrait.sha256)
            if image is None:
                encoded = await loop.run_in_executor(stages.executor, _jpeg, portrait.rgb)
                image = self._images[portrait.sha256] = (
                    encoded,
                    hashlib.sha256(encoded).hexdigest(),
                )
            encoded, image_sha256 = image
            await asyncio.wait_for(self._channels_open.wait(), CHANNEL_OPEN_TIMEOUT_S)
        except (LpstreamError, TimeoutError) as exc:
            log.warning("portrait of %s not sent to %s: %s", source_id, self.participant_id, exc)
            return
        if self.tile_of(source_id) is None:
            return  # the tile changed meanwhile
        self.send_control(
            {
                "type": "source",
                "id": source_id,
                "sha256": image_sha256,
                "data": data,
            }
        )
        sender = self._portraits_out[source_id] = PortraitSender(encoded)
        self._send_portrait_packet(source_id, sender.offer())

    def _send_portrait_packet(self, source_id: str, packet: bytes) -> None:
        # The channel may have closed while the portrait was prepared: the page left, or a
        # hostile page closed it (that raised InvalidStateError in a task nobody awaited).
        if self.portraits is not None and self.portraits.readyState == "open":
            self.portraits.send(frame_packet(source_id, packet))

    # -- from the page -----------------------------------------------------------------------

    def _on_feedback(self, data: str | bytes) -> None:
        if not isinstance(data, bytes) or not self._feedback_budget.allow():
            self.refused += 1
            return
        try:
            source_id, packet = unframe_packet(data)
        except ValueError:
            self.refused += 1
            return
        tile = self.tile_of(source_id)
        route = self._context.router.get(source_id) if tile is not None else None
        if tile is None or route is None:
            return  # feedback for a tile that changed meanwhile
        route.feedback(tile.key, packet)

    def _on_portrait_reply(self, data: str | bytes) -> None:
        try:
            if not isinstance(data, bytes):
                raise ValueError("portrait replies are binary")
            source_id, packet = unframe_packet(data)
            sender = self._portraits_out.get(source_id)
            if sender is None:
                return
            for chunk in sender.on_reply(packet):
                self._send_portrait_packet(source_id, chunk)
        except PortraitRejectedError as exc:
            quiet.warning(
                self.participant_id, "%s refused a portrait: %s", self.participant_id, exc
            )
        except (ValueError, ProtocolError) as exc:
            self.refused += 1
            quiet.info(
                self.participant_id, "bad portrait reply from %s: %.200s", self.participant_id, exc
            )

    async def close(self) -> None:
        router = self._context.router
        for tile in self.tiles.values():
            route = router.get(tile.source_id)
            if route is not None:
                route.disconnect(tile.key)
        self.tiles.clear()
        for task in list(self._tasks):
            task.cancel()
            await bounded(task, "sending a portrait")


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise LpstreamError("could not encode the portrait as JPEG")
    return data.tobytes()
