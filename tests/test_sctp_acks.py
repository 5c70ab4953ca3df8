"""SCTP acknowledgements between two real aiortc peers (lpstream/node/sctp_acks.py): a SACK
waits for a second packet (or 200 ms) and rides in the next data packet when there is one;
what is sent still arrives, and the sender's queue empties (its data was acknowledged)."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from aiortc.rtcsctptransport import DataChunk, ForwardTsnChunk

from lpstream.node import sctp_acks, wire_meter

FRAMES = 60
FRAME_S = 0.04


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection, list, list]:
    wire_meter.install()
    sctp_acks.install()
    first, second = RTCPeerConnection(), RTCPeerConnection()
    channel = first.createDataChannel("motion", ordered=False, maxRetransmits=0)
    answered: asyncio.Future = asyncio.get_running_loop().create_future()
    second.on("datachannel", answered.set_result)
    await first.setLocalDescription(await first.createOffer())
    await second.setRemoteDescription(first.localDescription)
    await second.setLocalDescription(await second.createAnswer())
    await first.setRemoteDescription(second.localDescription)
    other = await asyncio.wait_for(answered, 20)
    if channel.readyState != "open":
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), 20)
    received: tuple[list, list] = ([], [])
    channel.on("message", received[0].append)
    other.on("message", received[1].append)
    return first, second, [channel, other], list(received)


def dtls_packets_sent(pc: RTCPeerConnection) -> int:
    return wire_meter.tally(pc).sent.packets["dtls"]


async def exchange(channels: list, both_ways: bool) -> None:
    for index in range(FRAMES):
        channels[0].send(b"A%04d" % index + bytes(30))
        if both_ways:
            await asyncio.sleep(FRAME_S / 2)  # interleaved, as two cameras are
            channels[1].send(b"B%04d" % index + bytes(30))
            await asyncio.sleep(FRAME_S / 2)
        else:
            await asyncio.sleep(FRAME_S)
    await asyncio.sleep(0.5)  # the last delayed SACKs (200 ms)


def outstanding(pc: RTCPeerConnection) -> int:
    assert pc.sctp is not None
    return len(pc.sctp._sent_queue) + len(pc.sctp._outbound_queue)


async def test_sacks_ride_in_the_data_going_the_other_way() -> None:
    first, second, channels, received = await connected_pair()
    try:
        before = [dtls_packets_sent(pc) for pc in (first, second)]
        bundled_before = sctp_acks.bundled_sacks(second.sctp)
        await exchange(channels, both_ways=True)
        sent = [dtls_packets_sent(pc) - b for pc, b in zip((first, second), before, strict=True)]
        assert [len(r) for r in received] == [FRAMES, FRAMES]
        assert received[1][:2] == [b"A0000" + bytes(30), b"A0001" + bytes(30)]
        # one packet per message and a few standalone SACKs, not a SACK packet per two
        # messages beside them (that would be 1.5 × FRAMES)
        for packets in sent:
            assert FRAMES <= packets <= 1.2 * FRAMES, sent
        assert sctp_acks.bundled_sacks(second.sctp) - bundled_before >= 0.8 * FRAMES
        assert outstanding(first) == 0 and outstanding(second) == 0  # all acknowledged
    finally:
        await first.close()
        await second.close()


async def test_one_way_data_is_acknowledged_every_second_packet() -> None:
    first, second, channels, received = await connected_pair()
    try:
        before = dtls_packets_sent(second)
        await exchange(channels, both_ways=False)
        sacks = dtls_packets_sent(second) - before
        assert len(received[1]) == FRAMES
        assert 0.4 * FRAMES <= sacks <= 0.65 * FRAMES, sacks  # not one per packet
        assert outstanding(first) == 0
    finally:
        await first.close()
        await second.close()


async def test_a_chunk_for_a_closed_dtls_transport_is_dropped_not_raised() -> None:
    """aiortc raised ConnectionError inside its own unawaited tasks (T3, FORWARD-TSN, flushes)
    once a connection dropped: an asyncio ERROR in the node's log per dropped peer."""
    first, second, _, _ = await connected_pair()
    try:
        sctp = first.sctp
        assert sctp is not None
        await sctp.transport.stop()
        for _ in range(100):  # its receive loop ends, then it says closed
            if sctp.transport.state == "closed":
                break
            await asyncio.sleep(0.05)
        assert sctp.transport.state == "closed"
        before = sctp_acks.dropped_after_close(sctp)  # aiortc's own, as it noticed the close
        forward_tsn = ForwardTsnChunk()
        forward_tsn.cumulative_tsn = 1
        await sctp._send_chunk(forward_tsn)  # stock aiortc: ConnectionError
        await sctp._send_chunk(DataChunk())
        assert sctp_acks.dropped_after_close(sctp) == before + 2
    finally:
        await first.close()
        await second.close()
