"""Gaze: where each iris sits in its eye opening, carried in the motion and drawn by moving
an iris vertex inside the eye.

Measure: MediaPipe's iris centres (landmarks 468, 473) in each eye's corner frame: along the
corner-to-corner axis and across it, in eye widths from the eye's middle, in the image plane
(a head turn shifts the iris in the eye as seen, which is what the output should show).

Wire: no new fields. The z components of the four lid control points (rows of 159, 145, 386,
374 in `Motion.exp`) carry it instead: a lid's depth change is a few hundredths of a face unit
that a 2-D warp cannot show (it only sorts triangles), while the iris offset is what a viewer
reads as gaze. Upper lid z = offset along the eye, lower lid z = offset across it, per eye.
The renderer zeroes those four components before spreading the control points' motion.

Render: each eye opening gets a fan of triangles around an iris vertex (drawn over the face's
own eye triangles); the vertex moves by the driver's change of gaze, clipped so it stays well
inside the target opening, and the fan carries iris and eye white along smoothly. An inner
ring on the fan's rays (IRIS_CORE of the way out) keeps its source distance from the iris
vertex (times the eye's change of width) when the eye opens wider than the source's, so the
iris keeps its size and roundness and only the band next to the lids stretches; when the
eye narrows the ring stays at IRIS_CORE of each ray and the lids clip the iris.
"""

from __future__ import annotations

import numpy as np

from lpstream.meshwarp.topology import (
    CONTROL_POINTS,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
)

IRIS_CENTRES = (468, 473)
"""MediaPipe iris centres of the image-left and image-right eye."""
EYE_AXES = ((33, 133), (362, 263))
"""Per eye, its corners left to right in the image."""
EYE_LIDS = ((159, 145), (386, 374))
"""Per eye, the upper and lower lid's control point (their exp rows carry the gaze in z)."""
GAZE_SLOTS = tuple(
    (CONTROL_POINTS.index(upper), CONTROL_POINTS.index(lower)) for upper, lower in EYE_LIDS
)
"""Per eye, the exp rows whose z holds (along, across) the iris offset."""
EYE_LOOPS = (
    LEFT_EYE_UPPER + LEFT_EYE_LOWER[-2:0:-1],
    RIGHT_EYE_UPPER + RIGHT_EYE_LOWER[-2:0:-1],
)
"""Per eye, its opening as a closed loop of lid vertices (upper lid, then lower lid back)."""
GAZE_LIMIT = 0.28
"""|iris offset| on the wire, eye widths (the iris centre cannot leave the opening)."""
ALONG_LIMIT = 0.24
"""Drawn iris centre at most this far from the eye's middle along the eye, eye widths."""
ACROSS_GAIN = 0.0
"""Share of the driver's up/down gaze change drawn (see below)."""
IRIS_CORE = 0.6
"""Share of each fan ray (iris vertex to lid vertex) that keeps its source length."""
FRACTION_RANGE = (0.3, 0.7)
"""The iris vertex stays between these fractions of the way from the upper to the lower lid."""


