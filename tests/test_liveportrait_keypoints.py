"""Keypoint math of `lpstream.liveportrait.keypoints`: closed-form cases and property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.liveportrait import headpose_to_degrees, rotation_matrix, transform_keypoints
from lpstream.liveportrait.keypoints import (
    HeadMotion,
    apply_driving_multiplier,
    apply_stitching,
    eye_retargeting_input,
    keypoints_from_motion,
    lip_retargeting_input,
    relative_motion,
    retargeting_delta,
    rotation_power,
    stitch,
    stitching_input,
)
from lpstream.liveportrait.networks.stitching_retargeting import stitching_network

angles = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
head_angles = st.floats(min_value=-60.0, max_value=60.0, allow_nan=False)
"""Relative head rotations stay far from 180°, where `rotation_power`'s axis is ambiguous."""


def one_hot_logits(bin_index: int, batch: int = 1) -> torch.Tensor:
    logits = torch.full((batch, 66), -1e4)
    logits[:, bin_index] = 1e4
    return logits


@pytest.mark.parametrize(("bin_index", "degrees"), [(0, -97.5), (32, -1.5), (33, 1.5), (65, 97.5)])
def test_one_hot_bins_map_to_bin_angle(bin_index: int, degrees: float) -> None:
    assert headpose_to_degrees(one_hot_logits(bin_index)).item() == pytest.approx(degrees)


def test_uniform_logits_give_the_middle_angle() -> None:
    # expected bin index 32.5 -> 32.5·3 − 97.5 = 0
    assert headpose_to_degrees(torch.zeros(3, 66)) == pytest.approx(torch.zeros(3), abs=1e-5)


def test_headpose_rejects_wrong_bin_count() -> None:
    with pytest.raises(ValueError, match="66"):
        headpose_to_degrees(torch.zeros(1, 65))


def test_identity_pose_is_identity_matrix() -> None:
    rotation = rotation_matrix(torch.zeros(4), torch.zeros(4), torch.zeros(4))
    assert rotation.shape == (4, 3, 3)
    torch.testing.assert_close(rotation, torch.eye(3).expand(4, 3, 3))


def test_yaw_90_rotates_x_into_z() -> None:
    # Row-vector convention: x @ (Ry)ᵀ = (Ry · xᵀ)ᵀ, and Ry(90°) maps x̂ to −ẑ, ẑ to x̂.
    rotation = rotation_matrix(torch.zeros(1), torch.tensor([90.0]), torch.zeros(1))
    x_axis = torch.tensor([[1.0, 0.0, 0.0]])
    z_axis = torch.tensor([[0.0, 0.0, 1.0]])
    torch.testing.assert_close(x_axis @ rotation[0], torch.tensor([[0.0, 0.0, -1.0]]))
    torch.testing.assert_close(z_axis @ rotation[0], torch.tensor([[1.0, 0.0, 0.0]]))


def test_pitch_and_roll_axes() -> None:
    pitch = rotation_matrix(torch.tensor([90.0]), torch.zeros(1), torch.zeros(1))[0]
    roll = rotation_matrix(torch.zeros(1), torch.zeros(1), torch.tensor([90.0]))[0]
    y_axis = torch.tensor([0.0, 1.0, 0.0])
    torch.testing.assert_close(y_axis @ pitch, torch.tensor([0.0, 0.0, 1.0]))  # Rx: ŷ -> ẑ
    torch.testing.assert_close(torch.tensor([1.0, 0.0, 0.0]) @ roll, y_axis)  # Rz: x̂ -> ŷ


def test_rotation_order_is_roll_yaw_pitch_transposed() -> None:
    p, y, r = 20.0, -35.0, 50.0
    rx = rotation_matrix(torch.tensor([p]), torch.zeros(1), torch.zeros(1))[0].T
    ry = rotation_matrix(torch.zeros(1), torch.tensor([y]), torch.zeros(1))[0].T
    rz = rotation_matrix(torch.zeros(1), torch.zeros(1), torch.tensor([r]))[0].T
    combined = rotation_matrix(torch.tensor([p]), torch.tensor([y]), torch.tensor([r]))[0]
    torch.testing.assert_close(combined, (rz @ ry @ rx).T)


