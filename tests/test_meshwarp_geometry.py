"""Canonical face, mesh topology and pose math of the built-in backend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.meshwarp.canonical import NUM_MESH_VERTICES, load_canonical_face
from lpstream.meshwarp.pose import (
    euler_from_rotation,
    fit_similarity,
    rotation_from_euler,
    scale_rotation,
)
from lpstream.meshwarp.topology import (
    CONTROL_POINTS,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LOWER_INNER_LIP,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
    UPPER_INNER_LIP,
    face_topology,
)

angles = st.floats(-80.0, 80.0)


def test_canonical_face_is_read_from_the_landmarker_model() -> None:
    face = load_canonical_face()
    assert face.vertices.shape == (NUM_MESH_VERTICES, 3)
    assert face.triangles.shape == (898, 3)
    assert face.triangles.min() == 0 and face.triangles.max() == NUM_MESH_VERTICES - 1
    # Anatomy, in centimetres with y up: the nose tip is the nearest point, the chin the lowest,
    # the image-left eye corner (33) mirrors the image-right one (263).
    assert np.argmax(face.vertices[:, 2]) in (1, 4)
    assert np.argmin(face.vertices[:, 1]) == 152
    np.testing.assert_allclose(face.vertices[33] * [-1, 1, 1], face.vertices[263], atol=1e-5)
    assert 14 < np.ptp(face.vertices[:, 0]) < 17  # a face is ~15 cm wide
    assert len(face.rigid_ids) == len(face.rigid_weights) > 20


def test_lip_and_eye_contours_are_mesh_edges() -> None:
    topology = face_topology()
    edges = {tuple(sorted(pair)) for tri in topology.triangles.tolist() for pair in
             ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0]))}  # fmt: skip
    for contour in (UPPER_INNER_LIP, LOWER_INNER_LIP, LEFT_EYE_UPPER, LEFT_EYE_LOWER,
                    RIGHT_EYE_UPPER, RIGHT_EYE_LOWER):  # fmt: skip
        for a, b in itertools.pairwise(contour):
            assert (min(a, b), max(a, b)) in edges, (a, b)


def test_face_contour_is_one_closed_loop() -> None:
    topology = face_topology()
    assert len(topology.oval) == len(set(topology.oval.tolist())) == 36
    assert 152 in topology.oval and 10 in topology.oval  # chin and forehead top


def test_propagation_moves_controls_exactly_and_keeps_openings_apart() -> None:
    topology = face_topology()
    weights = topology.propagation
    assert weights.shape == (NUM_MESH_VERTICES, len(CONTROL_POINTS)) == (468, 21)
    np.testing.assert_allclose(weights[list(CONTROL_POINTS)], np.eye(21), atol=1e-6)
    assert weights.min() >= -1e-6 and weights.max() <= 1 + 1e-6
    # Moving the lower inner lip does not drag the upper lip (the opening is cut) ...
    lower = CONTROL_POINTS.index(14)
    assert all(weights[v, lower] < 0.05 for v in UPPER_INNER_LIP[1:-1])
    assert weights[15, lower] > 0.3  # vertex 15 sits between inner (14) and outer (17) lip
    # ... a lid moves as one curve, corners fixed, and the nose bridge never moves.
    upper_lid = CONTROL_POINTS.index(159)
    assert weights[33, upper_lid] == 0 and weights[133, upper_lid] == 0
    assert all(weights[v, upper_lid] > 0.5 for v in LEFT_EYE_UPPER[1:-1])
    assert np.abs(weights[[6, 168, 4]]).max() == 0


@settings(max_examples=60, deadline=None)
@given(angles, angles, angles)
def test_euler_round_trip(pitch: float, yaw: float, roll: float) -> None:
    rotation = rotation_from_euler(pitch, yaw, roll)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(euler_from_rotation(rotation), (pitch, yaw, roll), atol=1e-6)


def test_pitch_positive_looks_down_and_yaw_positive_turns_right() -> None:
    forward = np.array([0.0, 0.0, 1.0])  # face normal towards the viewer, y up
    assert (rotation_from_euler(20, 0, 0) @ forward)[1] < 0
    assert (rotation_from_euler(0, 20, 0) @ forward)[0] > 0


@settings(max_examples=40, deadline=None)
@given(angles, angles, angles, st.floats(0.1, 50.0), st.floats(-100, 100))
def test_similarity_fit_recovers_a_known_pose(
    pitch: float, yaw: float, roll: float, scale: float, shift: float
) -> None:
    face = load_canonical_face()
    rotation = rotation_from_euler(pitch, yaw, roll)
    translation = np.array([shift, -shift / 2, 3.0])
    observed = scale * face.vertices @ rotation.T + translation
    fit = fit_similarity(face.vertices[face.rigid_ids], observed[face.rigid_ids],
                         face.rigid_weights)  # fmt: skip
    assert fit.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(fit.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(fit.invert(observed), face.vertices, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(angles, angles, angles)
def test_scaled_rotation_composes(pitch: float, yaw: float, roll: float) -> None:
    rotation = rotation_from_euler(pitch, yaw, roll)
    half = scale_rotation(rotation, 0.5)
    np.testing.assert_allclose(half @ half, rotation, atol=1e-7)
    np.testing.assert_allclose(scale_rotation(rotation, 0.0), np.eye(3), atol=1e-9)
    np.testing.assert_allclose(scale_rotation(rotation, 1.0), rotation)
