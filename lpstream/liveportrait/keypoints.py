"""LivePortrait keypoint math as pure, batch-aware functions.

Conventions: keypoints are (B, 21, 3) in the normalised [-1, 1]³ grid (x right, y down);
angles are degrees; rotation matrices are (B, 3, 3) *transposed* (`(Rz·Ry·Rx)ᵀ`) and
multiply row vectors from the right: `x @ R`. Every function takes torch tensors; given only
numpy arrays (and plain numbers) it computes in float32 and returns numpy arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

NUM_KEYPOINTS = 21
NUM_POSE_BINS = 66
POSE_BIN_DEGREES = 3.0
POSE_OFFSET_DEGREES = 97.5
"""Angle = expected bin index · 3° − 97.5° (bins cover about −97.5°…+97.5°)."""
STITCHING_OUTPUTS = 3 * NUM_KEYPOINTS + 2

ArrayLike = torch.Tensor | np.ndarray | float
Result = TypeVar("Result")


def _numpy_in_numpy_out(function: Callable[..., Result]) -> Callable[..., Result]:
    """Run `function` on tensors; when no argument is a tensor, give numpy results back.

    Non-tensor arguments (numpy arrays, numbers) become float32 tensors on the device of the
    first tensor argument, so mixed calls work too.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
        device = tensors[0].device if tensors else None
        converted_args = [_to_tensor(value, device) for value in args]
        converted_kwargs = {key: _to_tensor(value, device) for key, value in kwargs.items()}
        result = function(*converted_args, **converted_kwargs)
        if not tensors and isinstance(result, torch.Tensor):
            return result.numpy()
        return result

    return wrapper


def _to_tensor(value: Any, device: torch.device | None) -> Any:
    if isinstance(value, np.ndarray | np.generic | float | int) and not isinstance(value, bool):
        return torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)
    return value


def _batch_column(value: torch.Tensor, name: str) -> torch.Tensor:
    """A per-sample scalar as (B, 1): accepts (), (B,) or (B, 1)."""
    if value.ndim == 0:
        return value.reshape(1, 1)
    if value.ndim == 1:
        return value[:, None]
    if value.ndim == 2 and value.shape[1] == 1:
        return value
    raise ValueError(f"{name} must be a scalar, (B,) or (B, 1); got {tuple(value.shape)}")


def _keypoints(value: torch.Tensor, name: str) -> torch.Tensor:
    """Keypoints as (B, K, 3): accepts (K, 3), (B, 3K) or (B, K, 3)."""
    if value.ndim == 2 and value.shape[-1] == 3 and value.shape[0] == NUM_KEYPOINTS:
        return value[None]
    if value.ndim == 2 and value.shape[1] % 3 == 0:
        return value.reshape(value.shape[0], -1, 3)
    if value.ndim == 3 and value.shape[-1] == 3:
        return value
    raise ValueError(f"{name} must be (B, K, 3), (K, 3) or (B, 3K); got {tuple(value.shape)}")


@_numpy_in_numpy_out
def headpose_to_degrees(logits: ArrayLike) -> Any:
    """Angle in degrees from 66 bin logits: `Σ softmax(logits)·i · 3 − 97.5`; (..., 66) -> (...)."""
    assert isinstance(logits, torch.Tensor)
    if logits.shape[-1] != NUM_POSE_BINS:
        raise ValueError(f"pose logits need {NUM_POSE_BINS} bins, got shape {tuple(logits.shape)}")
    probabilities = torch.softmax(logits.float(), dim=-1)
    bins = torch.arange(NUM_POSE_BINS, dtype=probabilities.dtype, device=logits.device)
    return (probabilities * bins).sum(-1) * POSE_BIN_DEGREES - POSE_OFFSET_DEGREES


def _angles_in_degrees(value: torch.Tensor, name: str) -> torch.Tensor:
    """(B, 1) degrees from degrees ((), (B,), (B, 1)) or bin logits (B, 66)."""
    if value.ndim == 2 and value.shape[1] == NUM_POSE_BINS:
        value = headpose_to_degrees(value)
    return _batch_column(value.float(), name)


@_numpy_in_numpy_out
def rotation_matrix(pitch: ArrayLike, yaw: ArrayLike, roll: ArrayLike) -> Any:
    """`(Rz(roll)·Ry(yaw)·Rx(pitch))ᵀ`, (B, 3, 3), from angles in degrees (or (B, 66) logits)."""
    assert isinstance(pitch, torch.Tensor)
    assert isinstance(yaw, torch.Tensor) and isinstance(roll, torch.Tensor)
    x = torch.deg2rad(_angles_in_degrees(pitch, "pitch"))[:, 0]
    y = torch.deg2rad(_angles_in_degrees(yaw, "yaw"))[:, 0]
    z = torch.deg2rad(_angles_in_degrees(roll, "roll"))[:, 0]
    x, y, z = torch.broadcast_tensors(x, y, z)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rotate_x = torch.stack(
        [one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], dim=-1
    ).reshape(-1, 3, 3)
    rotate_y = torch.stack(
        [y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], dim=-1
    ).reshape(-1, 3, 3)
    rotate_z = torch.stack(
        [z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], dim=-1
    ).reshape(-1, 3, 3)
    return (rotate_z @ rotate_y @ rotate_x).transpose(1, 2)


