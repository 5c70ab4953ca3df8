"""Quantiser and clamping properties (pure functions of motion_fields), table levels."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.motion import Motion
from lpstream.protocol import KEYPOINTS, LANDMARKS
from lpstream.protocol import motion_fields as mf
from lpstream.protocol.probability_tables import level_of

integers = st.integers(-10**7, 10**7)


@settings(max_examples=200, deadline=None)
@given(integers, integers, st.integers(1, 5000))
def test_residual_reconstructs_within_half_a_step(value, prediction, step) -> None:
    k = mf.quantise_residual(value, prediction, step)
    assert abs(prediction + k * step - value) * 2 <= step


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-1e12, 1e12), st.floats(-1e12, 1e12), st.floats(-1e6, 1e6), st.floats(-50, 50)
)
def test_units_are_clamped_to_documented_ranges(angle, scale, t, exp) -> None:
    motion = Motion(angle, -angle, angle / 3, [t, -t, 0], scale, np.full((21, 3), exp))
    units = mf.motion_to_units(motion)
    decoded = mf.units_to_motion(units)
    for value in (decoded.pitch, decoded.yaw, decoded.roll):
        assert -180.0 <= value <= 180.0
    assert 0.05 <= decoded.scale <= 8.0
    assert np.all(np.abs(decoded.t) <= 4.0) and np.all(np.abs(decoded.exp) <= 1.0)
    if -180 <= angle <= 180:  # in range: only rounding to the base unit
        assert abs(decoded.pitch - angle) <= 0.0005 + 1e-9


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 5000.0))
def test_every_level_has_a_table_that_codes_its_range(mean_abs) -> None:
    level = level_of(mean_abs)
    for profile in (KEYPOINTS, LANDMARKS):
        assert 0 <= level < len(profile.delta_tables)
        assert profile.delta_tables[level].width >= 8
