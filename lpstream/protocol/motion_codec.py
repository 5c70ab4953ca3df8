"""Motion frames: the stateful encoder/decoder pair of the unreliable motion channel.

Keyframe = version, 0x10|seq[11:8], seq[7:0], arithmetic-coded body (or 0x80|seq[11:8],
seq[7:0], profile id, body for a non-LivePortrait codec profile); delta = version,
0xC0|ref_seq[5:0], arithmetic-coded body (docs/protocol.md §2.1, §3-4). The body holds flags,
timestamp and every field as a quantised residual against the reference (a frame the
receiver acknowledged) or, in a keyframe, against the trained neutral motion.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum

from lpstream.motion import Motion
from lpstream.protocol import motion_model as mm
from lpstream.protocol.arith import ArithmeticDecoder, ArithmeticEncoder, FrequencyTable
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.feedback import Feedback
from lpstream.protocol.profiles import KEYPOINTS, CodecProfile, profile_by_id
from lpstream.protocol.wire import (
    SEQ_MODULO,
    Kind,
    Reader,
    expect_kind,
    header,
    seq_delta,
)

MAX_GAP = 48
"""Oldest reference a delta frame may use, in frames; the receiver keeps STORE_FRAMES."""
STORE_FRAMES = 64
MAX_REORDER = 64
"""A packet older than this (serially) is taken as a new stream after a wrap, not as stale."""
MAX_EXTRAPOLATION_MS = 100
"""Concealment extrapolates at most this far past the last decoded frame, then holds."""
_TIMESTAMP_MODULO = 1 << 32
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
_TIMESTAMP_MODEL = mm.KEY_MODELS[mm.level_of(0.5)]


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
    """Deltas against this frame use its profile's steps and models."""


class _FieldCoder:
    """The per-field loop, written once for both directions so they cannot drift apart."""

    def __init__(
        self,
        ref: FrameRecord | None,
        gap: int,
        has_eye: bool,
        has_lip: bool,
        profile: CodecProfile = KEYPOINTS,
    ):
        self.ref = ref
        self.has_eye = has_eye
        self.has_lip = has_lip
        self.profile = profile
        self.tables = profile.tables
        self.context = (
            mm.DeltaContext(gap, ref.residuals if ref.gap else None, ref.gap, profile.tables)
            if ref
            else None
        )
        self.neutral = mm.neutral_values(profile.tables)
        self.values = [0] * mm.NUM_FIELDS
        self.residuals = [0] * mm.NUM_FIELDS
        self.fields = mm.FieldValues(self.values, has_eye, has_lip).coded_fields()
        self.observer = _FIELD_OBSERVER

    def prediction_and_model(self, index: int) -> tuple[int, mm.MagnitudeModel]:
        ref = self.ref
        if ref is not None and self._ref_has(index):
            assert self.context is not None
            level = mm.level_of(self.context.expected(index))
            return ref.values[index], self.profile.delta_models[level]
        return self.neutral[index], mm.KEY_MODELS[mm.level_of(self.tables.KEY_MEAN_ABS[index])]

    def _predicts(self, index: int) -> bool:
        """Whether field `index` is coded against the reference (not the neutral motion)."""
        return self.ref is not None and self._ref_has(index)

    def _ref_has(self, index: int) -> bool:
        assert self.ref is not None
        if index == mm.LIP:
            return self.ref.has_lip
        if index >= mm.EYE0:
            return self.ref.has_eye
        return True

    def run(self, coder, source: list[int] | None) -> None:
        encoding = source is not None
        dead_zone = self.profile.dead_zone
        for index in self.fields:
            prediction, model = self.prediction_and_model(index)
            step = self.profile.step(index, self.values[mm.SCALE])
            bound = mm.max_residual(index, step)
            if encoding:
                k = mm.quantise_residual(source[index], prediction, step)
                if (k == 1 or k == -1) and self._predicts(index):
                    # Dead zone (hysteresis): jitter just past half a step does not move the
                    # decoded value. Never triggers with plain rounding (dead_zone 0.5).
                    if abs(source[index] - prediction) < dead_zone * step:
                        k = 0
                model.encode(coder, k, bound)
            else:
                k = model.decode(coder, bound)
            if self.observer is not None:
                self.observer(index, model, k)
            self.values[index] = mm.clamp(prediction + k * step, index)
            self.residuals[index] = k
            if self.context is not None and self.ref is not None and self._ref_has(index):
                self.context.update(k)


