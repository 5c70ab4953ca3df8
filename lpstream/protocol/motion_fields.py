"""Motion fields on the wire: their order, base units, clamp ranges and quantisers
(docs/protocol.md §2).

Pure integer functions: both ends quantise and reconstruct the same integers, so encoder and
decoder states never drift. The probability tables that code the residuals are in
probability_tables.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lpstream.motion import NUM_KEYPOINTS, Motion
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
