"""Landmarks <-> compact motion: head pose, face size and position, 21 expression deltas.

A face's 478 landmarks are explained as a rigid similarity (pose, scale, position) applied to a
face shape in a head-fixed frame measured in face units (`topology.FACE_UNIT_CM`). The motion
carries the pose plus the displacement of 21 control landmarks of that shape from the
canonical (neutral) face: 69 numbers, like LivePortrait's, in LivePortrait-like ranges. The
four lid control points' z carry the gaze instead (`lpstream.meshwarp.gaze`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.meshwarp.canonical import NUM_MESH_VERTICES
from lpstream.meshwarp.gaze import IRIS_CENTRES, iris_offsets, put_gaze
from lpstream.meshwarp.pose import (
    SimilarityFit,
    euler_from_rotation,
    fit_similarity,
    image_to_model_frame,
)
from lpstream.meshwarp.topology import CONTROL_POINTS, FaceTopology
from lpstream.motion import Motion

EXP_LIMIT = 0.9
"""|exp| bound: the wire codec cannot carry beyond ±1; real deltas stay well below 0.3."""
SCALE_RANGE = (0.05, 8.0)
TRANSLATION_LIMIT = 4.0


@dataclass(frozen=True)
class FaceFit:
    """One face explained as `pose.apply(shape)` in the y-up model frame (pixels)."""

    pose: SimilarityFit
    """Maps face-unit shape coordinates to model-frame pixels."""
    shape: np.ndarray
    """(468, 3) face shape in the head-fixed frame, face units (pose removed exactly)."""


def fit_face(points: np.ndarray, topology: FaceTopology) -> FaceFit:
    """Fit the canonical face's rigid landmarks to image landmarks (478 or 468, 3)."""
    observed = image_to_model_frame(points[:NUM_MESH_VERTICES])
    canonical = topology.canonical
    pose = fit_similarity(
        topology.model_vertices[canonical.rigid_ids],
        observed[canonical.rigid_ids],
        canonical.rigid_weights,
    )
    return FaceFit(pose, pose.invert(observed))


def half_extent(image_size: tuple[int, int]) -> float:
    """Position and scale are measured in half the image's shorter side."""
    return min(image_size) / 2.0


def motion_from_landmarks(
    points: np.ndarray, image_size: tuple[int, int], topology: FaceTopology
) -> Motion:
    """The motion of one face: `points` (478, 3) image pixels, `image_size` (w, h)."""
    fit = fit_face(points, topology)
    pitch, yaw, roll = euler_from_rotation(fit.pose.rotation)
    unit = half_extent(image_size)
    width, height = image_size
    # Model frame has y up; the motion's translation uses the image's y-down convention.
    centre_x = fit.pose.translation[0]
    centre_y = -fit.pose.translation[1]
    t = np.array([(centre_x - width / 2.0) / unit, (centre_y - height / 2.0) / unit, 0.0])
    exp = fit.shape[list(CONTROL_POINTS)] - topology.model_vertices[list(CONTROL_POINTS)]
    exp = np.clip(exp, -EXP_LIMIT, EXP_LIMIT)
    if len(points) > max(IRIS_CENTRES):
        put_gaze(exp, iris_offsets(points))  # lid z carries the gaze (lpstream.meshwarp.gaze)
    return Motion(
        pitch=pitch,
        yaw=yaw,
        roll=roll,
        t=np.clip(t, -TRANSLATION_LIMIT, TRANSLATION_LIMIT),
        scale=float(np.clip(fit.pose.scale / unit, *SCALE_RANGE)),
        exp=exp,
        eye_ratio=eye_open_ratio(points),
        lip_ratio=lip_open_ratio(points),
    )
