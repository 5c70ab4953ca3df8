"""What the soak (bench/soak.py) found at the node, each reproduced: a peer's flood of bad
messages cost one log line per message (now one per interval: lpstream.rate_limit.LogLimiter),
and a portrait sent on a channel the page had closed raised in a task."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from lpstream.node import sctp_text
from lpstream.node.framing import frame_packet
from lpstream.node.loopback import jpeg, load_face_frames
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.rate_limit import LogLimiter
from lpstream.serve import CallServer
from tests.conftest import shared_file
from tests.node_servers import start_server
from tests.soak_peers import send_raw_text


def test_one_line_per_key_per_interval_then_a_count() -> None:
    now = [0.0]
    logger = logging.getLogger("test.log_limits")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    quiet = LogLimiter(logger, interval_s=10, clock=lambda: now[0])
    for _ in range(500):
        quiet.warning("eve", "bad thing from %s", "eve")
    quiet.warning("ann", "bad thing from %s", "ann")  # another peer has its own line
    assert records == ["bad thing from eve", "bad thing from ann"]
    now[0] = 10.5
    assert quiet.warning("eve", "bad thing from %s", "eve")
    assert records[-1] == "bad thing from eve (and 499 more like it in 10 s)"
    assert not quiet.warning("eve", "bad thing from %s", "eve")


def test_many_peers_are_remembered_within_a_bound() -> None:
    quiet = LogLimiter(logging.getLogger("test.log_limits.many"), interval_s=60)
    for peer in range(3 * LogLimiter.MAX_KEYS):
        quiet.info(peer, "peer %d", peer)
    assert len(quiet._last) <= LogLimiter.MAX_KEYS


@pytest.fixture
async def server() -> AsyncIterator[CallServer]:
    server = await start_server("L")
    yield server
    await server.stop()


@pytest.mark.slow
async def test_a_flood_of_bad_portrait_replies_and_texts_logs_a_line_each(
    server: CallServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Fixed: every bad portrait reply and every non-UTF-8 text was one log line."""
    eve = KeypointBrowser(f"ws://127.0.0.1:{server.port}/ws", "flood", "eve")
    await eve.join()
    await eve.wait_for(
        lambda: all(c.readyState == "open" for c in eve.channels.values()), 10, "channels"
    )
    dropped = sctp_text.dropped
    with caplog.at_level(logging.INFO, "lpstream.node"):
        for index in range(150):
            eve.channels["portraits"].send(b"\x01")  # truncated frame
            eve.channels["portraits"].send(frame_packet("nobody", bytes([index])))
            await send_raw_text(eve, "control", b"\xff\xfe" + bytes([index]))
        await eve.wait_for(lambda: sctp_text.dropped >= dropped + 150, 20, "the texts dropped")
        eve.messages.clear()
        eve.send_control({"type": "ping", "t": 7})  # the session lives on
        await eve.wait_for(lambda: any(m["type"] == "pong" for m in eve.messages), 10, "pong")
    replies = [r for r in caplog.records if "bad portrait reply" in r.getMessage()]
    texts = [r for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert len(replies) == 1 and len(texts) == 1, (len(replies), len(texts))
    await eve.close()


@pytest.mark.slow
async def test_a_portrait_for_a_page_that_closed_its_portraits_channel_is_not_an_error(
    server: CallServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Fixed (found by the soak): the node sent the portrait on a closed channel, and the
    InvalidStateError ended a task nobody awaited ("Task exception was never retrieved")."""
    node = server.node
    assert node is not None
    url = f"ws://127.0.0.1:{server.port}/ws"
    ann, bob = KeypointBrowser(url, "pics", "ann"), KeypointBrowser(url, "pics", "bob")
    await ann.join()
    await bob.join()
    (frame,) = load_face_frames(shared_file("media/d0.mp4"), 1)
    ann.upload(jpeg(frame[:, 40:280]))
    await bob.wait_for(
        lambda: any(s.portrait_sha256 for s in bob.seen.values()), 20, "ann's portrait"
    )
    (ann_id,) = bob.seen
    session = next(s for s in node.sessions.values() if s.name == "bob")
    downlink = session.downlink
    bob.channels["portraits"].close()
    await bob.wait_for(lambda: downlink.portraits.readyState == "closed", 10, "closed")
    route = node.router.get(ann_id)
    assert route is not None and route.portrait is not None
    await downlink._send_portrait(ann_id, route.portrait)  # raised InvalidStateError
    bob.messages.clear()
    bob.send_control({"type": "ping", "t": 3})
    await bob.wait_for(lambda: any(m["type"] == "pong" for m in bob.messages), 10, "pong")
    await ann.close()
    await bob.close()
