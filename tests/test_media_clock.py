"""Lip sync of node-rendered tiles (lpstream/node/media_clock.py): the earliest-arrival
mapping of a sender's motion clock, a tile's send lag, the voice held by that lag, and one
MediaStream id per tile's video and voice in the node's real aiortc answer."""

from __future__ import annotations

import asyncio
import random
import re
import time
from typing import Any, cast

import numpy as np
import pytest
from aiortc import RTCPeerConnection

from lpstream.node.audio_forwarding import AudioForwarding, AudioSource, SlotTrack
from lpstream.node.avatar_track import AvatarTrack
from lpstream.node.config import NodeConfig
from lpstream.node.endpoints import EndpointContext
from lpstream.node.media_clock import (
    MAX_LAG_S,
    RTP_PERIOD_MS,
    TIMESTAMP_MODULO,
    ArrivalMapping,
    SendLag,
    VoiceArrival,
    tile_stream_id,
)
from lpstream.node.video_downlink import VideoDownlink


def jittered_trip(seed: int, count: int, start_ms: int = 1000) -> list[tuple[int, float]]:
    """(sender timestamp ms, arrival s) of frames every 40 ms, a 30 ms fastest trip plus
    exponential jitter (mean 40 ms), arrival clock offset by 1234.5 s."""
    rng = random.Random(seed)
    return [
        (
            (start_ms + 40 * i) % TIMESTAMP_MODULO,
            1234.5 + (start_ms + 40 * i) / 1000 + 0.030 + rng.expovariate(1 / 0.040),
        )
        for i in range(count)
    ]


def test_frames_are_mapped_as_if_they_came_by_the_fastest_trip() -> None:
    mapping = ArrivalMapping(window_s=10.0)
    frames = jittered_trip(1, 250)
    content = [mapping.add(ts, arrival) for ts, arrival in frames]
    fastest = min(a - ts / 1000 for ts, a in frames[:200])
    # Once the fastest trip was seen, every frame is at its timestamp + that trip: the
    # sender's spacing exactly, the jitter gone.
    late = np.array(content[200:]) - np.array([ts / 1000 for ts, _ in frames[200:]])
    assert np.allclose(late, fastest, atol=1e-9)
    assert np.allclose(np.diff(content[200:]), 0.040, atol=1e-9)
    arrivals = np.array([a for _, a in frames[200:]])
    assert (np.array(content[200:]) <= arrivals + 1e-9).all(), "never later than arrival"
    assert (arrivals - np.array(content[200:])).mean() > 0.030, "the jitter is taken out"


def test_the_mapping_survives_the_timestamp_wrap_and_a_restarted_sender() -> None:
    mapping = ArrivalMapping()
    frames = jittered_trip(2, 100, start_ms=TIMESTAMP_MODULO - 2000)  # wraps after 50
    content = [mapping.add(ts, arrival) for ts, arrival in frames]
    assert np.allclose(np.diff(content[60:]), 0.040, atol=1e-9), "no jump at the wrap"
    # A restarted page starts its clock again: the old fastest trip means nothing.
    arrival = frames[-1][1] + 1.0
    assert mapping.add(5, arrival) == pytest.approx(arrival)


def test_the_window_forgets_an_old_fastest_trip() -> None:
    mapping = ArrivalMapping(window_s=2.0)
    mapping.add(0, 10.0)  # a trip of 10 s − 0
    for i in range(1, 200):  # then every trip is 0.2 s longer
        last = mapping.add(40 * i, 10.2 + 0.04 * i)
    assert last == pytest.approx(10.2 + 0.04 * 199)


def test_send_lag_is_a_clamped_median() -> None:
    lag = SendLag(frames=5)
    assert lag.seconds == 0.0
    for value in (0.1, 0.12, 5.0, 0.11, -1.0):
        lag.add(value)
    assert lag.seconds == pytest.approx(0.11)
    for _ in range(5):
        lag.add(9.0)
    assert lag.seconds == MAX_LAG_S


