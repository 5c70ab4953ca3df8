"""Bounded waits for tearing things down: a peer that never answers must not stall a shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
"""How long one close step (a peer connection, a task, a server) may take before we move on."""


async def bounded(step: Awaitable[object], what: str, seconds: float = CLOSE_TIMEOUT_S) -> bool:
    """Await `step` for at most `seconds`; on time-out log which step hung and return False.

    Cancellation of a task being awaited is the expected way for it to end, so it counts as done.
    """
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        logger.warning("shutdown: %s did not finish within %.0f s; going on", what, seconds)
        return False
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    return True
