"""Quantisers and the static probability model of the motion codec (docs/protocol.md §4).

Everything a decoder must reproduce bit-exactly is done in Python integers, or in IEEE-754
double arithmetic restricted to + - * / and sqrt (correctly rounded on every platform), so
both ends build identical tables and contexts without shipping them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from lpstream.motion import NUM_KEYPOINTS, Motion
from lpstream.protocol import motion_tables as tables
from lpstream.protocol.arith import ArithmeticDecoder, ArithmeticEncoder, FrequencyTable
from lpstream.protocol.errors import ProtocolError

UNIT = 1e-5
"""Base unit of every coded field except angles (angles: 1e-3 degree)."""
ANGLE_UNIT = 1e-3

# Field order on the wire. Scale first: the exp step depends on the decoded scale.
SCALE, PITCH, YAW, ROLL, TX, TY = range(6)
EXP0 = 6
NUM_EXP = NUM_KEYPOINTS * 3
EYE0 = EXP0 + NUM_EXP  # 69, 70
LIP = EYE0 + 2  # 71
NUM_FIELDS = LIP + 1
NUM_CORE = EYE0  # fields every motion has

_ANGLE_LIMIT = 180_000
_RANGES: list[tuple[int, int]] = (
    [(5_000, 800_000)]  # scale 0.05 .. 8
    + [(-_ANGLE_LIMIT, _ANGLE_LIMIT)] * 3  # degrees ±180
    + [(-400_000, 400_000)] * 2  # t ±4
    + [(-100_000, 100_000)] * NUM_EXP  # exp ±1
    + [(0, 400_000)] * 3  # eye and lip ratios 0 .. 4
)
"""Clamp range of each field in base units. Out-of-range input is clamped, never wrapped."""

SCALE_STEP = 40  # 4e-4
ANGLE_STEP = 40  # 0.04 degree
T_STEP = 40  # 4e-4
RATIO_STEP = 1000  # 0.01: eye/lip ratios only steer retargeting MLPs
EXP_ERROR_BUDGET = 280
"""scale × exp step in base units (2.8e-3): the exp step shrinks as the face grows, so the
keypoint error s·Δexp stays the same for every scale."""
EXP_STEP_MIN, EXP_STEP_MAX = 20, 5_000


def exp_step(scale_units: int) -> int:
    return min(EXP_STEP_MAX, max(EXP_STEP_MIN, EXP_ERROR_BUDGET * 100_000 // scale_units))


def field_steps(scale_units: int) -> list[int]:
    """Quantiser step of each field in base units, given the decoded scale."""
    return (
        [SCALE_STEP]
        + [ANGLE_STEP] * 3
        + [T_STEP] * 2
        + [exp_step(scale_units)] * NUM_EXP
        + [RATIO_STEP] * 3
    )


def clamp(value: int, field: int) -> int:
    lo, hi = _RANGES[field]
    return lo if value < lo else hi if value > hi else value


def max_residual(field: int, step: int) -> int:
    lo, hi = _RANGES[field]
    return (hi - lo) // step + 1


def quantise_residual(value: int, prediction: int, step: int) -> int:
    """round((value - prediction) / step), ties away from zero, in integers."""
    diff = value - prediction
    if diff >= 0:
        return (2 * diff + step) // (2 * step)
    return -((-2 * diff + step) // (2 * step))


@dataclass
class FieldValues:
    """A motion in base units, plus which optional fields it carries."""

    values: list[int]
    """NUM_FIELDS integers; absent optional fields hold 0."""
    has_eye: bool
    has_lip: bool

    def coded_fields(self) -> list[int]:
        fields = list(range(NUM_CORE))
        if self.has_eye:
            fields += [EYE0, EYE0 + 1]
        if self.has_lip:
            fields.append(LIP)
        return fields


def _to_units(value: float, unit: float, field: int, name: str) -> int:
    if not math.isfinite(value):
        raise ProtocolError(f"motion field {name} is not finite ({value}); cannot encode it")
    lo, hi = _RANGES[field]
    scaled = value / unit
    # Clamp in float first so huge values never overflow int conversion.
    scaled = lo if scaled < lo else hi if scaled > hi else scaled
    return clamp(round(scaled), field)


def motion_to_units(motion: Motion) -> FieldValues:
    """Clamp (documented ranges) and convert to base units. Raises ProtocolError on NaN/inf."""
    values = [0] * NUM_FIELDS
    values[SCALE] = _to_units(motion.scale, UNIT, SCALE, "scale")
    values[PITCH] = _to_units(motion.pitch, ANGLE_UNIT, PITCH, "pitch")
    values[YAW] = _to_units(motion.yaw, ANGLE_UNIT, YAW, "yaw")
    values[ROLL] = _to_units(motion.roll, ANGLE_UNIT, ROLL, "roll")
    t = np.asarray(motion.t, dtype=np.float64)
    values[TX] = _to_units(float(t[0]), UNIT, TX, "t[0]")
    values[TY] = _to_units(float(t[1]), UNIT, TY, "t[1]")
    exp = np.asarray(motion.exp, dtype=np.float64).reshape(-1)
    for i in range(NUM_EXP):
        values[EXP0 + i] = _to_units(float(exp[i]), UNIT, EXP0 + i, f"exp[{i // 3},{i % 3}]")
    has_eye = motion.eye_ratio is not None
    if has_eye:
        eye = np.asarray(motion.eye_ratio, dtype=np.float64).reshape(-1)
        values[EYE0] = _to_units(float(eye[0]), UNIT, EYE0, "eye_ratio[0]")
        values[EYE0 + 1] = _to_units(float(eye[1]), UNIT, EYE0 + 1, "eye_ratio[1]")
    has_lip = motion.lip_ratio is not None
    if has_lip:
        values[LIP] = _to_units(float(motion.lip_ratio), UNIT, LIP, "lip_ratio")
    return FieldValues(values, has_eye, has_lip)


def units_to_motion(fields: FieldValues) -> Motion:
    v = fields.values
    exp = np.array(v[EXP0:EYE0], dtype=np.float64).reshape(NUM_KEYPOINTS, 3) * UNIT
    return Motion(
        pitch=v[PITCH] * ANGLE_UNIT,
        yaw=v[YAW] * ANGLE_UNIT,
        roll=v[ROLL] * ANGLE_UNIT,
        t=np.array([v[TX] * UNIT, v[TY] * UNIT, 0.0]),
        scale=v[SCALE] * UNIT,
        exp=exp,
        eye_ratio=np.array(v[EYE0 : EYE0 + 2]) * UNIT if fields.has_eye else None,
        lip_ratio=v[LIP] * UNIT if fields.has_lip else None,
    )


def neutral_values(model_tables: ModuleType = tables) -> list[int]:
    """Keyframe prediction: the typical motion of a profile (trained constants)."""
    return list(model_tables.NEUTRAL)


# ----------------------------------------------------------------------------------------
# Residual models.

TABLE_TOTAL_BITS = 16
_ESCAPE_FREQ = 2
_LEVEL_RATIO = math.sqrt(2.0)  # built with sqrt: bit-exact on every IEEE-754 platform
_LEVEL_MIN = 0.01
_LEVEL_MAX = 4_000.0


def _level_thresholds() -> list[float]:
    thresholds = []
    value = _LEVEL_MIN
    while value < _LEVEL_MAX:
        thresholds.append(value)
        value *= _LEVEL_RATIO
    return thresholds


THRESHOLDS = _level_thresholds()
"""Expected |residual| → model level: level i covers [THRESHOLDS[i], THRESHOLDS[i+1])."""


def level_of(mean_abs: float) -> int:
    return max(0, bisect_right(THRESHOLDS, mean_abs) - 1)


def level_centre(level: int) -> float:
    return THRESHOLDS[level] * math.sqrt(_LEVEL_RATIO)


def geometric_magnitudes(mean_abs: float, width: int) -> list[float]:
    """P(|k| = j), j = 0..width, of a two-sided geometric residual with E|k| = mean_abs."""
    m = mean_abs
    a = (math.sqrt(1.0 + m * m) - 1.0) / m
    weights = [1.0]
    w = 1.0
    for _ in range(width):
        w *= a
        weights.append(2.0 * w)
    total = sum(weights)
    return [x / total for x in weights]


def magnitude_width(level: int) -> int:
    return min(1024, int(6.0 * level_centre(level)) + 8)


@dataclass(frozen=True)
class MagnitudeModel:
    """|k| in 0..width with a frequency table, 'width+1' escapes to a uniform raw magnitude;
    a uniform sign bit follows every non-zero k (residuals are symmetric)."""

    table: FrequencyTable
    width: int

    @classmethod
    def from_probabilities(cls, probabilities: list[float]) -> MagnitudeModel:
        budget = (1 << TABLE_TOTAL_BITS) - _ESCAPE_FREQ
        freqs = [max(1, int(budget * p)) for p in probabilities] + [_ESCAPE_FREQ]
        return cls(FrequencyTable.from_frequencies(freqs), len(probabilities) - 1)

    def encode(self, coder: ArithmeticEncoder, k: int, bound: int) -> None:
        magnitude = -k if k < 0 else k
        if magnitude <= self.width:
            coder.encode(self.table, magnitude)
        else:
            coder.encode(self.table, self.width + 1)
            coder.encode_uniform(magnitude - self.width - 1, bound)
        if magnitude:
            coder.encode_uniform(int(k < 0), 2)

    def decode(self, coder: ArithmeticDecoder, bound: int) -> int:
        magnitude = coder.decode(self.table)
        if magnitude > self.width:
            magnitude = self.width + 1 + coder.decode_uniform(bound)
        if magnitude and coder.decode_uniform(2):
            return -magnitude
        return magnitude


def _parametric_model(level: int) -> MagnitudeModel:
    return MagnitudeModel.from_probabilities(
        geometric_magnitudes(level_centre(level), magnitude_width(level))
    )


def _trained_model(level: int, model_tables: ModuleType = tables) -> MagnitudeModel:
    """Delta residual model: trained magnitude counts (motion_tables) where there were
    enough samples, blended with the geometric shape so unseen magnitudes stay codable."""
    width = magnitude_width(level)
    shape = geometric_magnitudes(level_centre(level), width)
    trained = model_tables.DELTA_MAGNITUDE_COUNTS
    counts = trained[level] if level < len(trained) else []
    n = sum(counts)
    if n == 0:
        return MagnitudeModel.from_probabilities(shape)
    weight = n / (n + 400.0)
    probabilities = [
        weight * (counts[j] / n if j < len(counts) else 0.0) + (1.0 - weight) * shape[j]
        for j in range(width + 1)
    ]
    return MagnitudeModel.from_probabilities(probabilities)


KEY_MODELS = [_parametric_model(level) for level in range(len(THRESHOLDS))]
"""Keyframe and timestamp residuals: geometric shape only."""


def build_delta_models(model_tables: ModuleType = tables) -> list[MagnitudeModel]:
    """The delta models of one profile's trained tables (see lpstream.protocol.profiles)."""
    return [_trained_model(level, model_tables) for level in range(len(THRESHOLDS))]


