"""Bounded shutdown steps: a close that never returns must not stall the node's shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lpstream.node.shutdown import bounded


async def test_a_step_that_never_finishes_is_abandoned_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    never = asyncio.get_running_loop().create_future()
    with caplog.at_level(logging.WARNING, logger="lpstream.node.shutdown"):
        finished = await bounded(never, "a stuck peer connection", seconds=0.05)
    assert finished is False
    assert never.cancelled()
    assert "a stuck peer connection" in caplog.text


async def test_a_cancelled_task_counts_as_finished() -> None:
    task = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    task.cancel()
    assert await bounded(task, "a render task", seconds=1.0) is True


async def test_cancelling_the_caller_still_propagates() -> None:
    started = asyncio.Event()

    async def closer() -> None:
        started.set()
        await bounded(asyncio.sleep(60), "a slow close", seconds=30.0)

    outer = asyncio.create_task(closer())
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
