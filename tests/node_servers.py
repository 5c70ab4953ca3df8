"""Nodes for tests: a `CallServer` on a free port with the built-in backend, one or two."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits


async def start_server(node_id: str = "A", **serve: Any) -> CallServer:
    server = CallServer(
        ServeConfig(port=0, **serve),
        NodeConfig(node_id=node_id, backend="meshwarp", avatar_slots=3),
        Limits(),
    )
    await server.start()
    return server


async def two_linked_nodes() -> AsyncIterator[tuple[CallServer, CallServer]]:
    """Node A with its signaling, node B registered at A's: a room across both is linked."""
    a = await start_server("A")
    b = await start_server("B", peer_node=f"ws://127.0.0.1:{a.port}/ws")
    yield a, b
    await b.stop()
    await a.stop()