def test_rotation_accepts_logits_and_numpy() -> None:
    from_logits = rotation_matrix(one_hot_logits(43), one_hot_logits(32), one_hot_logits(33))
    from_degrees = rotation_matrix(torch.tensor([31.5]), torch.tensor([-1.5]), torch.tensor([1.5]))
    torch.testing.assert_close(from_logits, from_degrees)
    as_numpy = rotation_matrix(np.array([31.5]), np.array([-1.5]), np.array([1.5]))
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    np.testing.assert_allclose(as_numpy, from_degrees.numpy(), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(angles, angles, angles)
def test_rotation_is_orthonormal_with_unit_determinant(pitch, yaw, roll) -> None:
    rotation = rotation_matrix(np.float64(pitch), np.float64(yaw), np.float64(roll))[0]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)


def test_transform_keypoints_closed_form() -> None:
    kp = torch.zeros(1, 21, 3)
    kp[0, 0] = torch.tensor([1.0, 0.0, 0.0])
    exp = torch.full((1, 21, 3), 0.1)
    result = transform_keypoints(
        kp, torch.zeros(1), torch.tensor([90.0]), torch.zeros(1), exp,
        torch.tensor([[2.0]]), torch.tensor([[0.3, -0.2, 5.0]]),
    )  # fmt: skip
    # 2·((1,0,0)@R + 0.1) + (0.3, −0.2, 0): t_z (5.0) is ignored
    torch.testing.assert_close(result[0, 0], torch.tensor([0.5, -0.0, -1.8]))
    torch.testing.assert_close(result[0, 1], torch.tensor([0.5, 0.0, 0.2]))


@settings(max_examples=40, deadline=None)
@given(angles, angles, angles, st.floats(0.5, 2.0), st.integers(0, 2**31 - 1))
def test_transform_matches_explicit_formula(pitch, yaw, roll, scale, seed) -> None:
    generator = np.random.default_rng(seed)
    kp = generator.normal(size=(2, 63)).astype(np.float32)
    exp = generator.normal(scale=0.05, size=(2, 63)).astype(np.float32)
    t = generator.normal(size=(2, 3)).astype(np.float32)
    angles_b = np.full(2, pitch), np.full(2, yaw), np.full(2, roll)
    result = transform_keypoints(kp, *angles_b, exp, np.full((2, 1), scale), t)
    rotation = rotation_matrix(*angles_b)
    expected = scale * (kp.reshape(2, 21, 3) @ rotation + exp.reshape(2, 21, 3))
    expected[:, :, :2] += t[:, None, :2]
    np.testing.assert_allclose(result, expected, atol=1e-4)


def random_motion(generator: torch.Generator, batch: int = 1) -> HeadMotion:
    pose = [torch.rand(batch, generator=generator) * 60 - 30 for _ in range(3)]
    return HeadMotion(
        rotation=rotation_matrix(*pose),
        exp=torch.randn(batch, 21, 3, generator=generator) * 0.03,
        scale=1.1 + torch.rand(batch, 1, generator=generator) * 0.5,
        t=torch.randn(batch, 3, generator=generator) * 0.1,
    )


def test_relative_motion_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    source, driving, reference = (random_motion(generator) for _ in range(3))
    new = relative_motion(source, driving, reference)
    expected_rotation = driving.rotation @ reference.rotation.transpose(1, 2) @ source.rotation
    torch.testing.assert_close(new.rotation, expected_rotation)
    torch.testing.assert_close(new.exp, source.exp + driving.exp - reference.exp)
    torch.testing.assert_close(new.scale, source.scale * driving.scale / reference.scale)
    expected_t = source.t + driving.t - reference.t
    torch.testing.assert_close(new.t[:, :2], expected_t[:, :2])
    assert torch.all(new.t[:, 2] == 0)


def test_driver_at_reference_reproduces_the_source() -> None:
    generator = torch.Generator().manual_seed(1)
    source, reference = random_motion(generator), random_motion(generator)
    new = relative_motion(source, reference, reference)
    kp = torch.randn(1, 21, 3, generator=generator)
    source_flat_t = HeadMotion(source.rotation, source.exp, source.scale, source.t)
    torch.testing.assert_close(
        keypoints_from_motion(kp, new), keypoints_from_motion(kp, source_flat_t), atol=1e-5, rtol=0
    )


def test_head_motion_zero_freezes_pose_but_keeps_expression() -> None:
    generator = torch.Generator().manual_seed(2)
    source, driving, reference = (random_motion(generator) for _ in range(3))
    frozen = relative_motion(source, driving, reference, head_motion=0.0)
    torch.testing.assert_close(frozen.rotation, source.rotation, atol=1e-5, rtol=0)
    torch.testing.assert_close(frozen.t[:, :2], source.t[:, :2])
    torch.testing.assert_close(frozen.exp, source.exp + driving.exp - reference.exp)


