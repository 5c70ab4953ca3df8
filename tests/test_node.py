"""The media node through real aiortc peers on loopback, with the built-in backend.

Each fake browser is an aiortc RTCPeerConnection that sends a real face video (d0.mp4) as
its camera, uploads a real portrait over `control`, and must receive the other
participant's avatar: frames that are not the placeholder and that change over time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from lpstream.backend import Controls
from lpstream.node.loopback import (
    FileCamera,
    LoopbackBrowser,
    avatar_frames,
    jpeg,
    load_face_frames,
)
from lpstream.serve import CallServer
from tests.conftest import shared_file
from tests.node_servers import start_server

pytestmark = pytest.mark.slow
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    return load_face_frames(shared_file("media/d0.mp4"))


@pytest.fixture
async def server() -> AsyncIterator[CallServer]:
    server = await start_server()
    yield server
    await server.stop()


def ws_url(server: CallServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


async def test_two_participants_see_each_others_avatar(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    ann = LoopbackBrowser(ws_url(server), "room1", "ann")
    bob = LoopbackBrowser(ws_url(server), "room1", "bob")
    await ann.join(FileCamera(face_frames))
    await bob.join(FileCamera(face_frames[10:]))
    hello = await ann.wait_message("hello")
    assert hello["backend"] == "meshwarp"
    ann.upload(jpeg(face_frames[0][:, 40:280]))
    bob.upload(jpeg(face_frames[20][:, 40:280]))
    assert (await ann.wait_message("portrait-ok"))["sha256"]
    assert (await bob.wait_message("portrait-ok"))["sha256"]

    slots = await bob.wait_message("slots")
    assert slots["slots"] == [{"slot": 0, "id": slots["slots"][0]["id"], "name": "ann"}]

    for viewer in (ann, bob):
        frames = await avatar_frames(viewer.tracks[0], 12)
        assert frames[0].std() > 20, "avatar frame is blank"
        changes = [
            np.abs(a.astype(int) - b.astype(int)).mean() for a, b in itertools.pairwise(frames)
        ]
        assert max(changes) > 0.5, "the avatar does not move"

    node = server.node
    assert node is not None
    await asyncio.sleep(2.5)
    for session in node.sessions.values():
        figures = session.uplink.figures()
        kbps = figures["motion_kbps"]
        assert 0 < kbps < 10, f"{session.name} sends {kbps:.2f} kbit/s of motion"
        assert figures["camera_kbps"] > 5 * kbps, "camera video should cost far more than motion"
    ann.messages = [m for m in ann.messages if m["type"] != "stats"]  # only fresh numbers
    stats = await ann.wait_message("stats")
    tile = stats["tiles"][0]
    assert tile["name"] == "bob" and 0 < tile["motion_kbps"] < 10 and tile["fps"] > 3
    assert tile["node_latency_ms"] > 0

    metrics = server.signaling.snapshot()
    assert metrics["participants"] == 2
    from lpstream.node.metrics import node_metrics

    text = node_metrics(node, metrics)
    assert 'lpstream_motion_bytes_total{participant="ann",room="room1"}' in text
    assert "lpstream_latency_ms{" in text

    # bob leaves: ann's tile goes back to the placeholder and the room shrinks
    await bob.close()
    slots = await ann.wait_message("slots", limit_s=10)
    while slots["slots"]:
        slots = await ann.wait_message("slots", limit_s=10)
    await ann.close()


async def test_bad_portraits_and_garbage_get_clear_errors(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    eve = LoopbackBrowser(ws_url(server), "room2", "eve")
    await eve.join(FileCamera(face_frames))
    eve.upload(b"definitely not an image")
    error = await eve.wait_message("error")
    assert error["code"] == "portrait" and "not a JPEG" in error["message"]
    eve.upload(jpeg(np.full((200, 200, 3), 128, np.uint8)))
    error = await eve.wait_message("error")
    assert error["code"] == "portrait" and "face" in error["message"].lower()
    eve.upload(jpeg(face_frames[0]), sha256="0" * 64)
    assert "sha256" in (await eve.wait_message("error"))["message"]
    eve.control.send("{not json")
    assert (await eve.wait_message("error"))["code"] == "control"
    eve.control.send(json.dumps({"type": "controls", "head": 99}))
    assert "outside" in (await eve.wait_message("error"))["message"]
    # still alive and well
    eve.control.send(json.dumps({"type": "ping", "t": 7}))
    assert (await eve.wait_message("pong"))["t"] == 7
    eve.upload(jpeg(face_frames[0][:, 40:280]))
    assert (await eve.wait_message("portrait-ok"))["sha256"]
    await eve.close()


async def test_two_nodes_share_a_call_over_data_channels_only(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    node_b = await start_server("B", peer_node=ws_url(server))
    try:
        assert node_b.page_config()["signaling"] == ws_url(server)
        ann = LoopbackBrowser(ws_url(server), "bridge", "ann", node="A")
        bob = LoopbackBrowser(ws_url(server), "bridge", "bob", node="B")
        await ann.join(FileCamera(face_frames))
        await bob.join(FileCamera(face_frames[10:]))
        ann.upload(jpeg(face_frames[0][:, 40:280]))
        bob.upload(jpeg(face_frames[20][:, 40:280]))
        for viewer in (ann, bob):
            frames = await avatar_frames(viewer.tracks[0], 8)
            assert frames[-1].std() > 20

        assert server.node is not None and node_b.node is not None
        assert set(server.node.sessions) == {ann_id(server)}
        link_a = server.node.links.links["node:B"]
        link_b = node_b.node.links.links["node:A"]
        for link in (link_a, link_b):
            # video never crosses a link; audio crosses on the data channels, not as RTP
            # (docs/architecture.md, "Sound across node links"): no RTP media at all
            assert link.pc.getTransceivers() == [], "no RTP media between nodes"
            for description in (link.pc.localDescription, link.pc.remoteDescription):
                assert "m=video" not in description.sdp, "video crossed a node link"
                assert "m=audio" not in description.sdp, "audio crosses as data, not RTP"
                assert "m=application" in description.sdp
            assert link.motion.ordered is False and link.motion.maxRetransmits == 0
            assert link.control.ordered is True and link.control.maxRetransmits is None
            assert link.motion_bytes_out.total > 0 and link.motion_bytes_in.total > 0
        # what crossed the link is what the remote side decoded: same codec packets
        bob_on_a = next(s for s in server.node.router.sources.values() if s.name == "bob")
        for _ in range(100):  # a loaded machine may still be catching up
            if bob_on_a.packets > 10:
                break
            await asyncio.sleep(0.1)
        assert bob_on_a.portrait is not None and bob_on_a.packets > 10
        for _ in range(50):  # stats go out once a second
            if bob_on_a.figures.camera_kbps > 0:
                break
            await asyncio.sleep(0.1)
        assert bob_on_a.figures.camera_kbps > 0, "camera bitrate stats travel over the link"
        # the protocol's messages crossed the link: Hello, Stats, content-addressed portrait
        assert link_a.remote_backend == link_b.remote_backend == "meshwarp"
        remote_stats = bob_on_a.figures.remote_stats
        assert remote_stats is not None and remote_stats.frames_sent > 10
        assert link_a.portraits_in.has(bytes.fromhex(bob_on_a.portrait.sha256))
        # the sender's face-tracker id crosses too (renderers reset on a new face)
        bob_at_home = node_b.node.router.get(next(iter(node_b.node.sessions)))
        assert bob_at_home is not None
        for _ in range(30):
            if bob_on_a.face_id is not None:
                break
            await asyncio.sleep(0.1)
        assert bob_at_home.face_id is not None and bob_on_a.face_id == bob_at_home.face_id
        await ann.close()
        await bob.close()
    finally:
        await node_b.stop()


def tile_count(node: Any) -> int:
    return sum(len(session.downlink.tiles) for session in node.sessions.values())


def ann_id(server: CallServer) -> str:
    assert server.node is not None
    return next(i for i, s in server.node.sessions.items() if s.name == "ann")


async def test_rejoining_with_the_same_name_replaces_the_old_connection(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    ann = LoopbackBrowser(ws_url(server), "again", "ann")
    bob = LoopbackBrowser(ws_url(server), "again", "bob")
    await ann.join(FileCamera(face_frames))
    await bob.join(FileCamera(face_frames[10:]))
    bob.upload(jpeg(face_frames[20][:, 40:280]))
    await avatar_frames(ann.tracks[0], 3)
    old_id = ann_id(server)

    # ann's tab reloads: new websocket, new RTCPeerConnection, same name
    ann_again = LoopbackBrowser(ws_url(server), "again", "ann", resume=ann.resume)
    await ann_again.join(FileCamera(face_frames))
    ann_again.upload(jpeg(face_frames[0][:, 40:280]))
    frames = await avatar_frames(ann_again.tracks[0], 5)
    assert frames[-1].std() > 20
    assert server.node is not None
    assert sorted(s.name for s in server.node.sessions.values()) == ["ann", "bob"]
    assert old_id not in server.node.sessions
    await avatar_frames(bob.tracks[0], 3)  # bob sees the new ann
    for browser in (ann, ann_again, bob):
        await browser.close()


async def test_three_participants_each_see_both_others(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    names = ("ann", "bob", "cy")
    browsers = [LoopbackBrowser(ws_url(server), "trio", name) for name in names]
    for index, browser in enumerate(browsers):
        await browser.join(FileCamera(face_frames[index * 5 :]))
        browser.upload(jpeg(face_frames[index * 10][:, 40:280]))
    for browser in browsers:
        slots = await browser.wait_message("slots")
        while len(slots["slots"]) < 2:
            slots = await browser.wait_message("slots")
        others = {s["name"] for s in slots["slots"]}
        assert others == set(names) - {browser.name}
        assert sorted(s["slot"] for s in slots["slots"]) == [0, 1]
    for browser in browsers:
        for slot in (0, 1):
            frames = await avatar_frames(browser.tracks[slot], 3, limit_s=60)
            assert frames[-1].std() > 20, f"{browser.name} slot {slot} is blank"
    assert server.node is not None and tile_count(server.node) == 6
    for browser in browsers:
        await browser.close()


async def test_a_portrait_flood_is_refused(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    eve = LoopbackBrowser(ws_url(server), "flood", "eve")
    await eve.join(FileCamera(face_frames))
    for _ in range(12):
        eve.control.send(json.dumps({"type": "portrait", "bytes": 10, "sha256": "0" * 64}))
    error = await eve.wait_message("error")
    assert "too many portraits" in error["message"]
    eve.control.send(json.dumps({"type": "ping", "t": 1}))
    assert (await eve.wait_message("pong"))["t"] == 1
    await eve.close()


async def test_a_leaver_whose_connection_drops_at_once_leaves_no_ghost_tile(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    """The room update and the connection's failure close the same views concurrently."""
    names = ("ann", "bob", "cy")
    browsers = [LoopbackBrowser(ws_url(server), "ghost", name) for name in names]
    for index, browser in enumerate(browsers):
        await browser.join(FileCamera(face_frames[index * 5 :]))
    node = server.node
    assert node is not None
    for _ in range(100):
        if tile_count(node) == 6:
            break
        await asyncio.sleep(0.1)
    assert tile_count(node) == 6
    cy_id = next(i for i, s in node.sessions.items() if s.name == "cy")
    errors = node.errors
    stay = [m for m in node.directory.members.values() if m.room == "ghost" and m.id != cy_id]
    without_cy = {
        "type": "room",
        "room": "ghost",
        "members": [{"id": m.id, "name": m.name, "node": m.node} for m in stay],
        "nodes": [node.member_id],
    }
    await asyncio.gather(node._on_room(without_cy), node._drop_session(node.sessions[cy_id]))
    await browsers[2].close()
    for browser in browsers[:2]:
        slots = await browser.wait_message("slots")
        while {s["name"] for s in slots["slots"]} != set(names[:2]) - {browser.name}:
            slots = await browser.wait_message("slots", limit_s=10)
    assert node.errors == errors, "handling the departure failed"
    for _ in range(50):
        if tile_count(node) == 2:
            break
        await asyncio.sleep(0.1)
    tiles = [t for s in node.sessions.values() for t in s.downlink.tiles.values()]
    assert all(t.source_id != cy_id for t in tiles) and len(tiles) == 2
    assert cy_id not in node.router.sources
    for browser in browsers[:2]:
        await browser.close()