_FIELD_OBSERVER = None
"""Hook (index, model, residual) for model fitting and cost analysis; None in normal use."""


@dataclass
class _SentFrame:
    record: FrameRecord
    acked: bool = False


class MotionEncoder:
    """Sender side: Motion (or None for "no face") → packet for the unreliable channel."""

    def __init__(self, max_gap: int = MAX_GAP, profile: CodecProfile = KEYPOINTS) -> None:
        """`profile`: quantisers and statistics of the motion's kind (see
        `lpstream.protocol.profile_for_backend`); it travels in every keyframe."""
        if not 1 <= max_gap <= MAX_GAP:
            raise ValueError(f"max_gap must be in 1..{MAX_GAP}")
        if not isinstance(profile, CodecProfile):
            raise TypeError(f"profile must be a CodecProfile, got {type(profile).__name__}")
        self.max_gap = max_gap
        self.profile = profile
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
        timestamp = int(timestamp_ms) % _TIMESTAMP_MODULO
        seq = self._seq
        self._seq = (seq + 1) % SEQ_MODULO
        self._history.pop(seq, None)
        self.frames_sent += 1
        if motion is None:
            return header(Kind.NO_FACE, seq) + struct.pack(">I", timestamp)
        units = mm.motion_to_units(motion)
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
            residual = (timestamp - predicted + _TIMESTAMP_MODULO // 2) % _TIMESTAMP_MODULO
            residual -= _TIMESTAMP_MODULO // 2
            _TIMESTAMP_MODEL.encode(coder, residual, _TIMESTAMP_MODULO // 2)
            interval = _interval_from(ref, timestamp, gap)
        fields = _FieldCoder(ref, gap, units.has_eye, units.has_lip, self.profile)
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
        if ref is None and self.profile is not KEYPOINTS:
            profile_byte = bytes((self.profile.profile_id,))
            return header(Kind.MOTION_PROFILED, seq) + profile_byte + coder.finish()
        if ref is None:
            return header(Kind.MOTION, seq) + coder.finish()
        return header(Kind.MOTION_DELTA, ref_seq) + coder.finish()

    def _interval(self, timestamp: int) -> int:
        if self._last_timestamp is None:
            return 33 * _INTERVAL_SUBDIV
        elapsed = (timestamp - self._last_timestamp) % _TIMESTAMP_MODULO
        return _clamp_interval(elapsed * _INTERVAL_SUBDIV)


def _clamp_interval(value: int) -> int:
    return min(_MAX_INTERVAL, max(1, value))


def _interval_from(ref: FrameRecord, timestamp: int, gap: int) -> int:
    elapsed = (timestamp - ref.timestamp_ms) % _TIMESTAMP_MODULO
    return _clamp_interval((elapsed * _INTERVAL_SUBDIV + gap // 2) // gap)


def _predict_timestamp(ref: FrameRecord, gap: int) -> int:
    ahead = (gap * ref.interval_sixteenths + _INTERVAL_SUBDIV // 2) // _INTERVAL_SUBDIV
    return (ref.timestamp_ms + ahead) % _TIMESTAMP_MODULO


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


@dataclass
class _Shown:
    seq: int
    timestamp_ms: int
    motion: Motion


@dataclass
class MotionDecoder:
    """Receiver side: packet → Motion to show (or None), plus feedback for the sender."""

    last_status: DecodeStatus = DecodeStatus.WAITING
    sender_has_face: bool = True
    """False after a no-face packet, until the next motion frame."""
    last_timestamp_ms: int | None = None
    """Sender timestamp of the last frame shown (mod 2^32)."""
    _store: dict[int, FrameRecord] = field(default_factory=dict)
    _newest: int | None = None
    _pending_acks: bool = False
    _keyframe_needed: bool = False
    _shown: list[_Shown] = field(default_factory=list)
    _last_seq: int | None = None

    @property
    def last_motion(self) -> Motion | None:
        """The last decoded frame (what to hold on screen)."""
        return self._shown[-1].motion.copy() if self._shown else None

    def decode(self, packet: bytes) -> Motion | None:
        kind, number, offset = expect_kind(
            packet, Kind.MOTION, Kind.MOTION_PROFILED, Kind.MOTION_DELTA, Kind.NO_FACE
        )
        assert number is not None
        if kind is Kind.MOTION_DELTA:
            seq, record = self._decode_delta(packet[offset:], number)
        elif kind is Kind.MOTION_PROFILED:
            if len(packet) <= offset:
                raise ProtocolError("motion keyframe: truncated before its profile byte")
            profile = profile_by_id(packet[offset])
            if profile is KEYPOINTS:
                raise ProtocolError("motion keyframe: profile 0 must use the MOTION kind")
            seq = number
            record = self._decode_keyframe(packet[offset + 1 :], profile)
        else:
            seq = number
            record = self._decode_keyframe(packet[offset:]) if kind is Kind.MOTION else None
        stale = seq is not None and self._is_stale(seq)
        if kind is Kind.NO_FACE:
            reader = Reader(packet, offset, "no-face packet")
            (timestamp,) = reader.unpack("I")
            reader.end()
            if stale:
                self.last_status = DecodeStatus.STALE
                return self._hold()
            self._last_seq = seq
            self.sender_has_face = False
            self.last_timestamp_ms = timestamp
            self.last_status = DecodeStatus.NO_FACE
            return None
        if record is None or seq is None:
            # The reference is gone (receiver restarted, or a packet later than ~200 frames).
            self._keyframe_needed = True
            self.last_status = DecodeStatus.CONCEALED if self._shown else DecodeStatus.WAITING
            if self._shown:
                return self.conceal(self._shown[-1].timestamp_ms + self._interval())
            return None
        self._remember(seq, record)
        if stale:
            self.last_status = DecodeStatus.STALE
            return self._hold()
        motion = mm.units_to_motion(
            mm.FieldValues(record.values, record.has_eye, record.has_lip)
        )
        self._last_seq = seq
        self.sender_has_face = True
        self.last_timestamp_ms = record.timestamp_ms
        self._shown = [*self._shown[-1:], _Shown(seq, record.timestamp_ms, motion)]
        self.last_status = DecodeStatus.DECODED
        return motion.copy()

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
        """Motion to show at `timestamp_ms` when no packet arrived in time.

        Linear extrapolation from the last two decoded frames, at most MAX_EXTRAPOLATION_MS
        past the last one (then it holds), so a loss burst never runs the face away.
        """
        if not self._shown:
            return None
        last = self._shown[-1]
        if len(self._shown) < 2 or not self.sender_has_face:
            return last.motion.copy()
        prev = self._shown[-2]
        span = (last.timestamp_ms - prev.timestamp_ms) % _TIMESTAMP_MODULO
        ahead = (int(timestamp_ms) - last.timestamp_ms) % _TIMESTAMP_MODULO
        if span == 0 or span > 4 * MAX_EXTRAPOLATION_MS or ahead > 1 << 31:
            return last.motion.copy()
        w = min(ahead, MAX_EXTRAPOLATION_MS) / span
        a, b = prev.motion, last.motion
        return Motion(
            pitch=b.pitch + w * (b.pitch - a.pitch),
            yaw=b.yaw + w * (b.yaw - a.yaw),
            roll=b.roll + w * (b.roll - a.roll),
            t=b.t + w * (b.t - a.t),
            scale=b.scale + w * (b.scale - a.scale),
            exp=b.exp + w * (b.exp - a.exp),
            eye_ratio=b.eye_ratio,
            lip_ratio=b.lip_ratio,
        )

    def _interval(self) -> int:
        """Milliseconds per frame, from the last two frames shown (33 before that)."""
        if len(self._shown) == 2:
            prev, last = self._shown
            frames = seq_delta(last.seq, prev.seq)
            elapsed = (last.timestamp_ms - prev.timestamp_ms) % _TIMESTAMP_MODULO
            if frames > 0:
                return max(1, elapsed // frames)
        return 33

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

    def _decode_keyframe(
        self, body: bytes, profile: CodecProfile = KEYPOINTS
    ) -> FrameRecord:
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
        residual = _TIMESTAMP_MODEL.decode(coder, _TIMESTAMP_MODULO // 2)
        timestamp = (_predict_timestamp(ref, gap) + residual) % _TIMESTAMP_MODULO
        interval = _interval_from(ref, timestamp, gap)
        record = self._decode_fields(
            coder, ref, gap, timestamp, interval, has_eye, has_lip, ref.profile
        )
        return (ref_seq + gap) % SEQ_MODULO, record

    @staticmethod
    def _decode_fields(
        coder, ref, gap, timestamp, interval, has_eye, has_lip, profile
    ) -> FrameRecord:
        fields = _FieldCoder(ref, gap, has_eye, has_lip, profile)
        fields.run(coder, None)
        return FrameRecord(
            fields.values, fields.residuals, gap, timestamp, interval, has_eye, has_lip, profile
        )
