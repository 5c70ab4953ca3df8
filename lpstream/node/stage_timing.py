"""CPU-heavy work off the event loop, timed: extraction, rendering, image decoding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


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
    executor: Executor, timing: StageTiming | None, function: Callable[..., T], *args: object
) -> T:
    """Run `function(*args)` in `executor` and record its wall time in `timing`."""
    loop = asyncio.get_running_loop()

    def timed() -> tuple[T, float]:
        start = time.perf_counter()
        result = function(*args)
        return result, (time.perf_counter() - start) * 1000.0

    result, elapsed = await loop.run_in_executor(executor, timed)
    if timing is not None:
        timing.add(elapsed)
    return result
