"""Motion frames: the stateful encoder/decoder pair of the unreliable motion channel.

The packet bytes (header, profile byte, body) are motion_packet.MotionPacket; this module
holds what both ends remember: sequence numbers, acknowledged references and the arithmetic-
coded body (docs/protocol.md §3-4). The body holds flags, timestamp and every field as a
quantised residual against the reference (a frame the receiver acknowledged) or, in a
keyframe, against the profile's neutral motion. Concealment is concealment.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from lpstream.motion import Motion
from lpstream.protocol import motion_fields as mf
from lpstream.protocol.arith import ArithmeticDecoder, ArithmeticEncoder, FrequencyTable
from lpstream.protocol.concealment import Concealment
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.feedback import Feedback
from lpstream.protocol.motion_packet import MotionPacket
from lpstream.protocol.probability_tables import (
    KEY_TABLES,
    DeltaContext,
    FieldObserver,
    MagnitudeTable,
    level_of,
)
from lpstream.protocol.profiles import KEYPOINTS, PROFILES, CodecProfile, profile_by_id
from lpstream.protocol.wire import (
    SEQ_MODULO,
    TIMESTAMP_MODULO,
    Kind,
    Reader,
    expect_kind,
    seq_delta,
)

MAX_GAP = 48
"""Oldest reference a delta frame may use, in frames; the receiver keeps STORE_FRAMES."""
STORE_FRAMES = 64
MAX_REORDER = 64
"""A packet older than this (serially) is taken as a new stream after a wrap, not as stale."""
_INTERVAL_SUBDIV = 16
"""Frame intervals are kept in 1/16 ms so 30 fps (33.3 ms) predicts timestamps exactly."""
_MAX_INTERVAL = 1000 * _INTERVAL_SUBDIV - 1

# Reference gap 1..MAX_GAP (symbol = gap - 1); feedback 3 frames late makes 3-4 usual.
_GAP_TABLE = FrequencyTable.from_frequencies(
    [3000] * 2 + [12000] * 2 + [2000] * 4 + [100] * (MAX_GAP - 8)
)
_CHECK_BITS = 2
"""Sequence bits 7..6 of the reference, coded in the body: with the 6 in the header they make
a wrong match need a packet overtaken by 200+ newer ones (about 7 s at 30 fps)."""
_FLAGS_SAME_TABLE = FrequencyTable.from_frequencies([4095, 1])
_TIMESTAMP_TABLE = KEY_TABLES[level_of(0.5)]


@dataclass
class FrameRecord:
    """What both ends remember about a frame that may serve as a reference."""

    values: list[int]
    residuals: list[int]
    gap: int
    timestamp_ms: int
    interval_sixteenths: int
    """Frame interval in 1/16 ms (sender timestamps per frame), predicts the next stamp."""
    has_eye: bool
    has_lip: bool
    profile: CodecProfile = KEYPOINTS
    """Deltas against this frame use its profile's steps and tables."""


