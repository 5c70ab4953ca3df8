"""Sound through the real node: every page hears every other (packets and decoded, non-silent
sound), in any uplink/downlink kind, and a muted page is heard no more.

The pages are the aiortc peers of `lpstream.node.loopback*` with a microphone playing real
speech (d6.mp4) as Opus packets, as a tuned browser sends them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from lpstream.node import NodeConfig
from lpstream.node.loopback import FileCamera, LoopbackBrowser, load_face_frames
from lpstream.node.loopback_audio import OpusMicrophone, heard_rms, load_speech
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.node.opus_sdp import tune_opus
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits
from tests.conftest import shared_file

pytestmark = pytest.mark.slow
os.environ.setdefault("OMP_NUM_THREADS", "1")

HEARD_RMS = 200.0
"""Speech decodes to an RMS of about 1300 (s16); silence to a few units."""


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_speech(shared_file("media/d6.mp4"))


@pytest.fixture
async def server() -> AsyncIterator[CallServer]:
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="A", backend="meshwarp", avatar_slots=3), Limits()
    )
    await server.start()
    yield server
    await server.stop()


def url(server: CallServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


async def slot_of(page: Any, name: str) -> int:
    """The tile (= audio transceiver) on which `page` shows `name`."""
    for _ in range(200):
        for message in reversed(page.messages):
            if message["type"] == "slots":
                found = [t["slot"] for t in message["slots"] if t["name"] == name]
                if found:
                    return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{page.name} has no tile for {name}")


async def hears(page: Any, name: str, seconds: float = 2.0) -> tuple[int, float]:
    slot = await slot_of(page, name)
    for _ in range(100):
        if slot in page.audio:
            break
        await asyncio.sleep(0.05)
    return await heard_rms(page.audio[slot], seconds)


async def test_two_keypoint_pages_hear_each_other_and_mute_stops_it(
    server: CallServer, speech: np.ndarray
) -> None:
    mics = [OpusMicrophone(speech), OpusMicrophone(speech[48000 * 3 :])]
    pages = [KeypointBrowser(url(server), "talk", name) for name in ("ann", "bob")]
    try:
        for page, mic in zip(pages, mics, strict=True):
            await page.join(microphone=mic)
        ann, bob = pages
        for listener, speaker in ((ann, "bob"), (bob, "ann")):
            frames, rms = await hears(listener, speaker)
            assert frames > 20 and rms > HEARD_RMS, (listener.name, speaker, frames, rms)
        node = server.node
        assert node is not None
        assert all(node.audio.sources[s.id].packets > 20 for s in node.sessions.values())
        for page in pages:  # the answer told the page's encoder how to speak
            assert "usedtx=1" in page.pc.remoteDescription.sdp
            assert "ptime=60" in page.pc.remoteDescription.sdp

        mics[0].muted = True
        await hears(bob, "ann", 0.5)  # what was in flight
        frames, rms = await hears(bob, "ann", 1.5)
        assert rms < HEARD_RMS / 10, rms
        frames, rms = await hears(ann, "bob", 1.0)
        assert rms > HEARD_RMS, "bob still heard"
    finally:
        for page in pages:
            await page.close()


async def test_three_pages_in_mixed_kinds_each_hear_the_other_two(
    server: CallServer, speech: np.ndarray
) -> None:
    frames = load_face_frames(shared_file("media/d0.mp4"), count=10)
    cam = LoopbackBrowser(url(server), "three", "cam")
    pages: list[Any] = [cam]
    try:
        await cam.join(FileCamera(frames), OpusMicrophone(speech))
        for index, name in enumerate(("kp1", "kp2")):
            page = KeypointBrowser(url(server), "three", name)
            pages.append(page)
            await page.join(microphone=OpusMicrophone(speech[48000 * 2 * (index + 1) :]))
        names = [p.name for p in pages]
        for listener in pages:
            for speaker in names:
                if speaker == listener.name:
                    continue
                heard, rms = await hears(listener, speaker, 1.5)
                assert heard > 15 and rms > HEARD_RMS, (listener.name, speaker, heard, rms)
    finally:
        for page in pages:
            await page.close()


async def test_forwarded_sound_keeps_the_speakers_rtp_timestamps(
    server: CallServer, speech: np.ndarray
) -> None:
    """The listener's page reads the speaker's RTP clock off what it receives (its keypoint
    lip sync): every forwarded packet carries the timestamp the speaker's browser wrote."""
    pages = [KeypointBrowser(url(server), "clock", name) for name in ("ann", "bob")]
    try:
        await pages[0].join(microphone=OpusMicrophone(speech))
        await pages[1].join()
        bob = pages[1]
        node = server.node
        assert node is not None
        spoken: set[int] = set()
        heard: list[int] = []
        ann_id = next(s.id for s in node.sessions.values() if s.name == "ann")
        for _ in range(100):
            if ann_id in node.audio.sources:
                break
            await asyncio.sleep(0.05)
        node.audio.sources[ann_id].relays.add(lambda frame: spoken.add(frame.timestamp))
        slot = await slot_of(bob, "ann")
        receiver = [t for t in bob.pc.getTransceivers() if t.kind == "audio"][slot].receiver
        original = receiver._handle_rtp_packet

        async def recording(packet: Any, arrival_time_ms: int) -> None:
            heard.append(packet.timestamp)
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = recording
        await asyncio.sleep(2.0)
        assert len(heard) > 20, heard
        kept = sum(stamp in spoken for stamp in heard)
        assert kept >= len(heard) - 2, f"{kept} of {len(heard)} timestamps are the speaker's"
    finally:
        for page in pages:
            await page.close()


def test_opus_is_tuned_in_every_audio_section_and_nowhere_else() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
    )
    tuned = tune_opus(sdp)
    audio, video = tuned.split("m=video")
    assert "a=fmtp:111 minptime=10;useinbandfec=1;ptime=60;maxaveragebitrate=16000" in audio
    assert "usedtx=1" in audio and audio.count("a=ptime:") == 1 and "a=ptime:60" in audio
    assert video == " 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
    assert tune_opus(tuned) == tuned
