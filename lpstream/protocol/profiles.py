"""Codec profiles: quantiser steps and trained constants per kind of motion (docs/protocol.md §2).

A profile is fixed per encoder (`MotionEncoder(profile=...)`) and travels in-band: the
LivePortrait profile uses the original MOTION keyframe (kind 0x10), every other profile a
MOTION_PROFILED keyframe (kind 0x80) whose byte 3 names it. Deltas inherit the profile of
their reference, so a decoder never needs to be configured.

Why more than one: the weight-free meshwarp backend's expression deltas are measured
landmark displacements in face widths, with ~1 px of landmark jitter and larger frame-to-frame
changes than LivePortrait's. Coded at LivePortrait's precision with LivePortrait's statistics
they cost ~2.5× more; its renderer only needs ~1 px at a 512 px portrait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from lpstream.protocol import motion_model as mm
from lpstream.protocol import motion_tables, motion_tables_meshwarp
from lpstream.protocol.errors import ProtocolError


@dataclass(eq=False)
class CodecProfile:
    """Quantiser steps (base units, see motion_model) plus the trained model constants."""

    profile_id: int
    """Byte 3 of a MOTION_PROFILED keyframe; 0 = LivePortrait (plain MOTION keyframes)."""
    name: str
    tables: ModuleType
    """NEUTRAL, MEAN_ABS, MEAN_SPEED, KEY_MEAN_ABS, GAP_FACTOR, DELTA_MAGNITUDE_COUNTS."""
    fixed_steps: list[int]
    """Step of every field except exp (exp entries are placeholders)."""
    exp_error_budget: int | None
    """LivePortrait: exp step = budget / scale (keypoint error independent of face size).
    None: the exp step is `exp_fixed_step` (meshwarp exp is in face widths already)."""
    exp_fixed_step: int = 0
    exp_fine_components: tuple[int, ...] = ()
    """exp components (0..62, row-major 21×3) coded with `exp_fine_step` instead."""
    exp_fine_step: int = 0
    dead_zone: float = 0.5
    """Encoder-only: a delta residual of ±1 step whose exact value is closer than
    dead_zone × step to the reference is sent as 0 (hysteresis against landmark jitter).
    0.5 is plain rounding. The decoder does not need it."""
    delta_models: list[mm.MagnitudeModel] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.delta_models:
            self.delta_models.extend(mm.build_delta_models(self.tables))

    def exp_step(self, scale_units: int) -> int:
        if self.exp_error_budget is None:
            return self.exp_fixed_step
        return min(
            mm.EXP_STEP_MAX, max(mm.EXP_STEP_MIN, self.exp_error_budget * 100_000 // scale_units)
        )

    def step(self, index: int, scale_units: int) -> int:
        """Quantiser step of field `index` given the already decoded scale."""
        if mm.EXP0 <= index < mm.EYE0:
            if index - mm.EXP0 in self.exp_fine_components:
                return self.exp_fine_step
            return self.exp_step(scale_units)
        return self.fixed_steps[index]

    def rebuild_delta_models(self) -> None:
        """Re-read the tables (model fitting changes them); the list is updated in place."""
        self.delta_models[:] = mm.build_delta_models(self.tables)


LANDMARKS_EYELID_Y = (31, 34, 37, 40)
"""exp components of the meshwarp motion that are the vertical displacement of the four
eyelid control points (rows 10-13 of lpstream.meshwarp.topology.CONTROL_POINTS)."""

KEYPOINTS = CodecProfile(
    profile_id=0,
    name="keypoints",
    tables=motion_tables,
    fixed_steps=mm.field_steps(100_000),
    exp_error_budget=mm.EXP_ERROR_BUDGET,
    delta_models=mm.DELTA_MODELS,  # the same list model_fit / the benchmark rebuild
)

LANDMARKS = CodecProfile(
    profile_id=1,
    name="landmarks",
    tables=motion_tables_meshwarp,
    # scale 2e-3, angles 0.1°, t 2e-3 (half-image units), eye/lip ratios 0.02 (the meshwarp
    # renderer ignores them; they are kept for the receiver's UI).
    fixed_steps=[200, 100, 100, 100, 200, 200] + [0] * mm.NUM_EXP + [2000] * 3,
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

PROFILES = {profile.profile_id: profile for profile in (KEYPOINTS, LANDMARKS)}
_BY_BACKEND = {"liveportrait": KEYPOINTS, "meshwarp": LANDMARKS, "builtin": LANDMARKS}


def profile_by_id(profile_id: int) -> CodecProfile:
    try:
        return PROFILES[profile_id]
    except KeyError:
        raise ProtocolError(f"unknown motion codec profile {profile_id}") from None


def profile_for_backend(name: str) -> CodecProfile:
    """The profile that suits motion from backend `name` (liveportrait, meshwarp, builtin)."""
    try:
        return _BY_BACKEND[name]
    except KeyError:
        known = ", ".join(sorted(_BY_BACKEND))
        raise ValueError(f"no codec profile for backend {name!r} (known: {known})") from None
