"""Uplink `camera`: the browser sends its camera as a video track; motion is extracted here.

camera track → newest frame → sender stage → motion encoder → the participant's route.
The path a LivePortrait node needs (its extractor is a neural network), and the fallback for
browsers that cannot find face landmarks themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lpstream.backend import SenderOutput
from lpstream.node.endpoints import EndpointContext
from lpstream.node.meters import RateMeter
from lpstream.node.sender_stage import SenderStage
from lpstream.node.shutdown import bounded

RTP_HEADER_BYTES = 12
"""Counted on top of each payload so camera bitrate compares with what a video call sends."""


class CameraUplink:
    kind = "camera"

    def __init__(self, context: EndpointContext) -> None:
        self.route = context.route
        # The codec profile suits the backend's kind of motion; it travels in keyframes,
        # so receivers need no configuration.
        self.encoder = context.motion_encoder(context.backend.codec_profile)
        self.route.attach_sender(self.encoder.on_feedback)
        self.stage = SenderStage(
            context.stages, context.config.fps, self._publish, lambda: self.route.has_audience
        )
        self.camera_bytes = RateMeter()
        self.camera_fps = RateMeter()
        self.motion_sent = RateMeter()
        self._tasks: list[asyncio.Task[None]] = []

    def adopt_track(self, track: MediaStreamTrack, receiver: Any) -> bool:
        if track.kind != "video" or self._tasks:
            return False
        self._count_rtp_bytes(receiver)
        self._tasks.append(asyncio.create_task(self._consume(track), name="camera"))
        self._tasks.append(asyncio.create_task(self.stage.run(), name="sender-stage"))
        return True

    def adopt_channel(self, channel: Any) -> bool:
        return False

    def handle_control(self, message: dict[str, Any]) -> bool:
        return False

    def _count_rtp_bytes(self, receiver: Any) -> None:
        """Measure the camera's real RTP bitrate: what sending video would cost."""
        handle = receiver._handle_rtp_packet  # aiortc has no bytesReceived in inbound stats

        async def counting(packet: Any, arrival_time_ms: int) -> None:
            self.camera_bytes.add(len(packet.payload) + RTP_HEADER_BYTES)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = counting

    async def _consume(self, track: MediaStreamTrack) -> None:
        """Drain the camera as fast as it comes; the stage takes the newest frame."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.camera_fps.add()
                self.stage.offer(frame, time.monotonic())

    def _publish(self, output: SenderOutput, timestamp_ms: int, stamp: float) -> None:
        if output.face_id is not None:  # before the new face's first motion
            self.route.set_face(output.face_id)
        packet = self.encoder.encode(output.motion, timestamp_ms)
        self.motion_sent.add(len(packet))
        figures = self.route.figures
        figures.camera_kbps = self.camera_kbps()
        figures.sender_fps = self.stage.fps.rate()
        figures.extract_ms = self.stage.timing.last_ms
        self.route.publish(packet, stamp)

    def camera_kbps(self) -> float:
        return self.camera_bytes.rate() * 8 / 1000

    def figures(self) -> dict[str, float]:
        return {
            "camera_kbps": self.camera_kbps(),
            "camera_fps": self.camera_fps.rate(),
            "motion_kbps": self.motion_sent.rate() * 8 / 1000,
            "sender_fps": self.stage.fps.rate(),
            "extract_ms": self.stage.timing.last_ms,
        }

    async def close(self) -> None:
        self.route.detach_sender(self.encoder.on_feedback)
        self.stage.closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await bounded(task, f"camera uplink task {task.get_name()}")
        await self.stage.close()