def test_a_voice_clock_stamp_maps_to_when_its_sound_arrived() -> None:
    """Motion stamped on the speaker's RTP clock (ms) lands at its sound's arrival, by the
    fastest trip, across the RTP wrap; a stamp of another clock is refused."""
    rng = random.Random(9)
    voice = VoiceArrival()
    origin = 2**32 - 48000 * 2  # wraps 2 s in
    fastest = 0.020
    for i in range(150):  # 60 ms packets, 9 s
        rtp_s = i * 0.060
        arrival = 500.0 + rtp_s + fastest + rng.expovariate(1 / 0.030)
        voice.observe((origin + 48 * 60 * i) % 2**32, arrival)
    now = 500.0 + 149 * 0.060 + 0.1
    # The sender unwrapped from its first timestamp: its stamps are ms of origin + t.
    for t_s in (8.0, 8.5):
        stamp = int((origin + 48000 * t_s) / 48)
        assert voice.arrival_of(stamp, now) == pytest.approx(500.0 + t_s + fastest, abs=0.002)
        # A receiver that first heard it after the wrap unwraps one period lower: same time.
        assert voice.arrival_of(int(stamp - RTP_PERIOD_MS), now) == pytest.approx(
            500.0 + t_s + fastest, abs=0.002
        )
    assert voice.arrival_of(123456, now) is None, "another clock"
    assert VoiceArrival().arrival_of(1000, now) is None, "no voice heard"


async def test_an_avatar_track_measures_how_late_its_frames_leave() -> None:
    """The lag is taken when aiortc asks for the next frame: after it encoded and sent
    the one before (what its sender reports time)."""
    track = AvatarTrack(25.0)
    frame = np.zeros((64, 64, 3), np.uint8)
    for _ in range(5):
        track.publish(frame, None, time.monotonic() - 0.150)
        await track.recv()
        await asyncio.sleep(0.030)  # encoding and sending
    await track.recv()  # (the placeholder repeat after 0.5 s idle) takes the last lag
    assert 0.180 <= track.lag.seconds < 0.180 + 0.1
    track.publish(frame)  # a frame without content time (concealed, a tick) changes nothing
    await track.recv()
    assert 0.150 <= track.lag.seconds < 0.250
    track.stop()


async def test_a_tile_voice_is_held_by_its_delay() -> None:
    source = AudioSource("ann")
    held, prompt = SlotTrack(lambda: 0.2), SlotTrack()
    for track in (held, prompt):
        track.listen_to(source)
    start = time.monotonic()
    source.publish(b"\x01" * 20, 960, 1)
    await prompt.recv()
    assert time.monotonic() - start < 0.1
    packet = await held.recv()
    assert time.monotonic() - start >= 0.2
    assert packet.pts == 960, "the speaker's timing is kept"


def _msids(sdp: str) -> list[tuple[str, str]]:
    """(kind, stream id) of every m-section of `sdp`, in order."""
    out = []
    for section in sdp.split("m=")[1:]:
        found = re.search(r"a=msid:(\S+)", section)
        out.append((section.split(" ", 1)[0], found.group(1) if found else ""))
    return out


@pytest.mark.parametrize("lip_sync", [True, False])
async def test_a_tile_video_and_voice_are_one_stream_in_the_answer(lip_sync: bool) -> None:
    page, node = RTCPeerConnection(), RTCPeerConnection()
    try:
        for _ in range(2):
            page.addTransceiver("video", direction="recvonly")
        for _ in range(2):
            page.addTransceiver("audio", direction="recvonly")
        await page.setLocalDescription(await page.createOffer())
        await node.setRemoteDescription(page.localDescription)
        context = cast(Any, EndpointContext)(
            "bob", NodeConfig(avatar_slots=2, lip_sync=lip_sync), *([None] * 7)
        )
        downlink = VideoDownlink(context)
        downlink.prepare(node)
        seat = AudioForwarding().seat("bob")
        seat.prepare(node, downlink.audio_delay)
        await node.setLocalDescription(await node.createAnswer())
        sections = _msids(node.localDescription.sdp)
        video = [stream for kind, stream in sections if kind == "video"]
        audio = [stream for kind, stream in sections if kind == "audio"]
        assert audio == [tile_stream_id(0), tile_stream_id(1)]
        if lip_sync:
            assert video == audio, sections
        else:
            assert not set(video) & set(audio), "off: aiortc's own id, no pairing"
        # The voice of a tile waits as long as its frames are late, and only with sync on.
        downlink.tracks[1].lag.add(0.12)
        assert seat.tracks[1].delay() == pytest.approx(0.12 if lip_sync else 0.0)
        assert seat.tracks[0].delay() == 0.0
        await asyncio.sleep(0)
    finally:
        await page.close()
        await node.close()
