"""Keypoint pages through the real node: motion relayed as packets (never video), feedback
end to end, portraits transferred, and rooms that mix keypoint and camera/video pages.

The keypoint "pages" are aiortc peers doing what web_client/ does in keypoint mode
(`lpstream.node.loopback_keypoints`), with real motion from a real face video.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from lpstream.backend import SenderOutput
from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.node import NodeConfig
from lpstream.node.loopback import (
    FileCamera,
    LoopbackBrowser,
    avatar_frames,
    jpeg,
    load_face_frames,
)
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.protocol import DecodeStatus
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits
from tests.conftest import shared_file

pytestmark = pytest.mark.slow
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    return load_face_frames(shared_file("media/d0.mp4"))


@pytest.fixture(scope="module")
def motions(face_frames: list[np.ndarray]) -> list[SenderOutput]:
    sender = MeshwarpSender()
    try:
        return [sender.extract(frame, round(i * 40)) for i, frame in enumerate(face_frames)]
    finally:
        sender.close()


@pytest.fixture
async def server() -> AsyncIterator[CallServer]:
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="K", backend="meshwarp", avatar_slots=3), Limits()
    )
    await server.start()
    yield server
    await server.stop()


def url(server: CallServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


def decoded(browser: KeypointBrowser, name: str) -> int:
    return sum(
        s.statuses.count(DecodeStatus.DECODED)
        for source_id, s in browser.seen.items()
        if any(
            m["type"] == "slots"
            and any(t["id"] == source_id and t["name"] == name for t in m["slots"])
            for m in browser.messages
        )
    )


async def test_two_keypoint_pages_exchange_motion_and_portraits_without_media(
    server: CallServer, face_frames: list[np.ndarray], motions: list[SenderOutput]
) -> None:
    ann = KeypointBrowser(url(server), "kp", "ann")
    bob = KeypointBrowser(url(server), "kp", "bob")
    await ann.join(motions)
    await bob.join(motions[10:])
    ann_portrait = jpeg(face_frames[0][:, 40:280])
    ann.upload(ann_portrait)
    bob.upload(jpeg(face_frames[20][:, 40:280]))
    await ann.wait_for(lambda: decoded(ann, "bob") > 40, 30, "bob's motion")
    await bob.wait_for(lambda: decoded(bob, "ann") > 40, 30, "ann's motion")

    hello = next(m for m in ann.messages if m["type"] == "hello")
    assert (hello["uplink"], hello["downlink"]) == ("keypoints", "keypoints")
    for page in (ann, bob):
        for description in (page.pc.localDescription, page.pc.remoteDescription):
            assert "m=video" not in description.sdp  # sound is the only RTP (issue 10)
        assert {t.kind for t in page.pc.getTransceivers()} == {"audio"}
        (other,) = page.seen.values()
        statuses = other.statuses
        assert DecodeStatus.CONCEALED not in statuses, "relayed packets always decode"
        assert statuses.count(DecodeStatus.DECODED) > 0.9 * len(statuses)
        assert page.feedback_in > 3, "the merged feedback reaches the sending page"
    # feedback works end to end: once it flows, the sender's encoder sends delta frames
    # (how many keyframes went before bob's first feedback depends on the join's timing)
    frames, keyframes = ann.encoder.frames_sent, ann.encoder.keyframes_sent
    await ann.wait_for(lambda: ann.encoder.frames_sent >= frames + 25, 10, "25 more frames")
    assert ann.encoder.keyframes_sent - keyframes < 0.2 * (ann.encoder.frames_sent - frames)
    # bob got ann's portrait bytes, content-addressed, and her face id
    ann_at_bob = next(iter(bob.seen.values()))
    await bob.wait_for(lambda: ann_at_bob.portrait_sha256 is not None, 20, "ann's portrait")
    # the page gets the portrait as the node renders it, with the renderer data of that image
    assert ann_at_bob.portrait_sha256 == ann_at_bob.source_sha256
    data = ann_at_bob.source_data
    assert data is not None and data["format"] == "lpstream-meshwarp-source"
    image = bob.portraits.image(bytes.fromhex(ann_at_bob.portrait_sha256))
    assert image.shape[:2] == (data["height"], data["width"])
    uploaded = cv2.resize(face_frames[0][:, 40:280], (data["width"], data["height"]))
    assert np.abs(image.astype(int) - uploaded.astype(int)).mean() < 6, "it is ann's portrait"
    assert ann_at_bob.face == 1
    # the node relays without decoding: no renderer, no sender stage was built for them
    node = server.node
    assert node is not None
    assert all(not hasattr(s.downlink, "tracks") for s in node.sessions.values())
    await ann.close()
    await bob.close()


async def test_a_mixed_room_works_both_ways(
    server: CallServer, face_frames: list[np.ndarray], motions: list[SenderOutput]
) -> None:
    camera_page = LoopbackBrowser(url(server), "mixed", "cam")
    keypoint_page = KeypointBrowser(url(server), "mixed", "kp")
    await camera_page.join(FileCamera(face_frames))
    await keypoint_page.join(motions)
    camera_page.upload(jpeg(face_frames[0][:, 40:280]))
    keypoint_page.upload(jpeg(face_frames[20][:, 40:280]))
    # the camera page sees the keypoint sender rendered by the node, as video
    frames = await avatar_frames(camera_page.tracks[0], 8)
    assert frames[-1].std() > 20
    changes = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in itertools.pairwise(frames)]
    assert max(changes) > 0.5, "the keypoint sender's avatar moves"
    # the keypoint page gets the camera sender's motion (extracted by the node) as packets
    await keypoint_page.wait_for(lambda: decoded(keypoint_page, "cam") > 20, 30, "cam's motion")
    await camera_page.close()
    await keypoint_page.close()


async def test_keypoint_pages_are_refused_by_a_node_that_cannot_serve_them(
    server: CallServer,
) -> None:
    page = KeypointBrowser(url(server), "odd", "eve", uplink="carrier-pigeon")
    with pytest.raises(ConnectionRefusedError, match="no uplink 'carrier-pigeon'"):
        await page.join()
    await page.close()
    assert server.node is not None and server.node.uplinks == ["keypoints", "camera"]
