"""Sender stage: camera frames (newest wins) → the backend's sender → `SenderOutput`.

At most `fps` extractions per second whatever the camera sends, none while nobody watches,
each in the executor so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lpstream.backend import MotionSender, SenderOutput
from lpstream.node.meters import RateMeter
from lpstream.node.stage_pool import StagePool
from lpstream.node.stage_timing import StageTiming, run_timed

log = logging.getLogger("lpstream.node")

OutputHandler = Callable[[SenderOutput, int, float], None]
"""(output, sender timestamp in ms since the stage started, camera arrival monotonic s)."""


def frame_to_rgb(frame: Any) -> np.ndarray:
    """av.VideoFrame → RGB uint8 array (in the executor: it converts a whole frame)."""
    return frame.to_ndarray(format="rgb24")


class SenderStage:
    def __init__(
        self,
        stages: StagePool,
        fps: float,
        on_output: OutputHandler,
        wanted: Callable[[], bool],
    ) -> None:
        self._stages = stages
        self._period = 1.0 / fps
        self._on_output = on_output
        self._wanted = wanted
        """Whether anyone receives the motion: no audience, no extraction."""
        self.sender: MotionSender | None = None
        self._sender_lock = threading.Lock()
        """close() must not release the sender mid-extraction."""
        self.timing = StageTiming()
        self.fps = RateMeter()
        self.started = time.monotonic()
        self._latest: tuple[Any, float] | None = None
        self._new_frame = asyncio.Event()
        self.closed = False

    def offer(self, frame: Any, stamp: float) -> None:
        """A camera frame that arrived at `stamp`; replaces any frame not yet taken."""
        self._latest = (frame, stamp)
        self._new_frame.set()

    async def run(self) -> None:
        next_at = 0.0
        while not self.closed:
            await self._new_frame.wait()
            self._new_frame.clear()
            wait = next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            assert self._latest is not None
            frame, stamp = self._latest
            next_at = max(time.monotonic(), next_at + self._period)
            if not self._wanted():
                continue
            timestamp_ms = int((stamp - self.started) * 1000)
            try:
                if self.sender is None:
                    self.sender = await self._stages.new_sender()
                output = await run_timed(
                    self._stages.executor, self.timing, self._extract, frame, timestamp_ms
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                self.timing.errors += 1
                log.exception("motion extraction failed")
                await asyncio.sleep(0.2)
                continue
            self.fps.add()
            self._on_output(output, timestamp_ms, stamp)

    def _extract(self, frame: Any, timestamp_ms: int) -> SenderOutput:
        rgb = frame_to_rgb(frame)
        with self._sender_lock:
            if self.sender is None:
                raise RuntimeError("sender stage closed")
            return self.sender.extract(rgb, timestamp_ms)

    def _release(self) -> None:
        with self._sender_lock:
            if self.sender is not None:
                self._stages.release(self.sender)
            self.sender = None

    async def close(self) -> None:
        """Stop extracting; release the sender after a running extraction ends."""
        self.closed = True
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._stages.executor, self._release)
        except RuntimeError:  # the node is stopping and its executor is gone
            self._release()
