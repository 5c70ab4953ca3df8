"""Rigid head pose from 3-D landmarks: a weighted similarity fit to the canonical face.

Frames: image points are (x right, y down, z away from the viewer); the canonical face is
(x right, y up, z towards the viewer). `image_to_model_frame` flips y and z so both are
right-handed with the same axes, and a fit gives `points ≈ s · R · canonical + t`.

Angles follow LivePortrait (`lpstream.liveportrait.keypoints.rotation_matrix`): the
column-vector rotation is Rz(roll)·Ry(yaw)·Rx(pitch); LivePortrait stores its transpose
because it multiplies row vectors. Pitch is positive when the
head looks down, yaw positive when the face turns towards the image's right, roll positive
for a counter-clockwise tilt as seen in the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FLIP_Y_Z = np.array([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class SimilarityFit:
    """`points ≈ scale · rotation @ model + translation` (column vectors)."""

    scale: float
    rotation: np.ndarray
    """(3, 3) proper rotation."""
    translation: np.ndarray
    """(3,)"""

    def apply(self, model_points: np.ndarray) -> np.ndarray:
        return self.scale * model_points @ self.rotation.T + self.translation

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Model-frame coordinates of `points` (exact inverse of `apply`)."""
        return (points - self.translation) @ self.rotation / self.scale


def image_to_model_frame(points: np.ndarray) -> np.ndarray:
    """(N, 3) image-frame points -> right-handed y-up, z-towards-viewer frame (pixels)."""
    return np.asarray(points, dtype=np.float64) * _FLIP_Y_Z


def model_to_image_frame(points: np.ndarray) -> np.ndarray:
    """Inverse of `image_to_model_frame` (the flip is its own inverse)."""
    return np.asarray(points, dtype=np.float64) * _FLIP_Y_Z


def fit_similarity(model: np.ndarray, observed: np.ndarray, weights: np.ndarray) -> SimilarityFit:
    """Weighted least-squares similarity transform (Umeyama) mapping `model` onto `observed`."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    model_mean = w @ model
    observed_mean = w @ observed
    model_c = model - model_mean
    observed_c = observed - observed_mean
    covariance = (observed_c * w[:, None]).T @ model_c
    u, singular, vt = np.linalg.svd(covariance)
    correction = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        correction[2] = -1.0  # keep a rotation, never a reflection
    rotation = (u * correction) @ vt
    model_variance = float(w @ np.sum(model_c**2, axis=1))
    scale = float(singular @ correction) / model_variance
    translation = observed_mean - scale * rotation @ model_mean
    return SimilarityFit(scale, rotation, translation)


def rotation_from_euler(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Column-vector rotation Rz(roll)·Ry(yaw)·Rx(pitch), angles in degrees."""
    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a column-vector rotation (inverse of the above)."""
    yaw = np.arcsin(np.clip(-rotation[2, 0], -1.0, 1.0))
    pitch = np.arctan2(rotation[2, 1], rotation[2, 2])
    roll = np.arctan2(rotation[1, 0], rotation[0, 0])
    return float(np.degrees(pitch)), float(np.degrees(yaw)), float(np.degrees(roll))


def scale_rotation(rotation: np.ndarray, factor: float) -> np.ndarray:
    """The rotation about the same axis by `factor` times the angle (head-motion control)."""
    if factor == 1.0:
        return rotation
    angle = np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-9:
        return np.eye(3)
    axis = np.array(
        [
            rotation[2, 1] - rotation[1, 2],
            rotation[0, 2] - rotation[2, 0],
            rotation[1, 0] - rotation[0, 1],
        ]
    )
    norm = np.linalg.norm(axis)
    if norm < 1e-12:  # angle ~ pi: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(rotation) + 1.0) / 2.0, 0.0, None))
        norm = np.linalg.norm(axis)
    axis = axis / norm
    theta = angle * factor
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)
