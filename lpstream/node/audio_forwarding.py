"""Sound: every participant's microphone reaches every other, as the Opus it was sent in.

microphone RTP (a browser's audio transceiver 0) → `AudioSource` of that participant → one
`SlotTrack` per tile of each other local viewer → its RTCRtpSender (aiortc sends a packet it
is given as is) → the viewer's audio transceiver of that tile. Each packet leaves with the
speaker's own RTP timestamp (`rtp_origin.py`): a keypoint page stamps its motion on its
microphone's RTP clock, and a listener plays each frame when the voice of that time plays.

The node forwards and never decodes or re-encodes: per stream it costs a few dictionary
look-ups and a UDP write per packet instead of an Opus decode and one encode per listener,
it adds no delay and no second coding loss, and what each listener hears is exactly what the
speaker's encoder (tuned in the SDP, `opus_sdp.py`) made. What the node gives up is mixing
(each listener receives one stream per speaker, DTX makes the silent ones almost free) and
per-listener bitrates (every listener of a speaker gets the same rate).

What the node does read is each packet's RTP audio-level header extension (RFC 6464,
`urn:ietf:params:rtp-hdrext:ssrc-audio-level`, negotiated by aiortc and sent by browsers):
the speaker's level in −dBov, which moves an avatar's mouth while its face is gone
(`neutral_pose.py`). Forwarded packets go out without it (aiortc writes the extension only for
audio it encodes itself); pages measure the sound they decode instead.

Audio follows the same tile map as video (`show(slots)`): audio transceiver i of a page is
its tile i, so the page knows whose voice a track is, as it knows whose face a tile is. The
first audio transceiver also carries the page's own microphone up. None of this depends on
the page's uplink or downlink kind.

A participant hosted by another node is a source here too, fed by the node link instead of a
receiver (`node_links.py`, `link_audio.py`): the link carries each packet with the speaker's
RTP timestamp and sequence number, so a remote voice is published exactly as a local one.
The other way, a node link is a relay of each local source its far node needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lpstream.node.media_clock import VoiceArrival, join_tile_stream
from lpstream.node.meters import RateMeter
from lpstream.node.opus_sdp import tune_opus
from lpstream.node.rtp_origin import pts_for, timestamp_origin

OPUS_TIME_BASE = fractions.Fraction(1, 48000)
"""Opus RTP always runs a 48 kHz clock, whatever the audio bandwidth."""
QUEUE_PACKETS = 25
"""A listener's sender more than this far behind (about 1 s at 40 ms) loses the oldest."""
LEVEL_FRESH_S = 0.5
"""A level older than this says nothing about the voice now (DTX sends one packet per 400 ms
in silence, so a silent speaker keeps a fresh, quiet level)."""
SEQUENCE_MODULO = 1 << 16
LATE_WINDOW = 64
"""A packet up to this many sequence numbers behind the newest is late (reordered or
duplicated on the way) and dropped: the tracks renumber what they send, so a late packet
would reach the listener as a new one. Further behind is a new stream (a reconnected page)."""


@dataclass(frozen=True)
class AudioFrame:
    """One Opus packet as the speaker's browser sent it, with its RTP clock and number."""

    payload: bytes
    timestamp: int
    """RTP timestamp, 48 kHz, as the speaker's browser stamped it."""
    sequence: int
    """RTP sequence number, as the speaker's browser numbered it."""
    level_dbov: int | None = None
    """The speaker's level in this packet (RFC 6464 audio-level extension: 0 loudest … 127
    silence, −dBov), None if the packet had none."""


class AudioSource:
    """One participant's microphone as received: packets fanned out to listeners (tracks of
    local tiles) and relays (node links), each given the `AudioFrame`."""

    def __init__(self, participant_id: str) -> None:
        self.id = participant_id
        self.listeners: set[Callable[[AudioFrame], None]] = set()
        self.relays: set[Callable[[AudioFrame], None]] = set()
        self.bytes = RateMeter()
        self.packets = 0
        self.late = 0
        self.newest: int | None = None
        """Sequence number of the newest packet published."""
        self.arrival = VoiceArrival()
        """When the voice of each RTP time reached this node (lip sync, `media_clock.py`)."""
        self._level: tuple[int, float] | None = None

    def publish(
        self,
        payload: bytes,
        rtp_timestamp: int,
        sequence: int | None = None,
        level_dbov: int | None = None,
    ) -> None:
        """A packet as received; `level_dbov` from its audio-level extension, if it had one."""
        if sequence is not None:
            if self.newest is not None:
                behind = (self.newest - sequence) % SEQUENCE_MODULO
                if behind < LATE_WINDOW:
                    self.late += 1
                    return
            self.newest = sequence
        self.bytes.add(len(payload))
        self.packets += 1
        self.arrival.observe(rtp_timestamp, time.monotonic())
        if level_dbov is not None:
            self._level = (level_dbov, time.monotonic())
        frame = AudioFrame(payload, rtp_timestamp, sequence or 0, level_dbov)
        if sequence is not None:
            for relay in list(self.relays):
                relay(frame)
        for listener in list(self.listeners):
            listener(frame)

    def level(self) -> int | None:
        """The speaker's level now (−dBov, 0 loudest … 127 silence), None if unknown."""
        if self._level is None or time.monotonic() - self._level[1] > LEVEL_FRESH_S:
            return None
        return self._level[0]


