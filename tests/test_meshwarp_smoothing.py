"""The sender's One-Euro motion smoother: removes jitter, keeps the signal, restarts cleanly."""

from __future__ import annotations

import numpy as np

from lpstream.meshwarp.smoothing import MotionSmoother
from lpstream.motion import Motion


def _motion(yaw: float, exp_value: float) -> Motion:
    return Motion(0.0, yaw, 0.0, np.zeros(3), 1.2, np.full((21, 3), exp_value))


def test_first_motion_passes_unchanged_and_constant_input_stays_constant() -> None:
    smoother = MotionSmoother()
    first = smoother.smooth(_motion(10.0, 0.05), 0.0)
    assert first.yaw == 10.0 and np.allclose(first.exp, 0.05)
    for step in range(1, 10):
        same = smoother.smooth(_motion(10.0, 0.05), step * 33.3)
        assert abs(same.yaw - 10.0) < 1e-9 and np.allclose(same.exp, 0.05)


def test_jitter_is_reduced_and_a_step_is_followed() -> None:
    rng = np.random.default_rng(0)
    smoother = MotionSmoother()
    raw = 5.0 + rng.normal(0, 0.5, 200)
    out = np.array([smoother.smooth(_motion(v, 0.0), i * 33.3).yaw for i, v in enumerate(raw)])
    assert np.diff(out[20:]).std() < 0.8 * np.diff(raw[20:]).std()
    smoother.reset()
    step = [smoother.smooth(_motion(0.0 if i < 5 else 20.0, 0.0), i * 33.3).yaw for i in range(20)]
    assert step[5] > 5.0 and abs(step[-1] - 20.0) < 0.5  # follows within a few frames


def test_reset_and_time_going_backwards_restart_the_filter() -> None:
    smoother = MotionSmoother()
    smoother.smooth(_motion(0.0, 0.0), 0.0)
    smoother.reset()
    assert smoother.smooth(_motion(30.0, 0.1), 33.0).yaw == 30.0
    assert smoother.smooth(_motion(-30.0, 0.1), 10.0).yaw == -30.0  # older timestamp