@_numpy_in_numpy_out
def transform_keypoints_with_rotation(
    kp: ArrayLike, rotation: ArrayLike, exp: ArrayLike, scale: ArrayLike, t: ArrayLike
) -> Any:
    """`x = scale · (kp @ R + exp) + t` with t_z ignored; (B, 21, 3)."""
    assert isinstance(kp, torch.Tensor) and isinstance(rotation, torch.Tensor)
    assert isinstance(exp, torch.Tensor) and isinstance(scale, torch.Tensor)
    assert isinstance(t, torch.Tensor)
    canonical = _keypoints(kp, "kp")
    expression = _keypoints(exp, "exp")
    if rotation.ndim == 2:
        rotation = rotation[None]
    translation = t.reshape(-1, 3) if t.ndim <= 1 else t
    if translation.ndim != 2 or translation.shape[1] < 2:
        raise ValueError(f"t must be (B, 3) or (B, 2); got {tuple(t.shape)}")
    moved = canonical @ rotation + expression
    moved = moved * _batch_column(scale, "scale")[:, :, None]
    shift = F.pad(translation[:, None, :2], (0, 1))  # t_z is dropped: depth is not translated
    return moved + shift


@_numpy_in_numpy_out
def transform_keypoints(
    kp: ArrayLike,
    pitch: ArrayLike,
    yaw: ArrayLike,
    roll: ArrayLike,
    exp: ArrayLike,
    scale: ArrayLike,
    t: ArrayLike,
) -> Any:
    """Driving keypoints `scale · (kp @ R(pitch, yaw, roll) + exp) + t_xy`, (B, 21, 3).

    Angles are degrees ((), (B,), (B, 1)) or raw (B, 66) bin logits, so M's output dict can
    be passed as is.
    """
    return transform_keypoints_with_rotation(kp, rotation_matrix(pitch, yaw, roll), exp, scale, t)