class SlotTrack(MediaStreamTrack):
    """An outgoing audio track that plays whatever source its tile shows (silence: none)."""

    kind = "audio"

    def __init__(self, delay: Callable[[], float] = lambda: 0.0) -> None:
        """`delay`: how long (s) each packet is held after it arrived: the lag of the tile's
        node-rendered video, so both leave equally late (lip sync, `media_clock.py`)."""
        super().__init__()
        self._queue: asyncio.Queue[tuple[AudioFrame, float]] = asyncio.Queue()
        self.source: AudioSource | None = None
        self.delay = delay
        self.sender: Any = None
        """The RTCRtpSender sending this track (set by `AudioSeat.prepare`): its timestamp
        origin is taken off each packet so the speaker's RTP timestamps reach the listener."""
        self._origin: int | None = None

    def listen_to(self, source: AudioSource | None) -> None:
        if self.source is source:
            return
        if self.source is not None:
            self.source.listeners.discard(self._feed)
        self.source = source
        if source is not None:
            source.listeners.add(self._feed)

    def _feed(self, frame: AudioFrame) -> None:
        if self._queue.qsize() >= QUEUE_PACKETS:
            self._queue.get_nowait()
        self._queue.put_nowait((frame, time.monotonic()))

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        frame, arrived = await self._queue.get()
        wait = arrived + self.delay() - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._origin is None and self.sender is not None:
            self._origin = timestamp_origin(self.sender)
        packet = av.Packet(frame.payload)
        origin = self._origin
        packet.pts = frame.timestamp if origin is None else pts_for(frame.timestamp, origin)
        packet.time_base = OPUS_TIME_BASE
        return packet

    def stop(self) -> None:
        self.listen_to(None)
        super().stop()


class AudioForwarding:
    """Node-wide: the microphone of every participant hosted here, by id."""

    def __init__(self) -> None:
        self.sources: dict[str, AudioSource] = {}

    def source(self, participant_id: str) -> AudioSource:
        found = self.sources.get(participant_id)
        if found is None:
            found = self.sources[participant_id] = AudioSource(participant_id)
        return found

    def voice_level(self, participant_id: str) -> int | None:
        """How loud `participant_id` speaks now (`AudioSource.level`); None if not hosted here."""
        source = self.sources.get(participant_id)
        return source.level() if source is not None else None

    def voice_arrival(self, participant_id: str) -> VoiceArrival | None:
        """When `participant_id`'s voice of each moment reached this node; None if unheard."""
        source = self.sources.get(participant_id)
        return source.arrival if source is not None else None

    def seat(self, participant_id: str) -> AudioSeat:
        """The audio of one browser session."""
        return AudioSeat(self, participant_id)

    def forget(self, participant_id: str) -> None:
        """The participant left the room: whoever listened to it hears nothing more."""
        source = self.sources.pop(participant_id, None)
        if source is not None:
            source.listeners.clear()
            source.relays.clear()


class AudioSeat:
    """A session's microphone (in) and one track per tile (out)."""

    def __init__(self, forwarding: AudioForwarding, participant_id: str) -> None:
        self._forwarding = forwarding
        self.id = participant_id
        self.tracks: list[SlotTrack] = []
        self.slots: list[str | None] = []
        self.microphone = False

    def adopt_track(self, track: MediaStreamTrack, receiver: Any) -> bool:
        if track.kind != "audio":
            return False
        if not self.microphone:  # the first audio track is the microphone; others are silent
            self.microphone = True
            self._forward_rtp(receiver)
        return True

    def _forward_rtp(self, receiver: Any) -> None:
        """Take the Opus payloads off the receiver before aiortc would decode them: the node
        never needs the sound, only the packets (aiortc has no public hook for RTP)."""
        source = self._forwarding.source(self.id)
        source.newest = None  # a new microphone numbers its packets afresh

        async def forwarding(packet: Any, arrival_time_ms: int) -> None:
            if packet.payload:
                level = packet.extensions.audio_level  # (voice activity, −dBov) or None
                source.publish(
                    packet.payload,
                    packet.timestamp,
                    packet.sequence_number,
                    level[1] if level else None,
                )

        receiver._handle_rtp_packet = forwarding

    def prepare(self, pc: Any, delay: Callable[[int], float] = lambda slot: 0.0) -> None:
        """One outgoing track per audio transceiver the page offered (its tiles), each in its
        tile's stream; `delay(slot)` is how long that tile's voice is held (`SlotTrack`)."""
        offered = sum(1 for t in pc.getTransceivers() if t.kind == "audio")
        self.tracks = [SlotTrack(lambda slot=slot: delay(slot)) for slot in range(offered)]
        for slot, track in enumerate(self.tracks):
            track.sender = pc.addTrack(track)
            join_tile_stream(track.sender, slot)
        self.show(self.slots)

    def tune_answer(self, sdp: str) -> str:
        """What the page's Opus encoder should do (it reads this from our answer)."""
        return tune_opus(sdp)

    def show(self, slots: list[str | None]) -> None:
        self.slots = list(slots)
        for slot, track in enumerate(self.tracks):
            source_id = slots[slot] if slot < len(slots) else None
            track.listen_to(self._forwarding.source(source_id) if source_id else None)

    def figures(self) -> dict[str, float]:
        source = self._forwarding.sources.get(self.id)
        return {"audio_kbps": source.bytes.rate() * 8 / 1000 if source else 0.0}

    async def close(self) -> None:
        for track in self.tracks:
            with contextlib.suppress(Exception):
                track.stop()