class _FieldCoder:
    """The per-field loop, written once for both directions so they cannot drift apart."""

    def __init__(
        self,
        ref: FrameRecord | None,
        gap: int,
        has_eye: bool,
        has_lip: bool,
        profile: CodecProfile,
        observer: FieldObserver | None,
    ):
        self.ref = ref
        self.has_eye = has_eye
        self.has_lip = has_lip
        self.profile = profile
        self.statistics = profile.statistics
        self.context = (
            DeltaContext(gap, ref.residuals if ref.gap else None, ref.gap, profile.statistics)
            if ref
            else None
        )
        self.values = [0] * mf.NUM_FIELDS
        self.residuals = [0] * mf.NUM_FIELDS
        self.fields = mf.FieldValues(self.values, has_eye, has_lip).coded_fields()
        self.observer = observer

    def prediction_and_table(self, index: int) -> tuple[int, MagnitudeTable]:
        ref = self.ref
        if ref is not None and self._ref_has(index):
            assert self.context is not None
            level = level_of(self.context.expected(index))
            return ref.values[index], self.profile.delta_tables[level]
        statistics = self.statistics
        return statistics.neutral[index], KEY_TABLES[level_of(statistics.key_mean_abs[index])]

    def _predicts(self, index: int) -> bool:
        """Whether field `index` is coded against the reference (not the neutral motion)."""
        return self.ref is not None and self._ref_has(index)

    def _ref_has(self, index: int) -> bool:
        assert self.ref is not None
        if index == mf.LIP:
            return self.ref.has_lip
        if index >= mf.EYE0:
            return self.ref.has_eye
        return True

    def run(self, coder, source: list[int] | None) -> None:
        encoding = source is not None
        dead_zone = self.profile.dead_zone
        for index in self.fields:
            prediction, table = self.prediction_and_table(index)
            step = self.profile.step(index, self.values[mf.SCALE])
            bound = mf.max_residual(index, step)
            if encoding:
                k = mf.quantise_residual(source[index], prediction, step)
                if (k == 1 or k == -1) and self._predicts(index):
                    # Dead zone (hysteresis): jitter just past half a step does not move the
                    # decoded value. Never triggers with plain rounding (dead_zone 0.5).
                    if abs(source[index] - prediction) < dead_zone * step:
                        k = 0
                table.encode(coder, k, bound)
            else:
                k = table.decode(coder, bound)
            if self.observer is not None:
                self.observer(index, table, k)
            self.values[index] = mf.clamp(prediction + k * step, index)
            self.residuals[index] = k
            if self.context is not None and self.ref is not None and self._ref_has(index):
                self.context.update(k)


@dataclass
class _SentFrame:
    record: FrameRecord
    acked: bool = False


