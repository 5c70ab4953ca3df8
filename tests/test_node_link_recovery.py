"""Two nodes sharing a call: wire accounting in /metrics per session and per node link, a
node link that fails is rebuilt, and the signaling connection comes back with back-off.

Keypoint pages (`KeypointBrowser`) keep the test cheap: no video is encoded or rendered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import AsyncIterator

import pytest

from lpstream.backend import SenderOutput
from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.node import signaling_client, wire_meter
from lpstream.node.loopback import load_face_frames
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.node.metrics import node_metrics
from lpstream.node.signaling_client import SignalingClient, SignalingEvents
from lpstream.protocol import DecodeStatus
from lpstream.serve import CallServer
from signaling import SignalingServer
from tests.conftest import shared_file
from tests.node_servers import two_linked_nodes

pytestmark = pytest.mark.slow
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def motions() -> list[SenderOutput]:
    sender = MeshwarpSender()
    try:
        frames = load_face_frames(shared_file("media/d0.mp4"), 20)
        return [sender.extract(frame, i * 40) for i, frame in enumerate(frames)]
    finally:
        sender.close()


@pytest.fixture
async def two_nodes() -> AsyncIterator[tuple[CallServer, CallServer]]:
    async for pair in two_linked_nodes():
        yield pair


def decoded(page: KeypointBrowser) -> int:
    return sum(s.statuses.count(DecodeStatus.DECODED) for s in page.seen.values())


def wire_sample(text: str, **labels: str) -> float:
    """The sum of the `lpstream_wire_bytes_total` samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith("lpstream_wire_bytes_total{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_wire_bytes_in_metrics_and_a_failed_link_is_rebuilt(
    two_nodes: tuple[CallServer, CallServer], motions: list[SenderOutput]
) -> None:
    a, b = two_nodes
    assert a.node is not None and b.node is not None
    url = f"ws://127.0.0.1:{a.port}/ws"
    ann = KeypointBrowser(url, "pair", "ann", node="A")
    bob = KeypointBrowser(url, "pair", "bob", node="B")
    await ann.join(motions)
    await bob.join(motions[5:])
    await bob.wait_for(lambda: decoded(bob) > 20, 30, "ann's motion at bob")
    await ann.wait_for(lambda: decoded(ann) > 20, 30, "bob's motion at ann")

    # (1) wire accounting: every session and node link, by direction and kind
    text = node_metrics(a.node)
    session = wire_sample(text, connection="session", participant="ann", direction="received")
    assert wire_sample(text, connection="session", participant="ann", kind="stun") > 0
    assert session > 0 and wire_sample(text, participant="ann", kind="dtls") > 0
    assert wire_sample(text, connection="link", node="node:B", direction="sent") > 0
    assert wire_sample(text, connection="link", node="node:B", direction="received") > 0
    page_sent = wire_meter.tally(ann.pc).sent.total_bytes
    assert 0.8 < session / page_sent < 1.2, "what the page sent is what the node received"

    # (4) the link's peer connection dies, on one side then the other: rebuilt each time
    for closer in (a, b, a):
        assert closer.node is not None
        failures = a.node.links.failures + b.node.links.failures
        old = closer.node.links.links["node:B" if closer is a else "node:A"]
        await old.pc.close()

        def rebuilt(old: object = old) -> bool:
            assert a.node is not None and b.node is not None
            links = (a.node.links.links.get("node:B"), b.node.links.links.get("node:A"))
            return all(link is not None and link is not old and link.is_open for link in links)

        await bob.wait_for(rebuilt, 30, "the rebuilt link")
        assert a.node.links.failures + b.node.links.failures > failures
        at_bob, at_ann = decoded(bob), decoded(ann)
        await bob.wait_for(lambda n=at_bob: decoded(bob) > n + 20, 30, "ann's motion again")
        await ann.wait_for(lambda n=at_ann: decoded(ann) > n + 20, 30, "bob's motion again")
    assert "lpstream_node_link_failures_total" in node_metrics(a.node)
    await ann.close()
    await bob.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_signaling_reconnects_with_back_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(signaling_client, "FIRST_RETRY_S", 0.1)
    monkeypatch.setattr(signaling_client, "LAST_RETRY_S", 0.4)

    async def nothing(*args: object) -> None:
        return None

    port = free_port()
    client = SignalingClient(
        f"ws://127.0.0.1:{port}/ws", "R", None, SignalingEvents(nothing, nothing)
    )
    with caplog.at_level(logging.WARNING, "lpstream.node"):
        client.start()  # nobody listens yet
        await asyncio.sleep(1.6)
        delays = [
            float(m.group(1))
            for r in caplog.records
            if (m := re.search(r"retrying in ([\d.]+)s", r.getMessage()))
        ]
        assert delays[:4] == [0.1, 0.2, 0.4, 0.4], delays
        server = SignalingServer()
        ws_server = await server.serve("127.0.0.1", port)
        try:
            await asyncio.wait_for(client.registered.wait(), 3)
            assert "node:R" in server.nodes
            for connection in [c.connection for c in server.clients]:  # the server drops it
                await connection.close()
            await asyncio.sleep(0.05)
            await asyncio.wait_for(client.registered.wait(), 3)  # and it comes back
            assert "node:R" in server.nodes
        finally:
            await client.stop()
            ws_server.close()
            await ws_server.wait_closed()
