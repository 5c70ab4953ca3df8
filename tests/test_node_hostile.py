"""Hostile peers (issue 11): each defect reproduced, against the parser or the running node.

Browsers are aiortc peers (`lpstream.node.loopback_keypoints.KeypointBrowser`); a hostile
one does what a page never would: invalid UTF-8, floods, link offers, offers without video.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import cv2
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from lpstream.errors import ImageError
from lpstream.node import NodeConfig, browser_session, portrait_image, sctp_text
from lpstream.node.browser_control import ControlMessageError, parse_controls, parse_message
from lpstream.node.link import LinkEvents, NodeLink
from lpstream.node.loopback import jpeg, load_face_frames
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.node.signaling_client import SignalingClient, SignalingEvents
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits, SignalingServer
from signaling.errors import SignalingError
from signaling.messages import parse_message as parse_signaling
from tests.conftest import shared_file

os.environ.setdefault("OMP_NUM_THREADS", "1")
DEEP = "[" * 100_000 + "]" * 100_000


# -- parsers -------------------------------------------------------------------------------


def test_a_huge_integer_slider_is_refused_not_overflowed() -> None:
    """Already fixed: `float(10**400)` would raise OverflowError, not the documented error."""
    for value in (10**400, -(10**400), float("inf"), float("nan")):
        with pytest.raises(ControlMessageError, match="outside"):
            parse_controls({"type": "controls", "head": value})
    with pytest.raises(ControlMessageError, match="outside"):
        parse_controls(parse_message('{"type":"controls","eye":' + "9" * 4000 + "}"))


def test_the_voice_switch_takes_only_true_or_false() -> None:
    assert parse_controls({"type": "controls"}).voice_mouth is True  # the page's default
    assert parse_controls({"type": "controls", "voice": False}).voice_mouth is False
    for value in (1, 0, "false", None, [], {"on": True}):
        with pytest.raises(ControlMessageError, match="switch voice"):
            parse_controls({"type": "controls", "voice": value})


def test_deeply_nested_json_is_refused_on_control_and_on_signaling() -> None:
    with pytest.raises(ControlMessageError, match="not JSON"):  # already fixed
        parse_message('{"type":"x","a":' + "[" * 2000 + "]" * 2000 + "}")
    with pytest.raises(SignalingError) as refused:  # fixed: was RecursionError → "internal"
        parse_signaling(DEEP)
    assert refused.value.code == "bad-message"


async def test_a_hostile_node_link_message_is_counted_never_raised() -> None:
    """Already fixed: deep JSON, `kbps` "inf"/Infinity/NaN on the link's control channel."""
    stats: list[Any] = []
    pc = RTCPeerConnection()
    link = NodeLink(
        pc,
        "node:evil",
        LinkEvents(
            motion=lambda *a: None,
            feedback=lambda *a: None,
            portrait=lambda *a: None,
            stats=lambda *a: stats.append(a),
        ),
    )
    hostile = [
        '{"type":"camera","id":"p1","kbps":"inf"}',
        '{"type":"camera","id":"p1","kbps":Infinity}',
        '{"type":"camera","id":"p1","kbps":NaN}',
        '{"type":"camera","id":"p1","kbps":1e999}',
        DEEP[:5000],
        DEEP[:400],
        b"\x05ab",
        b"\x02\xff\xfe\x00",
    ]
    for message in hostile:
        link._control_message(message)
    assert stats == [] and link.errors == len(hostile)
    link._control_message('{"type":"camera","id":"p1","kbps":12.5}')
    assert stats == [(link, "p1", None, 12.5)]
    await pc.close()


async def test_the_node_logs_no_traceback_for_a_bad_signaling_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def nothing(*args: Any) -> None:
        return None

    client = SignalingClient("ws://unused", "A", None, SignalingEvents(nothing, nothing))
    with caplog.at_level(logging.WARNING, "lpstream.node"):
        await client._dispatch(DEEP)
    assert client.errors == 1
    assert all(record.exc_info is None for record in caplog.records)