def _frame(xy: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(middle, axis, normal) of one eye: axis spans corner to corner, normal is the axis
    turned a quarter towards the image's bottom (same length)."""
    left, right = EYE_AXES[eye]
    middle = (xy[left] + xy[right]) / 2.0
    axis = xy[right] - xy[left]
    return middle, axis, np.array([-axis[1], axis[0]])


def _coordinates(point: np.ndarray, frame: tuple[np.ndarray, ...]) -> np.ndarray:
    middle, axis, normal = frame
    norm = max(float(axis @ axis), 1e-9)
    offset = point - middle
    return np.array([offset @ axis / norm, offset @ normal / norm])


def iris_offsets(points: np.ndarray) -> np.ndarray:
    """(2 eyes, 2) iris centre offsets (along, across) in eye widths, of 478 landmarks."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    return np.stack([_coordinates(xy[IRIS_CENTRES[eye]], _frame(xy, eye)) for eye in range(2)])


def put_gaze(exp: np.ndarray, offsets: np.ndarray) -> None:
    """Store `offsets` (2, 2) in the lid rows' z of `exp` (21, 3), in place."""
    clipped = np.clip(offsets, -GAZE_LIMIT, GAZE_LIMIT)
    for eye, (along_row, across_row) in enumerate(GAZE_SLOTS):
        exp[along_row, 2] = clipped[eye, 0]
        exp[across_row, 2] = clipped[eye, 1]


def take_gaze(delta: np.ndarray) -> np.ndarray:
    """(2 eyes, 2) each eye's (along, across) gaze change, taken out of `delta` (21, 3) in
    place. Each eye keeps its own (a driver crossing their eyes shows it; measured by
    bench/reenactment.py, per-eye vs. both eyes' mean: gaze r d0/d3/d6 0.995 / 0.61 / 0.87
    vs. 0.994 / 0.56 / 0.84, face-box PSNR d6 +0.05 dB)."""
    gaze = np.zeros((2, 2))
    for eye, (along_row, across_row) in enumerate(GAZE_SLOTS):
        gaze[eye] = delta[along_row, 2], delta[across_row, 2]
        delta[along_row, 2] = delta[across_row, 2] = 0.0
    return gaze


def lid_fractions(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(2,) where each iris centre sits between its eye's upper (0) and lower (1) lid."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    out = np.zeros(2)
    for eye in range(2):
        top, bottom = _lid_coordinates(xy, eye)
        out[eye] = (offsets[eye, 1] - top) / max(bottom - top, 1e-6)
    return np.clip(out, *FRACTION_RANGE)


def _lid_coordinates(xy: np.ndarray, eye: int) -> tuple[float, float]:
    frame = _frame(xy, eye)
    upper, lower = EYE_LIDS[eye]
    return float(_coordinates(xy[upper], frame)[1]), float(_coordinates(xy[lower], frame)[1])


def iris_targets(
    target: np.ndarray, source_along: np.ndarray, source_fraction: np.ndarray, gaze: np.ndarray
) -> np.ndarray:
    """(2, 2) target pixel positions of the iris vertices: along the eye, the source's own
    offset plus that eye's gaze change (`gaze`, 2 × 2), clipped; across, the source's place
    between the lids (so a squint or a blink carries the iris as the lids' own warp would)."""
    out = np.zeros((2, 2))
    for eye in range(2):
        middle, axis, normal = _frame(target, eye)
        top, bottom = _lid_coordinates(target, eye)
        along = np.clip(source_along[eye] + gaze[eye, 0], -ALONG_LIMIT, ALONG_LIMIT)
        across = top + source_fraction[eye] * (bottom - top) + ACROSS_GAIN * gaze[eye, 1]
        out[eye] = middle + along * axis + across * normal
    return out


def core_sources(points: np.ndarray, irises: np.ndarray) -> np.ndarray:
    """(2·L, 2) source pixels of both eyes' inner ring: IRIS_CORE of the way from each iris
    centre `irises` (2, 2) to its opening's loop vertices in `points` (N ≥ 468, 2)."""
    rings = [
        irises[eye] + IRIS_CORE * (points[list(loop)] - irises[eye])
        for eye, loop in enumerate(EYE_LOOPS)
    ]
    return np.concatenate(rings)


def core_targets(
    target: np.ndarray, irises: np.ndarray, source: np.ndarray, source_irises: np.ndarray
) -> np.ndarray:
    """(2·L, 2) target pixels of the inner ring: on each target ray from the iris vertex
    `irises` (2, 2) to its loop vertex, at IRIS_CORE of the ray or the source ray's core
    length times the eye's change of width (`source`, `source_irises`: the source's points
    and iris centres), whichever is shorter."""
    rings = []
    for eye, loop in enumerate(EYE_LOOPS):
        left, right = EYE_AXES[eye]
        width = np.linalg.norm(target[right] - target[left])
        scale = width / max(float(np.linalg.norm(source[right] - source[left])), 1e-6)
        ray = target[list(loop)] - irises[eye]
        length = np.maximum(np.linalg.norm(ray, axis=1), 1e-6)
        held = np.linalg.norm(source[list(loop)] - source_irises[eye], axis=1) * scale
        reach = IRIS_CORE * np.minimum(length, held)
        rings.append(irises[eye] + ray * (reach / length)[:, None])
    return np.concatenate(rings)


def fan_triangles(iris_ids: tuple[int, int], core_start: int) -> np.ndarray:
    """(2·2·L + 2·L, 3) int32 triangles joining each iris vertex to its inner ring (vertex
    ids from `core_start`, eye by eye) and the ring to its eye opening's loop."""
    fans = []
    start = core_start
    for centre, loop in zip(iris_ids, EYE_LOOPS, strict=True):
        ring = np.asarray(loop)
        core = start + np.arange(len(ring))
        start += len(ring)
        fans.append(np.stack([np.full(len(ring), centre), core, np.roll(core, -1)], axis=1))
        fans.append(np.stack([core, ring, np.roll(ring, -1)], axis=1))
        fans.append(np.stack([core, np.roll(ring, -1), np.roll(core, -1)], axis=1))
    return np.concatenate(fans).astype(np.int32)