async def test_a_sender_without_a_face_is_reported_to_everyone(
    server: CallServer, face_frames: list[np.ndarray]
) -> None:
    ann = LoopbackBrowser(ws_url(server), "noface", "ann")
    bob = LoopbackBrowser(ws_url(server), "noface", "bob")
    await ann.join(FileCamera(face_frames))
    blank = [np.full_like(face_frames[0], 90) for _ in range(10)]
    await bob.join(FileCamera(blank))
    seen = {"ann": False, "bob": False}
    for _ in range(8):
        ann_stats = await ann.wait_message("stats")
        bob_stats = await bob.wait_message("stats")
        tiles = [t for t in ann_stats["tiles"] if t["name"] == "bob"]
        seen["ann"] |= bool(tiles) and tiles[0]["face_hidden_s"] >= 1.0
        seen["bob"] |= bob_stats["self"]["face_hidden_s"] >= 1.0
        assert ann_stats["self"]["face_hidden_s"] == 0.0, "ann's face is visible"
        if all(seen.values()):
            break
    assert seen == {"ann": True, "bob": True}, "bob's missing face is reported to both"
    await ann.close()
    await bob.close()


async def test_a_new_face_at_the_sender_resets_the_renderer_reference(
    face_frames: list[np.ndarray],
) -> None:
    """A different tracked face must not be driven relative to the previous face's pose."""
    from concurrent.futures import ThreadPoolExecutor

    from lpstream.meshwarp.backend import BACKEND
    from lpstream.meshwarp.renderer import MeshwarpRenderer
    from lpstream.meshwarp.sender import MeshwarpSender
    from lpstream.node.avatar_track import AvatarTrack
    from lpstream.node.portrait_image import Portrait
    from lpstream.node.receiver_stage import ReceiverStage
    from lpstream.node.router import Router
    from lpstream.protocol import MotionEncoder

    sender = MeshwarpSender(smooth=False)
    motions = [sender.extract(frame, index * 40).motion for index, frame in enumerate(face_frames)]
    sender.close()
    first, other = (
        motions[0],
        max(
            (m for m in motions if m is not None),
            key=lambda m: abs(m.yaw - motions[0].yaw) + abs(m.pitch - motions[0].pitch),
        ),
    )
    assert first is not None
    encoder = MotionEncoder(profile=BACKEND.codec_profile)
    route = Router().add_source("p1", "ann")
    route.attach_sender(encoder.on_feedback)
    route.set_portrait(Portrait(b"", "sha", face_frames[20][:, 40:280].copy()))
    executor = ThreadPoolExecutor(1)
    track = AvatarTrack()
    tile = ReceiverStage(
        "viewer#0",
        "p1",
        track,
        MeshwarpRenderer(),
        Controls,
        executor,
        lambda source, error: None,
        lambda renderer: renderer.close(),
    )
    route.connect(tile)
    clock = itertools.count(0, 40)

    async def show(motion: Any, face_id: int) -> np.ndarray:
        published = track.published
        route.set_face(face_id)
        route.publish(encoder.encode(motion, next(clock)), None)
        for _ in range(200):
            if track.published > published:
                break
            await asyncio.sleep(0.02)
        return (await track.recv()).to_ndarray(format="rgb24").astype(np.int16)

    try:
        neutral = await show(first, 1)
        moved = await show(other, 1)
        new_face = await show(other, 2)  # another person, first seen in the `other` pose
    finally:
        await tile.close()
        executor.shutdown()
    assert np.abs(moved - neutral).mean() > 2.0, "the test motion should move the avatar"
    assert np.abs(new_face - neutral).mean() < 0.25 * np.abs(moved - neutral).mean()


def test_an_oversized_portrait_is_refused_before_it_is_decoded() -> None:
    """A few kB of PNG may claim gigapixels: the header is checked before decoding."""
    import cv2

    from lpstream.errors import ImageError
    from lpstream.node.portrait_image import declared_size, decode_portrait

    for extension in (".png", ".jpg"):
        ok, data = cv2.imencode(extension, np.zeros((48, 64, 3), np.uint8))
        assert ok and declared_size(data.tobytes()) == (64, 48)
    ok, data = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))
    bomb = bytearray(data.tobytes())
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width, height
    with pytest.raises(ImageError, match="100000×100000"):
        decode_portrait(bytes(bomb), 256, 4 * 1024 * 1024)