def test_a_jpeg_whose_size_the_header_walk_cannot_read_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed: a few hundred bytes of JPEG that claim 12000×12000 behind a byte the header
    walk stops at were decoded at full size (432 MB) before the size check refused them."""
    ok, data = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 5])
    assert ok
    bomb = bytearray(data.tobytes())
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (12000).to_bytes(2, "big") * 2
    bomb[2:2] = b"\x00"  # an extraneous byte: libjpeg skips it, the walk cannot
    assert len(bomb) < 1000 and portrait_image.declared_size(bytes(bomb)) is None

    def must_not_decode(*args: Any) -> None:
        raise AssertionError("decoded before the size was known")

    monkeypatch.setattr(portrait_image.cv2, "imdecode", must_not_decode)
    with pytest.raises(ImageError, match="cannot be read"):
        portrait_image.decode_portrait(bytes(bomb), 256, 4 << 20)


# -- the running node ----------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[CallServer]:
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="H", backend="meshwarp", avatar_slots=3), Limits()
    )
    await server.start()
    yield server
    await server.stop()


def url(server: CallServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


async def reply(page: KeypointBrowser, kind: str, limit_s: float = 10) -> dict[str, Any]:
    await page.wait_for(lambda: any(m["type"] == kind for m in page.messages), limit_s, kind)
    found = next(m for m in page.messages if m["type"] == kind)
    page.messages.remove(found)
    return found


async def send_raw_text(page: KeypointBrowser, label: str, payload: bytes) -> None:
    """A WebRTC string message (PPID 51) whose bytes are not UTF-8: no browser sends it."""
    transport = page.pc.sctp
    transport._data_channel_queue.append((page.channels[label], 51, payload))
    await transport._data_channel_flush()


@pytest.mark.slow
async def test_hostile_pages_cost_only_themselves(server: CallServer) -> None:
    node = server.node
    assert node is not None
    eve = KeypointBrowser(url(server), "hostile", "eve")
    await eve.join()
    await reply(eve, "hello")

    # non-UTF-8 text: dropped (fixed: it ended the DTLS transport, i.e. the whole session)
    before = sctp_text.dropped
    await send_raw_text(eve, "control", b'{"type":"ping","t":\xff\xfe}')
    eve.send_control({"type": "ping", "t": 1})
    assert (await reply(eve, "pong"))["t"] == 1
    assert sctp_text.dropped == before + 1

    # deeply nested JSON on control: an error message, the session lives on (already fixed)
    eve.channels["control"].send('{"type":"ping","t":' + "[" * 3000 + "]" * 3000 + "}")
    assert (await reply(eve, "error"))["code"] == "control"

    # a participant's link-offer opens no node link (fixed: any participant could)
    assert eve.ws is not None
    offer = {"kind": "link-offer", "sdp": "v=0\r\n"}
    await eve.ws.send(json.dumps({"type": "signal", "to": "node:H", "data": offer}))
    await eve.wait_for(lambda: node.links.refused == 1, 5, "the refused link offer")
    assert node.links.links == {}

    # a control flood: dropped over the per-session rate, one error, then service again
    session = node.sessions[next(iter(node.sessions))]
    for _ in range(browser_session.CONTROL_BURST + 200):
        eve.channels["control"].send('{"type":"ping"}')
    await eve.wait_for(lambda: session.dropped_control >= 150, 10, "the flood dropped")
    assert (await reply(eve, "error"))["message"].startswith("too many control messages")
    await asyncio.sleep(0.5)
    eve.messages.clear()
    eve.send_control({"type": "ping", "t": 2})
    assert (await reply(eve, "pong"))["t"] == 2
    await eve.close()


@pytest.mark.slow
async def test_an_offer_without_video_transceivers_is_answered(server: CallServer) -> None:
    """Fixed: the video downlink added 3 tracks to an offer with none; aiortc could not
    answer, the node logged a traceback and the page waited for ever."""
    page = KeypointBrowser(url(server), "novideo", "dan", uplink="camera", downlink="video")
    await page.join()  # only `control`: no camera, no avatar tiles
    assert (await reply(page, "hello"))["downlink"] == "video"
    await page.close()


@pytest.mark.slow
async def test_two_portraits_back_to_back_leave_the_second(server: CallServer) -> None:
    """Fixed: both uploads were checked at once and whichever finished last was kept."""
    node = server.node
    assert node is not None
    frames = load_face_frames(shared_file("media/d0.mp4"), 21)
    first, second = jpeg(frames[0][:, 40:280]), jpeg(frames[20][:, 20:300])
    page = KeypointBrowser(url(server), "twice", "pat")
    await page.join()
    await reply(page, "hello")
    page.upload(first)
    page.upload(second)
    oks = [(await reply(page, "portrait-ok", 30))["sha256"] for _ in range(2)]
    route = node.router.get(next(iter(node.sessions)))
    assert route is not None and route.portrait is not None
    import hashlib

    assert oks == [hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()]
    assert route.portrait.sha256 == oks[1]
    await page.close()


async def test_signaling_limits_connections_per_address_and_refuses_deep_json() -> None:
    server = SignalingServer(Limits(max_connections_per_address=2))
    ws_server = await server.serve("127.0.0.1", 0)
    port = next(iter(ws_server.sockets)).getsockname()[1]
    address = f"ws://127.0.0.1:{port}/ws"
    try:
        first, second = await connect(address), await connect(address)
        with pytest.raises(InvalidStatus) as refused:
            await connect(address)
        assert refused.value.response.status_code == 429
        await first.send(DEEP[:60_000])
        assert json.loads(await first.recv())["code"] == "bad-message"  # not "internal"
        await second.close()
        third = await connect(address)  # a freed slot is free again
        for ws in (first, third):
            await ws.close()
    finally:
        ws_server.close()
        await ws_server.wait_closed()
