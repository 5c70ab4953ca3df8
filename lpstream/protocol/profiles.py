"""Codec profiles: quantiser steps and trained statistics per kind of motion.

docs/protocol.md §2.1 lists the steps of each profile.

A profile is fixed per encoder (`MotionEncoder(profile=...)`) and travels in-band: KEYPOINTS
uses the original MOTION keyframe (kind 0x10), every other profile a MOTION_PROFILED keyframe
(kind 0x80) whose byte 3 names it. Deltas inherit the profile of their reference, so a
decoder never needs to be configured.

Why more than one: landmark motion (the built-in backend's: expression deltas are measured
landmark displacements in face widths) has ~1 px of landmark jitter and larger
frame-to-frame changes than LivePortrait's implicit keypoints. Coded at the keypoints'
precision with their statistics it costs ~2.5× more; its renderer only needs ~1 px at a
512 px portrait.

A profile is immutable: refitting its statistics (table_fit.py) makes a new one with
`dataclasses.replace`, and a decoder learns it through `MotionDecoder(profiles=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpstream.protocol import keypoints_statistics, landmarks_statistics
from lpstream.protocol import motion_fields as mf
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.probability_tables import (
    MagnitudeTable,
    ResidualStatistics,
    build_delta_tables,
)


@dataclass(frozen=True, eq=False)
class CodecProfile:
    """Quantiser steps (base units, see motion_fields) plus the trained statistics."""

    profile_id: int
    """Byte 3 of a MOTION_PROFILED keyframe; 0 = KEYPOINTS (plain MOTION keyframes)."""
    name: str
    """Also names its generated statistics file, `<name>_statistics.py`."""
    statistics: ResidualStatistics
    fixed_steps: tuple[int, ...]
    """Step of every field except exp (exp entries are placeholders)."""
    exp_error_budget: int | None
    """KEYPOINTS: exp step = budget / scale (keypoint error independent of face size).
    None: the exp step is `exp_fixed_step` (landmark exp is in face widths already)."""
    exp_fixed_step: int = 0
    exp_fine_components: tuple[int, ...] = ()
    """exp components (0..62, row-major 21×3) coded with `exp_fine_step` instead."""
    exp_fine_step: int = 0
    dead_zone: float = 0.5
    """Encoder-only: a delta residual of ±1 step whose exact value is closer than
    dead_zone × step to the reference is sent as 0 (hysteresis against landmark jitter).
    0.5 is plain rounding. The decoder does not need it."""
    delta_tables: tuple[MagnitudeTable, ...] = field(init=False, repr=False)
    """Built from `statistics` (one per table level)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta_tables", build_delta_tables(self.statistics))

    def exp_step(self, scale_units: int) -> int:
        if self.exp_error_budget is None:
            return self.exp_fixed_step
        return min(
            mf.EXP_STEP_MAX, max(mf.EXP_STEP_MIN, self.exp_error_budget * 100_000 // scale_units)
        )

    def step(self, index: int, scale_units: int) -> int:
        """Quantiser step of field `index` given the already decoded scale."""
        if mf.EXP0 <= index < mf.EYE0:
            if index - mf.EXP0 in self.exp_fine_components:
                return self.exp_fine_step
            return self.exp_step(scale_units)
        return self.fixed_steps[index]


LANDMARKS_EYELID_Y = (31, 34, 37, 40)
"""exp components of landmark motion that are the vertical displacement of the four eyelid
control points (rows 10-13 of the built-in backend's control points;
tests/test_meshwarp_wire.py checks that they still are)."""

KEYPOINTS = CodecProfile(
    profile_id=0,
    name="keypoints",
    statistics=ResidualStatistics.from_module(keypoints_statistics),
    fixed_steps=tuple(mf.field_steps(100_000)),
    exp_error_budget=mf.EXP_ERROR_BUDGET,
)
"""LivePortrait implicit-keypoint motion (the steps of docs/protocol.md §2)."""

LANDMARKS = CodecProfile(
    profile_id=1,
    name="landmarks",
    statistics=ResidualStatistics.from_module(landmarks_statistics),
    # scale 2e-3, angles 0.1°, t 2e-3 (half-image units), eye/lip ratios 0.02 (the landmark
    # renderer ignores them; they are kept for the receiver's UI).
    fixed_steps=(200, 100, 100, 100, 200, 200) + (0,) * mf.NUM_EXP + (2000,) * 3,
    exp_error_budget=None,
    # exp is in face widths, whatever the driver's face size: a 4e-3 step, error below
    # 0.75 step with the dead zone. Measured: rendered mesh within 1.1 px of the uncoded
    # motion's on a 512 px portrait (pearl_earring, 146 px per face width), 20-32 B/frame.
    # (Depth twice as coarse saves 2 B/frame but costs 1.5 px: turned sources show it.)
    exp_fixed_step=400,
    # Eyelids move only ~0.03 face widths in a blink: half the step keeps small eyes'
    # blinks (carphone driving the astronaut: eye r 0.856 through the codec vs 0.863
    # uncoded; 0.837 at the uniform step) for 0.5 B/frame.
    exp_fine_components=LANDMARKS_EYELID_Y,
    exp_fine_step=200,
    dead_zone=0.75,
)
"""Landmark motion: exp = displacement of 21 control landmarks in face widths (§2.1)."""

PROFILES = {profile.profile_id: profile for profile in (KEYPOINTS, LANDMARKS)}
"""The built-in profiles by id: what `MotionDecoder()` understands."""


def profile_by_id(profile_id: int, profiles: dict[int, CodecProfile] = PROFILES) -> CodecProfile:
    try:
        return profiles[profile_id]
    except KeyError:
        raise ProtocolError(f"unknown motion codec profile {profile_id}") from None
