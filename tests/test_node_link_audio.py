"""Sound across a node link: two real nodes (signaling, aiortc) in one process, aiortc pages
on each with a microphone playing real speech (d6.mp4) as Opus packets. Each page hears the
participants of the other node on the tile that shows them (packets and decoded, non-silent
sound), with the speaker's RTP timestamps and sequence numbers kept across the link; a muted
speaker is heard no more, one who left stops, and a rebuilt link carries the sound again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiortc import RTCPeerConnection

from lpstream.node.audio_forwarding import AudioForwarding, AudioFrame
from lpstream.node.framing import pack_item
from lpstream.node.link import LinkEvents, NodeLink
from lpstream.node.link_audio import HEADER_BYTES, MAX_OPUS_BYTES, decode_audio, encode_audio
from lpstream.node.loopback_audio import OpusMicrophone, heard_rms, load_speech
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.protocol.wire import PROTOCOL_VERSION
from lpstream.serve import CallServer
from tests.conftest import shared_file
from tests.node_servers import two_linked_nodes
from tests.test_node_audio import HEARD_RMS, hears

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_speech(shared_file("media/d6.mp4"))


@pytest.fixture
async def two_nodes() -> AsyncIterator[tuple[CallServer, CallServer]]:
    async for pair in two_linked_nodes():
        yield pair


def member_id(server: CallServer, name: str) -> str:
    assert server.node is not None
    return next(i for i, s in server.node.sessions.items() if s.name == name)


@pytest.mark.slow
async def test_pages_on_two_nodes_hear_each_other_on_the_right_tile(
    two_nodes: tuple[CallServer, CallServer], speech: np.ndarray
) -> None:
    a, b = two_nodes
    assert a.node is not None and b.node is not None
    url = f"ws://127.0.0.1:{a.port}/ws"
    ann_mic, bob_mic, cy_mic = (OpusMicrophone(speech[48000 * s :]) for s in (0, 3, 5))
    cy_mic.muted = True  # cy is silent from the start: her tile must stay silent
    ann = KeypointBrowser(url, "over", "ann", node="A")
    bob = KeypointBrowser(url, "over", "bob", node="B")
    cy = KeypointBrowser(url, "over", "cy", node="B")
    pages = [ann, bob, cy]
    try:
        await ann.join(microphone=ann_mic)
        await bob.join(microphone=bob_mic)
        await cy.join(microphone=cy_mic)
        # record what each node publishes as ann's sound: at A from her page, at B from the link
        ann_id = member_id(a, "ann")
        at_a: list[AudioFrame] = []
        at_b: list[AudioFrame] = []
        a.node.audio.source(ann_id).relays.add(at_a.append)
        b.node.audio.source(ann_id).relays.add(at_b.append)

        for listener, speaker in ((ann, "bob"), (bob, "ann"), (cy, "ann")):
            frames, rms = await hears(listener, speaker)
            assert frames > 20 and rms > HEARD_RMS, (listener.name, speaker, frames, rms)
        frames, rms = await hears(ann, "cy", 1.5)  # cy's tile at ann plays cy's silence
        assert rms < HEARD_RMS / 10, ("cy's tile plays someone else", frames, rms)

        link_a = a.node.links.links["node:B"]
        link_b = b.node.links.links["node:A"]
        assert link_a.pc.getTransceivers() == [] == link_b.pc.getTransceivers()
        assert link_a.audio_bytes_out.total > 0 and link_a.audio_bytes_in.total > 0
        assert link_a.errors == link_b.errors == 0
        # the speaker's RTP clock and numbering crossed the link unchanged
        sent = {f.sequence: f for f in at_a}
        matched = [f for f in at_b if f.sequence in sent]
        assert len(matched) > 20 and len(at_b) - len(matched) <= 5  # those were in flight
        assert all(f == sent[f.sequence] for f in matched), "timestamp, level or payload changed"
        steps = [(n.timestamp - f.timestamp) % 2**32 for f, n in itertools.pairwise(at_b)]
        assert all(0 < step <= 5 * 2880 and step % 2880 == 0 for step in steps), steps

        ann_mic.muted = True
        await hears(bob, "ann", 0.5)  # what was in flight
        frames, rms = await hears(bob, "ann", 1.5)
        assert rms < HEARD_RMS / 10, rms
        frames, rms = await hears(ann, "bob", 1.0)
        assert rms > HEARD_RMS, "bob is still heard across the link"

        bob_id = member_id(b, "bob")
        bob_slot = next(
            t["slot"]
            for m in reversed(ann.messages)
            if m["type"] == "slots"
            for t in m["slots"]
            if t["name"] == "bob"
        )
        await bob.close()
        pages.remove(bob)
        for _ in range(100):
            if bob_id not in a.node.audio.sources:
                break
            await asyncio.sleep(0.05)
        assert bob_id not in a.node.audio.sources, "node A still has a source for bob"
        await heard_rms(ann.audio[bob_slot], 0.5)  # what was in flight
        frames, _ = await heard_rms(ann.audio[bob_slot], 1.5)
        assert frames == 0, f"bob left but ann's tile {bob_slot} still plays {frames} frames"
    finally:
        for page in pages:
            await page.close()


@pytest.mark.slow
async def test_a_rebuilt_link_carries_the_sound_again(
    two_nodes: tuple[CallServer, CallServer], speech: np.ndarray
) -> None:
    a, b = two_nodes
    assert a.node is not None and b.node is not None
    url = f"ws://127.0.0.1:{a.port}/ws"
    ann = KeypointBrowser(url, "again", "ann", node="A")
    bob = KeypointBrowser(url, "again", "bob", node="B")
    try:
        await ann.join(microphone=OpusMicrophone(speech))
        await bob.join(microphone=OpusMicrophone(speech[48000 * 3 :]))
        for listener, speaker in ((ann, "bob"), (bob, "ann")):
            frames, rms = await hears(listener, speaker, 1.5)
            assert frames > 15 and rms > HEARD_RMS, (listener.name, speaker, frames, rms)

        old = a.node.links.links["node:B"]
        await old.pc.close()

        def rebuilt() -> bool:
            assert a.node is not None and b.node is not None
            links = (a.node.links.links.get("node:B"), b.node.links.links.get("node:A"))
            return all(link is not None and link is not old and link.is_open for link in links)

        await ann.wait_for(rebuilt, 30, "the rebuilt link")
        for listener, speaker in ((ann, "bob"), (bob, "ann")):
            await hears(listener, speaker, 0.5)  # the gap while the link was down
            frames, rms = await hears(listener, speaker, 1.5)
            assert frames > 15 and rms > HEARD_RMS, (listener.name, speaker, frames, rms)
        assert a.node.links.links["node:B"].audio_bytes_in.total > 0
    finally:
        await ann.close()
        await bob.close()


def test_an_audio_item_keeps_the_speakers_clock_and_level_and_rejects_garbage() -> None:
    frame = AudioFrame(b"\x48\x01\x02", timestamp=2**32 - 1, sequence=65535)
    assert decode_audio(encode_audio(frame)) == frame
    loud = AudioFrame(b"\x48", timestamp=7, sequence=9, level_dbov=12)
    assert decode_audio(encode_audio(loud)).level_dbov == 12
    bad_level = encode_audio(frame)[: HEADER_BYTES - 1] + b"\x80" + frame.payload
    for bad in (
        b"",
        bytes(HEADER_BYTES),
        b"\x01" + bytes(HEADER_BYTES),
        bytes(HEADER_BYTES) + bytes(MAX_OPUS_BYTES + 1),
        bad_level,
    ):
        with pytest.raises(ValueError):
            decode_audio(bad)
    with pytest.raises(ValueError):
        encode_audio(AudioFrame(b"", 0, 0))
    with pytest.raises(ValueError):
        encode_audio(AudioFrame(b"\x48", 0, 0, level_dbov=128))


def test_a_late_or_repeated_packet_is_dropped_and_a_new_stream_is_not() -> None:
    source = AudioForwarding().source("p1")
    heard: list[int] = []
    source.relays.add(lambda frame: heard.append(frame.sequence))
    for sequence in (65534, 65535, 0, 65535, 0, 2, 1, 3, 40000, 40001):
        source.publish(b"\x48", sequence * 960, sequence)
    assert heard == [65534, 65535, 0, 2, 3, 40000, 40001]
    assert source.late == 3


async def test_a_bad_sound_item_on_a_link_is_counted_and_the_rest_of_the_batch_kept() -> None:
    heard: list[tuple[str, AudioFrame]] = []
    moved: list[str] = []
    pc = RTCPeerConnection()
    link = NodeLink(
        pc,
        "node:B",
        LinkEvents(
            motion=lambda _link, participant, _packet: moved.append(participant),
            feedback=lambda *a: None,
            portrait=lambda *a: None,
            stats=lambda *a: None,
            audio=lambda _link, participant, frame: heard.append((participant, frame)),
        ),
    )
    good = AudioFrame(b"\x48" * 40, 123456, 7, level_dbov=30)  # the level crosses too
    motion = bytes((PROTOCOL_VERSION, 0x10, 0))  # a header only: the link does not decode it
    batch = b"".join(
        (
            pack_item("p1", b"\x00\x01\x02"),  # too short for an audio item
            pack_item("p1", encode_audio(good)),
            pack_item("p2", motion),
            pack_item("p1", bytes(HEADER_BYTES) + bytes(MAX_OPUS_BYTES + 1)),  # too long
        )
    )
    link._motion_message(batch)
    assert heard == [("p1", good)] and moved == ["p2"] and link.errors == 2
    assert link.audio_bytes_in.total == len(good.payload)
    await pc.close()