@settings(max_examples=40, deadline=None)
@given(head_angles, head_angles, head_angles, st.floats(-1.5, 1.5))
def test_rotation_power_composes(pitch, yaw, roll, alpha) -> None:
    rotation = rotation_matrix(torch.tensor([pitch]), torch.tensor([yaw]), torch.tensor([roll]))
    one = torch.ones(1)
    torch.testing.assert_close(rotation_power(rotation, one), rotation, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        rotation_power(rotation, torch.zeros(1)), torch.eye(3)[None], atol=1e-5, rtol=0
    )
    half = rotation_power(rotation, torch.full((1,), 0.5))
    torch.testing.assert_close(half @ half, rotation, atol=1e-4, rtol=0)
    scaled = rotation_power(rotation, torch.full((1,), alpha))
    assert torch.linalg.det(scaled).item() == pytest.approx(1.0, abs=1e-4)


def test_rotation_power_scales_the_angle() -> None:
    rotation = rotation_matrix(torch.zeros(1), torch.tensor([40.0]), torch.zeros(1))
    expected = rotation_matrix(torch.zeros(1), torch.tensor([10.0]), torch.zeros(1))
    torch.testing.assert_close(rotation_power(rotation, torch.tensor([0.25])), expected)


def test_stitching_application_formula() -> None:
    kp_driving = torch.randn(2, 21, 3)
    delta = torch.randn(2, 65)
    result = apply_stitching(kp_driving, delta)
    expected = kp_driving + delta[:, :63].reshape(2, 21, 3)
    expected[..., 0] += delta[:, 63:64]
    expected[..., 1] += delta[:, 64:65]
    torch.testing.assert_close(result, expected)


def test_stitch_feeds_source_then_driving_to_the_network() -> None:
    seen: list[torch.Tensor] = []

    def network(features: torch.Tensor) -> torch.Tensor:
        seen.append(features)
        return torch.zeros(features.shape[0], 65)

    x_s, x_d = torch.randn(1, 21, 3), torch.randn(1, 21, 3)
    torch.testing.assert_close(stitch(network, x_s, x_d), x_d)
    torch.testing.assert_close(seen[0], torch.cat([x_s.flatten(1), x_d.flatten(1)], dim=1))
    real = stitching_network().eval()
    assert stitch(real, x_s, x_d).shape == (1, 21, 3)
    assert stitching_input(x_s, x_d).shape == (1, 126)


def test_retargeting_inputs_and_delta() -> None:
    x_s = torch.randn(1, 21, 3)
    eye = eye_retargeting_input(x_s, torch.tensor([[0.3, 0.35]]), torch.tensor([0.1]))
    assert eye.shape == (1, 66)
    torch.testing.assert_close(eye[0, 63:], torch.tensor([0.3, 0.35, 0.1]))
    lip = lip_retargeting_input(x_s, torch.tensor(0.05), torch.tensor(0.4))
    assert lip.shape == (1, 65)
    torch.testing.assert_close(lip[0, 63:], torch.tensor([0.05, 0.4]))
    torch.testing.assert_close(lip[0, :63], x_s.flatten())
    delta = retargeting_delta(lambda features: features[:, :63] * 2, lip)
    torch.testing.assert_close(delta, 2 * x_s)


@settings(max_examples=30, deadline=None)
@given(st.floats(-2.0, 3.0))
def test_driving_multiplier_interpolates(multiplier) -> None:
    x_s, x_d = np.zeros((1, 21, 3), np.float32), np.ones((1, 21, 3), np.float32)
    result = apply_driving_multiplier(x_s, x_d, multiplier)
    np.testing.assert_allclose(result, np.full_like(x_s, multiplier), atol=1e-6)


def test_bad_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="kp"):
        transform_keypoints(torch.zeros(1, 21, 2), 0.0, 0.0, 0.0, torch.zeros(1, 63), 1.0, 0.0)
    with pytest.raises(ValueError, match="pitch"):
        rotation_matrix(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="delta"):
        apply_stitching(torch.zeros(1, 21, 3), torch.zeros(1, 63))


def test_degrees_helpers_agree_with_math() -> None:
    rotation = rotation_matrix(0.0, 0.0, 30.0)
    assert rotation[0, 0, 0] == pytest.approx(math.cos(math.radians(30)), abs=1e-6)
