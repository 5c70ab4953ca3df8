"""Backend stages wrapped for the event loop: CPU work in an executor, newest input wins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from lpstream.backend import AvatarRenderer, MotionSender

T = TypeVar("T")

BackendFactory = Callable[[], tuple[MotionSender, AvatarRenderer]]


@dataclass
class StageTiming:
    """How long the last call of a stage took, for /metrics and the overlay."""

    last_ms: float = 0.0
    total_ms: float = 0.0
    calls: int = 0
    errors: int = 0

    def add(self, milliseconds: float) -> None:
        self.last_ms = milliseconds
        self.total_ms += milliseconds
        self.calls += 1


async def run_timed(
    executor: Executor, timing: StageTiming, function: Callable[..., T], *args: object
) -> T:
    """Run `function(*args)` off the loop and record its wall time."""
    loop = asyncio.get_running_loop()

    def timed() -> tuple[T, float]:
        start = time.perf_counter()
        result = function(*args)
        return result, (time.perf_counter() - start) * 1000.0

    result, elapsed = await loop.run_in_executor(executor, timed)
    timing.add(elapsed)
    return result


def close_stage(stage: object) -> None:
    """Release a backend stage now, if it can be released.

    Never leave it to the garbage collector: MediaPipe graphs closed from a finaliser can
    deadlock the thread that happens to collect them.
    """
    close = getattr(stage, "close", None)
    if callable(close):
        close()


def create_sender(factory: BackendFactory) -> MotionSender:
    sender, renderer = factory()
    close_stage(renderer)
    return sender


def create_renderer(factory: BackendFactory) -> AvatarRenderer:
    sender, renderer = factory()
    close_stage(sender)
    return renderer


def frame_to_rgb(frame: object) -> np.ndarray:
    """av.VideoFrame → RGB uint8 array (runs in the executor: it converts a whole frame)."""
    return frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
