"""Backend stages for the node: created and released off the event loop, all closed at stop.

One backend serves the whole node (chosen once at start). Each sending participant gets a
sender stage, each tile a renderer stage; one extra renderer (the *portrait checker*) tries
every uploaded portrait before anyone renders it, so a portrait without a face is refused
with a message instead of failing in every viewer's tile.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Executor

import numpy as np

from lpstream.backend import AvatarRenderer, Backend, BackendOptions, MotionSender
from lpstream.node.portrait_image import Portrait, decode_portrait, scale_portrait

Stage = MotionSender | AvatarRenderer


class StagePool:
    def __init__(self, backend: Backend, options: BackendOptions, executor: Executor) -> None:
        self.backend = backend
        self.options = options
        self.executor = executor
        self._stages: list[Stage] = []
        """Every stage handed out and not yet released, so `close` releases them all."""
        self._lock = threading.Lock()
        self._checker: AvatarRenderer | None = None
        self._checker_lock = asyncio.Lock()
        self._ready_sender: MotionSender | None = None
        """Built at start (so a backend that cannot run fails then); the first sender asked
        for."""

    async def start(self) -> None:
        """Build one sender and the portrait checker now: bad weights fail at start-up."""
        loop = asyncio.get_running_loop()
        self._checker = await loop.run_in_executor(
            self.executor, self.backend.create_renderer, self.options
        )
        self._ready_sender = await loop.run_in_executor(
            self.executor, self.backend.create_sender, self.options
        )

    async def new_sender(self) -> MotionSender:
        sender, self._ready_sender = self._ready_sender, None
        if sender is None:
            loop = asyncio.get_running_loop()
            sender = await loop.run_in_executor(
                self.executor, self.backend.create_sender, self.options
            )
        self._keep(sender)
        return sender

    async def new_renderer(self) -> AvatarRenderer:
        loop = asyncio.get_running_loop()
        renderer = await loop.run_in_executor(
            self.executor, self.backend.create_renderer, self.options
        )
        self._keep(renderer)
        return renderer

    def _keep(self, stage: Stage) -> None:
        with self._lock:
            self._stages.append(stage)

    def release(self, stage: Stage) -> None:
        """Close a stage now (any thread; the caller makes sure nobody is using it).

        Never leave a stage to the garbage collector: MediaPipe graphs closed from a
        finaliser can deadlock the thread that happens to collect them.
        """
        with self._lock:
            with contextlib.suppress(ValueError):
                self._stages.remove(stage)
        stage.close()

    async def check_portrait(self, encoded: bytes, max_side: int, max_bytes: int) -> Portrait:
        """Decode an upload and make sure the backend finds a face in it (raises ImageError,
        NoFaceError)."""
        loop = asyncio.get_running_loop()
        portrait = await loop.run_in_executor(
            self.executor, decode_portrait, encoded, max_side, max_bytes
        )
        async with self._checker_lock:
            assert self._checker is not None, "StagePool.start() first"
            await loop.run_in_executor(self.executor, self._checker.set_source, portrait.rgb)
        return portrait

    async def scaled_portrait(self, rgb: np.ndarray, sha256: str, max_side: int) -> Portrait:
        """A portrait that arrived decoded (over a node link), scaled off the event loop."""
        loop = asyncio.get_running_loop()
        scaled = await loop.run_in_executor(self.executor, scale_portrait, rgb, max_side)
        return Portrait(b"", sha256, scaled)

    def close(self) -> None:
        """Release every stage (after the executor has finished its work)."""
        with self._lock:
            stages, self._stages = self._stages, []
        for stage in (self._checker, self._ready_sender, *stages):
            if stage is not None:
                stage.close()
        self._checker = self._ready_sender = None
