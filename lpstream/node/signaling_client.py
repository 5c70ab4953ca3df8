"""The node's connection to the signaling server: register, hear about rooms and signals,
reconnect with back-off when the connection drops."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lpstream.node.shutdown import bounded

log = logging.getLogger("lpstream.node")

MAX_SIGNALING_MESSAGE_BYTES = 256 * 1024
FIRST_RETRY_S = 0.5
LAST_RETRY_S = 10.0
STOP_ATTEMPTS = 5


@dataclass
class SignalingEvents:
    """What the signaling connection reports to its owner."""

    room: Callable[[dict[str, Any]], Awaitable[None]]
    """A room announcement (members and nodes)."""
    signal: Callable[[str, dict[str, Any]], Awaitable[None]]
    """(sender id, data): an SDP offer/answer relayed from a browser or a node."""


class SignalingClient:
    def __init__(self, url: str, node_id: str, token: str | None, events: SignalingEvents) -> None:
        self.url = url
        self.node_id = node_id
        self.token = token
        self.events = events
        self.registered = asyncio.Event()
        self.errors = 0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="node-signaling")

    async def stop(self) -> None:
        """Stop for good. Cancelling alone is not enough: a cancellation that lands while a
        library call (a websocket close, a wait_for) finishes can be swallowed, so the loop is
        told to end, the socket is closed, and the task is cancelled until it is done."""
        self._stopping = True
        task = self._task
        if task is None:
            return
        if self._ws is not None:
            await bounded(self._ws.close(), "closing the signaling websocket")
        for _ in range(STOP_ATTEMPTS):
            if task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if not task.done():
            log.warning("shutdown: the signaling client did not stop")

    async def send_signal(self, to: str, data: dict[str, Any]) -> None:
        if self._ws is not None:
            await self._ws.send(json.dumps({"type": "signal", "to": to, "data": data}))

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        while not self._stopping:
            try:
                async with connect(self.url, max_size=MAX_SIGNALING_MESSAGE_BYTES) as ws:
                    self._ws = ws
                    await ws.send(
                        json.dumps(
                            {"type": "register-node", "node": self.node_id, "token": self.token}
                        )
                    )
                    async for raw in ws:
                        await self._dispatch(raw)
                        delay = FIRST_RETRY_S
            except (OSError, ConnectionClosed, InvalidStatus) as exc:
                log.warning("signaling connection lost (%s); retrying in %.1fs", exc, delay)
            self._ws = None
            self.registered.clear()
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY_S)

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "registered":
                self.registered.set()
            elif kind == "room":
                await self.events.room(message)
            elif kind == "signal":
                data = message.get("data")
                await self.events.signal(
                    str(message.get("from")), data if isinstance(data, dict) else {}
                )
            elif kind == "error":
                log.warning("signaling error: %s", message)
        except (ValueError, RecursionError) as exc:  # a peer's bad message: no traceback
            self.errors += 1
            log.warning("refused a signaling message: %.200s", exc)
        except Exception:  # one broken peer or message must not stop the node
            self.errors += 1
            log.exception("handling a signaling message failed")