@_numpy_in_numpy_out
def rotation_power(rotation: ArrayLike, alpha: ArrayLike) -> Any:
    """`R^alpha` for (B, 3, 3) rotations: same axis, `alpha` times the angle.

    alpha 0 gives the identity, 1 gives R. Valid for angles below 180° (head motion relative to
    a reference pose never comes close); at exactly 180° the axis is ambiguous.
    """
    assert isinstance(rotation, torch.Tensor) and isinstance(alpha, torch.Tensor)
    rotation = rotation[None] if rotation.ndim == 2 else rotation
    # R − Rᵀ = 2·sin(angle)·[axis]ₓ and trace(R) = 1 + 2·cos(angle). atan2 of the two keeps
    # small angles exact (acos of a cosine near 1 loses them in float32).
    skew = rotation - rotation.transpose(1, 2)
    axis = torch.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], dim=-1)
    cosine = (rotation.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    angle = torch.atan2(axis.norm(dim=-1) / 2.0, cosine)
    # At angle ≈ 0 the axis is irrelevant: any unit vector works.
    fallback = torch.tensor([0.0, 0.0, 1.0], dtype=axis.dtype, device=axis.device)
    axis = torch.where(axis.norm(dim=-1, keepdim=True) > 1e-12, axis, fallback)
    return axis_angle_matrix(F.normalize(axis, dim=-1), angle * alpha.reshape(-1).to(angle))


def axis_angle_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: the rotation by `angle` (B,) radians about unit `axis` (B, 3), (B, 3, 3)."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(cross)
    sine, cosine = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    return eye + sine * cross + (1.0 - cosine) * (cross @ cross)


@dataclass
class HeadMotion:
    """Pose, expression, scale and translation of a face, batched tensors."""

    rotation: torch.Tensor
    """(B, 3, 3) transposed rotation, `rotation_matrix(pitch, yaw, roll)`."""
    exp: torch.Tensor
    """(B, 21, 3) expression deltas."""
    scale: torch.Tensor
    """(B, 1)."""
    t: torch.Tensor
    """(B, 3); t_z is ignored when keypoints are built."""


def relative_motion(
    source: HeadMotion, driving: HeadMotion, reference: HeadMotion, head_motion: float = 1.0
) -> HeadMotion:
    """Transfer the driver's change since its reference frame onto the source.

    `R = (R_d·R_refᵀ)^h · R_s`, `exp = exp_s + exp_d − exp_ref`,
    `scale = scale_s · scale_d / scale_ref`, `t = t_s + h·(t_d − t_ref)` with t_z = 0;
    `h = head_motion` (1 = faithful; 0 freezes the head, keeping expressions).
    """
    relative_rotation = driving.rotation @ reference.rotation.transpose(1, 2)
    if head_motion != 1.0:
        alpha = torch.full((relative_rotation.shape[0],), float(head_motion))
        relative_rotation = rotation_power(relative_rotation, alpha.to(relative_rotation))
    t = source.t + head_motion * (driving.t - reference.t)
    t = torch.cat([t[:, :2], torch.zeros_like(t[:, 2:])], dim=1)
    return HeadMotion(
        rotation=relative_rotation @ source.rotation,
        exp=source.exp + driving.exp - reference.exp,
        scale=source.scale * driving.scale / reference.scale,
        t=t,
    )


def keypoints_from_motion(kp_canonical: torch.Tensor, motion: HeadMotion) -> torch.Tensor:
    """Driving keypoints of `motion` applied to canonical keypoints, (B, 21, 3)."""
    return transform_keypoints_with_rotation(
        kp_canonical, motion.rotation, motion.exp, motion.scale, motion.t
    )


@_numpy_in_numpy_out
def stitching_input(kp_source: ArrayLike, kp_driving: ArrayLike) -> Any:
    """S's input: `concat(x_s, x_d)` flattened, (B, 126)."""
    assert isinstance(kp_source, torch.Tensor) and isinstance(kp_driving, torch.Tensor)
    source, driving = _keypoints(kp_source, "kp_source"), _keypoints(kp_driving, "kp_driving")
    return torch.cat([source.flatten(1), driving.flatten(1)], dim=1)


@_numpy_in_numpy_out
def apply_stitching(kp_driving: ArrayLike, delta: ArrayLike) -> Any:
    """Add S's output (B, 65): `δ[:63]` as 21×3 to every keypoint, `δ[63:65]` to all x, y."""
    assert isinstance(kp_driving, torch.Tensor) and isinstance(delta, torch.Tensor)
    driving = _keypoints(kp_driving, "kp_driving")
    if delta.ndim != 2 or delta.shape[1] != driving.shape[1] * 3 + 2:
        raise ValueError(f"stitching delta must be (B, {driving.shape[1] * 3 + 2})")
    per_point = delta[:, : driving.shape[1] * 3].reshape(driving.shape)
    shift = F.pad(delta[:, None, -2:], (0, 1))
    return driving + per_point + shift


def stitch(
    network: Callable[[torch.Tensor], torch.Tensor],
    kp_source: torch.Tensor,
    kp_driving: torch.Tensor,
) -> torch.Tensor:
    """Driving keypoints corrected by the stitching network S so shoulders stay put."""
    return apply_stitching(kp_driving, network(stitching_input(kp_source, kp_driving)))


@_numpy_in_numpy_out
def eye_retargeting_input(
    kp_source: ArrayLike, source_eye_ratio: ArrayLike, target_eye_ratio: ArrayLike
) -> Any:
    """R_eye's input: `concat(x_s, [eye_src_L, eye_src_R, eye_target])`, (B, 66)."""
    assert isinstance(kp_source, torch.Tensor) and isinstance(source_eye_ratio, torch.Tensor)
    assert isinstance(target_eye_ratio, torch.Tensor)
    source = _keypoints(kp_source, "kp_source").flatten(1)
    ratios = source_eye_ratio.reshape(-1, 2).to(source)
    target = _batch_column(target_eye_ratio, "target_eye_ratio").to(source)
    return torch.cat([source, ratios, target], dim=1)


@_numpy_in_numpy_out
def lip_retargeting_input(
    kp_source: ArrayLike, source_lip_ratio: ArrayLike, target_lip_ratio: ArrayLike
) -> Any:
    """R_lip's input: `concat(x_s, [lip_src, lip_target])`, (B, 65)."""
    assert isinstance(kp_source, torch.Tensor) and isinstance(source_lip_ratio, torch.Tensor)
    assert isinstance(target_lip_ratio, torch.Tensor)
    source = _keypoints(kp_source, "kp_source").flatten(1)
    ratio = _batch_column(source_lip_ratio, "source_lip_ratio").to(source)
    target = _batch_column(target_lip_ratio, "target_lip_ratio").to(source)
    return torch.cat([source, ratio, target], dim=1)


def retargeting_delta(
    network: Callable[[torch.Tensor], torch.Tensor], features: torch.Tensor
) -> torch.Tensor:
    """A retargeting MLP's 63 outputs as a (B, 21, 3) keypoint delta."""
    return network(features).reshape(features.shape[0], -1, 3)


@_numpy_in_numpy_out
def apply_driving_multiplier(kp_source: ArrayLike, kp_driving: ArrayLike, multiplier: float) -> Any:
    """`x_s + (x_d − x_s) · multiplier` (1.0 leaves x_d unchanged)."""
    assert isinstance(kp_source, torch.Tensor) and isinstance(kp_driving, torch.Tensor)
    return kp_source + (kp_driving - kp_source) * multiplier