class MotionEncoder:
    """Sender side: Motion (or None for "no face") → packet for the unreliable channel."""

    def __init__(
        self,
        max_gap: int = MAX_GAP,
        profile: CodecProfile = KEYPOINTS,
        observer: FieldObserver | None = None,
    ) -> None:
        """`profile`: quantisers and statistics of the motion's kind (KEYPOINTS, LANDMARKS,
        or a refitted copy); it travels in every keyframe. `observer` sees every coded
        residual (table fitting, cost analysis)."""
        if not 1 <= max_gap <= MAX_GAP:
            raise ValueError(f"max_gap must be in 1..{MAX_GAP}")
        if not isinstance(profile, CodecProfile):
            raise TypeError(f"profile must be a CodecProfile, got {type(profile).__name__}")
        self.max_gap = max_gap
        self.profile = profile
        self.observer = observer
        self._seq = 0
        self._history: dict[int, _SentFrame] = {}
        self._last_timestamp: int | None = None
        self._force_keyframe = False
        self._ack_floor: int | None = None
        self.keyframes_sent = 0
        self.frames_sent = 0

    @property
    def next_seq(self) -> int:
        return self._seq

    def request_keyframe(self) -> None:
        self._force_keyframe = True

    def on_feedback(self, packet: bytes) -> None:
        """Apply a receiver Feedback (or KeyframeRequest) packet from the reliable channel."""
        kind, _, offset = expect_kind(packet, Kind.FEEDBACK, Kind.KEYFRAME_REQUEST)
        if kind is Kind.KEYFRAME_REQUEST:
            Reader(packet, offset, "keyframe request").end()
            self._reset_references()
            return
        feedback = Feedback.decode(packet)
        if feedback.keyframe_request:
            self._reset_references()
        for seq in feedback.acked:
            if self._ack_floor is not None and seq_delta(seq, self._ack_floor) < 0:
                continue  # acknowledged by the receiver state that asked us to start over
            sent = self._history.get(seq)
            if sent is not None:
                sent.acked = True
        newest = feedback.newest_seq
        if self._ack_floor is not None and newest is not None:
            if seq_delta(newest, self._ack_floor) >= 0:
                self._ack_floor = None  # the ordered channel has flushed the old feedback

    def _reset_references(self) -> None:
        # The receiver lost its state: nothing it acknowledged before can be trusted, and
        # acknowledgements still in flight from before the request must not count either.
        self._force_keyframe = True
        self._ack_floor = self._seq
        for sent in self._history.values():
            sent.acked = False

    def _choose_reference(self, seq: int) -> tuple[int, FrameRecord | None]:
        if self._force_keyframe:
            return 0, None
        for gap in range(1, self.max_gap + 1):
            sent = self._history.get((seq - gap) % SEQ_MODULO)
            if sent is not None and sent.acked:
                return gap, sent.record
        return 0, None

    def encode(self, motion: Motion | None, timestamp_ms: int) -> bytes:
        timestamp = int(timestamp_ms) % TIMESTAMP_MODULO
        seq = self._seq
        self._seq = (seq + 1) % SEQ_MODULO
        self._history.pop(seq, None)
        self.frames_sent += 1
        if motion is None:
            return MotionPacket.no_face(seq, timestamp).serialize()
        units = mf.motion_to_units(motion)
        gap, ref = self._choose_reference(seq)
        coder = ArithmeticEncoder()
        interval = self._interval(timestamp)
        ref_seq = (seq - gap) % SEQ_MODULO
        if ref is not None:
            coder.encode(_GAP_TABLE, gap - 1)
            coder.encode_uniform(ref_seq >> 6 & (1 << _CHECK_BITS) - 1, 1 << _CHECK_BITS)
        if ref is None:
            coder.encode_uniform(int(units.has_eye), 2)
            coder.encode_uniform(int(units.has_lip), 2)
            coder.encode_uniform(timestamp >> 16, 1 << 16)
            coder.encode_uniform(timestamp & 0xFFFF, 1 << 16)
            coder.encode_uniform(interval, _MAX_INTERVAL + 1)
            self._force_keyframe = False
            self.keyframes_sent += 1
        else:
            same = units.has_eye == ref.has_eye and units.has_lip == ref.has_lip
            coder.encode(_FLAGS_SAME_TABLE, 0 if same else 1)
            if not same:
                coder.encode_uniform(int(units.has_eye), 2)
                coder.encode_uniform(int(units.has_lip), 2)
            predicted = _predict_timestamp(ref, gap)
            residual = (timestamp - predicted + TIMESTAMP_MODULO // 2) % TIMESTAMP_MODULO
            residual -= TIMESTAMP_MODULO // 2
            _TIMESTAMP_TABLE.encode(coder, residual, TIMESTAMP_MODULO // 2)
            interval = _interval_from(ref, timestamp, gap)
        fields = _FieldCoder(ref, gap, units.has_eye, units.has_lip, self.profile, self.observer)
        fields.run(coder, units.values)
        record = FrameRecord(
            fields.values,
            fields.residuals,
            gap,
            timestamp,
            interval,
            units.has_eye,
            units.has_lip,
            self.profile,
        )
        self._history[seq] = _SentFrame(record)
        self._history.pop((seq - STORE_FRAMES) % SEQ_MODULO, None)
        self._last_timestamp = timestamp
        if ref is None:
            return MotionPacket.keyframe(seq, self.profile.profile_id, coder.finish()).serialize()
        return MotionPacket.delta(ref_seq, coder.finish()).serialize()

    def _interval(self, timestamp: int) -> int:
        if self._last_timestamp is None:
            return 33 * _INTERVAL_SUBDIV
        elapsed = (timestamp - self._last_timestamp) % TIMESTAMP_MODULO
        return _clamp_interval(elapsed * _INTERVAL_SUBDIV)


def _clamp_interval(value: int) -> int:
    return min(_MAX_INTERVAL, max(1, value))


def _interval_from(ref: FrameRecord, timestamp: int, gap: int) -> int:
    elapsed = (timestamp - ref.timestamp_ms) % TIMESTAMP_MODULO
    return _clamp_interval((elapsed * _INTERVAL_SUBDIV + gap // 2) // gap)


def _predict_timestamp(ref: FrameRecord, gap: int) -> int:
    ahead = (gap * ref.interval_sixteenths + _INTERVAL_SUBDIV // 2) // _INTERVAL_SUBDIV
    return (ref.timestamp_ms + ahead) % TIMESTAMP_MODULO


class DecodeStatus(Enum):
    """What the last `MotionDecoder.decode` call produced."""

    DECODED = "decoded"
    """A new frame, exact up to quantisation."""
    STALE = "stale"
    """An older packet than the one shown (reordered/duplicate): kept as reference, not shown."""
    CONCEALED = "concealed"
    """Undecodable (reference missing): bounded extrapolation of the last frames; keyframe asked."""
    NO_FACE = "no_face"
    """The sender sees no face: hold the last good frame."""
    WAITING = "waiting"
    """Nothing can be shown yet (no keyframe received)."""


class MotionDecoder:
    """Receiver side: packet → Motion to show (or None), plus feedback for the sender."""

    def __init__(
        self,
        profiles: Iterable[CodecProfile] = (),
        observer: FieldObserver | None = None,
    ) -> None:
        """`profiles`: keyframes naming these profile ids use them instead of the built-in
        profile of the same id (a refitted profile, see table_fit.refit). `observer` sees
        every decoded residual."""
        self.profiles = {**PROFILES, **{profile.profile_id: profile for profile in profiles}}
        self.observer = observer
        self.last_status = DecodeStatus.WAITING
        self.sender_has_face = True
        """False after a no-face packet, until the next motion frame."""
        self.last_timestamp_ms: int | None = None
        """Sender timestamp of the last frame shown (mod 2^32)."""
        self.concealment = Concealment()
        self._store: dict[int, FrameRecord] = {}
        self._newest: int | None = None
        self._pending_acks = False
        self._keyframe_needed = False
        self._last_seq: int | None = None

    @property
    def last_motion(self) -> Motion | None:
        """The last decoded frame (what to hold on screen)."""
        last = self.concealment.last
        return last.motion.copy() if last is not None else None

    def decode(self, packet: bytes) -> Motion | None:
        parsed = MotionPacket.parse(packet)
        if parsed.kind is Kind.NO_FACE:
            if self._is_stale(parsed.seq):
                self.last_status = DecodeStatus.STALE
                return self._hold()
            self._last_seq = parsed.seq
            self.sender_has_face = False
            self.last_timestamp_ms = parsed.timestamp_ms
            self.last_status = DecodeStatus.NO_FACE
            return None
        if parsed.kind is Kind.MOTION_DELTA:
            seq, record = self._decode_delta(parsed.body, parsed.reference_bits)
        else:
            profile = profile_by_id(parsed.profile_id, self.profiles)
            seq, record = parsed.seq, self._decode_keyframe(parsed.body, profile)
        if record is None or seq is None:
            # The reference is gone (receiver restarted, or a packet later than ~200 frames).
            self._keyframe_needed = True
            if self.concealment.last is None:
                self.last_status = DecodeStatus.WAITING
                return None
            self.last_status = DecodeStatus.CONCEALED
            return self.concealment.next_frame(self.sender_has_face)
        stale = self._is_stale(seq)
        self._remember(seq, record)
        if stale:
            self.last_status = DecodeStatus.STALE
            return self._hold()
        motion = mf.units_to_motion(mf.FieldValues(record.values, record.has_eye, record.has_lip))
        self._last_seq = seq
        self.sender_has_face = True
        self.last_timestamp_ms = record.timestamp_ms
        self.concealment.shown(seq, record.timestamp_ms, motion)
        self.last_status = DecodeStatus.DECODED
        return motion.copy()

    @property
    def keyframe_needed(self) -> bool:
        """The decoder cannot go on without a keyframe (its next feedback asks for one)."""
        return self._keyframe_needed

    def feedback(self) -> bytes | None:
        """Feedback for the reliable channel, or None when nothing changed since last call."""
        if not self._pending_acks and not self._keyframe_needed:
            return None
        acked: tuple[int, ...] = ()
        if self._newest is not None:
            acked = tuple(
                s for s in self._store if 0 <= seq_delta(self._newest, s) <= 32
            )
        packet = Feedback(self._newest, acked, self._keyframe_needed).encode()
        self._pending_acks = False
        self._keyframe_needed = False
        return packet

    def conceal(self, timestamp_ms: int) -> Motion | None:
        """Motion to show at `timestamp_ms` when no packet arrived in time (concealment.py:
        bounded extrapolation of the last two decoded frames, then hold)."""
        return self.concealment.at(timestamp_ms, self.sender_has_face)

    def _hold(self) -> Motion | None:
        return self.last_motion if self.sender_has_face else None

    def _is_stale(self, seq: int) -> bool:
        if self._last_seq is None:
            return False
        delta = seq_delta(seq, self._last_seq)
        return -MAX_REORDER <= delta <= 0

    def _remember(self, seq: int, record: FrameRecord) -> None:
        self._store[seq] = record
        if self._newest is None or seq_delta(seq, self._newest) > 0:
            self._newest = seq
        newest = self._newest
        for old in [s for s in self._store if not 0 <= seq_delta(newest, s) < STORE_FRAMES]:
            del self._store[old]
        self._pending_acks = True

    def _decode_keyframe(self, body: bytes, profile: CodecProfile) -> FrameRecord:
        coder = ArithmeticDecoder(body)
        has_eye = bool(coder.decode_uniform(2))
        has_lip = bool(coder.decode_uniform(2))
        timestamp = coder.decode_uniform(1 << 16) << 16
        timestamp |= coder.decode_uniform(1 << 16)
        interval = coder.decode_uniform(_MAX_INTERVAL + 1)
        if interval == 0:
            raise ProtocolError("motion keyframe: frame interval 0 is invalid")
        return self._decode_fields(
            coder, None, 0, timestamp, interval, has_eye, has_lip, profile
        )

    def _find_reference(self, low_bits: int, check: int) -> int | None:
        """The stored frame whose sequence number ends in these 8 bits (the store spans
        fewer than 64 consecutive numbers, so at most one matches)."""
        wanted = check << 6 | low_bits
        for seq in self._store:
            if seq & 0xFF == wanted:
                return seq
        return None

    def _decode_delta(self, body: bytes, low_bits: int) -> tuple[int | None, FrameRecord | None]:
        coder = ArithmeticDecoder(body)
        gap = coder.decode(_GAP_TABLE) + 1
        check = coder.decode_uniform(1 << _CHECK_BITS)
        ref_seq = self._find_reference(low_bits, check)
        if ref_seq is None:
            return None, None
        ref = self._store[ref_seq]
        if coder.decode(_FLAGS_SAME_TABLE) == 0:
            has_eye, has_lip = ref.has_eye, ref.has_lip
        else:
            has_eye = bool(coder.decode_uniform(2))
            has_lip = bool(coder.decode_uniform(2))
        residual = _TIMESTAMP_TABLE.decode(coder, TIMESTAMP_MODULO // 2)
        timestamp = (_predict_timestamp(ref, gap) + residual) % TIMESTAMP_MODULO
        interval = _interval_from(ref, timestamp, gap)
        record = self._decode_fields(
            coder, ref, gap, timestamp, interval, has_eye, has_lip, ref.profile
        )
        return (ref_seq + gap) % SEQ_MODULO, record

    def _decode_fields(
        self, coder, ref, gap, timestamp, interval, has_eye, has_lip, profile
    ) -> FrameRecord:
        fields = _FieldCoder(ref, gap, has_eye, has_lip, profile, self.observer)
        fields.run(coder, None)
        return FrameRecord(
            fields.values, fields.residuals, gap, timestamp, interval, has_eye, has_lip, profile
        )