DELTA_MODELS = build_delta_models(tables)
"""Delta models of the LivePortrait profile (rebuilt in place by rebuild_delta_models)."""
TRAINED_LEVEL_MAX_MEAN = 40.0
"""Levels whose expected |k| exceeds this use the geometric shape only (too few samples)."""
TRAINED_MAGNITUDE_MAX = 32
"""Trained histograms stop at this magnitude; the geometric shape covers the tail."""


def rebuild_delta_models() -> None:
    """Re-read motion_tables (used by model_fit after it changes the constants)."""
    DELTA_MODELS[:] = build_delta_models(tables)


def gap_factor(gap: int, model_tables: ModuleType = tables) -> float:
    factors = model_tables.GAP_FACTOR
    return factors[min(gap, len(factors) - 1)]


class DeltaContext:
    """Expected |residual| of each field of a delta frame, from acknowledged state only.

    Two signals: how fast the field moved when the reference itself was coded (its
    residuals, known to both ends), and how active the fields already coded in this packet
    were. Neither depends on packets the receiver might have lost.
    """

    def __init__(
        self,
        gap: int,
        ref_residuals: list[int] | None,
        ref_gap: int,
        model_tables: ModuleType = tables,
    ) -> None:
        self.tables = model_tables
        self.gap_scale = gap_factor(gap, model_tables)
        self.ref_residuals = ref_residuals
        self.speed_ratio = gap / ref_gap if ref_gap else 0.0
        self.coded_abs = 5.0
        self.expected_abs = 5.0
        self._last_base = 0.0

    def expected(self, field: int) -> float:
        base = self.tables.MEAN_ABS[field] * self.gap_scale
        if self.ref_residuals is not None:
            typical = self.tables.MEAN_SPEED[field]
            speed = abs(self.ref_residuals[field]) * self.speed_ratio
            base *= math.sqrt((speed + typical) / (2.0 * typical))
        self._last_base = base
        return base * self.coded_abs / self.expected_abs

    def update(self, residual: int) -> None:
        self.coded_abs += abs(residual)
        self.expected_abs += self._last_base
