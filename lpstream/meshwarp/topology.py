"""Which mesh vertices mean what, and how 21 control points move the whole face.

The motion carries 21 control landmarks (lips, eyelids, brows, cheeks, chin). The receiver
spreads their displacement over all 468 vertices with a fixed linear map computed once from
the canonical mesh: harmonic interpolation (each free vertex moves as the average of its
mesh neighbours) with the rigid landmarks pinned. The mouth and eye openings are cut out of
the neighbour graph first, otherwise an opening jaw would drag the upper lip down with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from lpstream.meshwarp.canonical import CanonicalFace, load_canonical_face

FACE_UNIT_CM = 16.0
"""Model-space unit: about one face width, so expression deltas land in LivePortrait's range."""

UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
"""Inner lip contours from one mouth corner to the other (the mouth opening)."""
LEFT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
LEFT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
RIGHT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
RIGHT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
"""Lid contours, corner to corner; left/right as seen in the image (as lpstream.face.ratios)."""

CONTROL_POINTS: tuple[int, ...] = (
    61, 291,  # mouth corners
    0, 17,  # outer lip, upper and lower centre
    13, 14,  # inner lip, upper and lower centre
    82, 312,  # inner upper lip, either side
    87, 317,  # inner lower lip, either side
    159, 145,  # image-left eye: upper and lower lid
    386, 374,  # image-right eye: upper and lower lid
    105, 334,  # brows, middle
    107, 336,  # brows, inner end
    50, 280,  # cheeks (smile)
    152,  # chin (jaw)
)  # fmt: skip
"""The 21 landmarks whose displacement is the motion's `exp` (order = rows of exp)."""

PINNED_EXTRA = (33, 133, 263, 362, 1, 4, 5, 195, 197, 6, 168, 10, 151, 9)
"""Pinned in addition to MediaPipe's rigid set: eye corners, the nose ridge, mid-forehead."""
PIN_BELOW_CM = -1.5
"""Rigid landmarks lower than this (canonical y, about the nostrils) are left free."""


@dataclass(frozen=True)
class FaceTopology:
    """Everything the renderer needs to know about the mesh, computed once."""

    canonical: CanonicalFace
    model_vertices: np.ndarray
    """(468, 3) canonical vertices in face units."""
    triangles: np.ndarray
    """(898, 3) int32."""
    oval: np.ndarray
    """Outer face contour as an ordered closed loop of vertex indices."""
    propagation: np.ndarray
    """(468, 21) float32: vertex displacement = propagation @ control displacement."""
    mouth_loop: np.ndarray
    """Inner-lip loop (upper lip corner to corner, then lower lip back), vertex indices."""


def _edges(triangles: np.ndarray) -> np.ndarray:
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.sort(edges, axis=1)


def boundary_loop(triangles: np.ndarray) -> np.ndarray:
    """The mesh's outer boundary (edges used by one triangle) as an ordered vertex loop."""
    edges, counts = np.unique(_edges(triangles), axis=0, return_counts=True)
    neighbours: dict[int, list[int]] = {}
    for a, b in edges[counts == 1]:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    start = min(neighbours)
    loop, previous = [start], -1
    while True:
        current = loop[-1]
        following = next(n for n in neighbours[current] if n != previous)
        if following == start:
            break
        loop.append(following)
        previous = current
    if len(loop) != len(neighbours):
        raise ValueError("the mesh boundary is not a single loop")
    return np.array(loop, dtype=np.int32)


def _opening_cuts() -> set[tuple[int, int]]:
    """Edges crossing the mouth or an eye opening (upper contour to lower contour)."""
    cuts: set[tuple[int, int]] = set()
    for upper, lower in (
        (UPPER_INNER_LIP, LOWER_INNER_LIP),
        (LEFT_EYE_UPPER, LEFT_EYE_LOWER),
        (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
    ):
        for a in upper[1:-1]:
            for b in lower[1:-1]:
                cuts.add((min(a, b), max(a, b)))
    return cuts


def lid_ties() -> dict[int, tuple[int, float]]:
    """Eyelid vertices tied to their lid's control point: vertex -> (control row, weight).

    A lid closes as one curve; left free, harmonic interpolation would let its ends lag
    and the eye would never look shut. Weights follow sin(π·position)^0.6 along the lid.
    """
    ties: dict[int, tuple[int, float]] = {}
    for contour in (LEFT_EYE_UPPER, LEFT_EYE_LOWER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER):
        row = next(CONTROL_POINTS.index(v) for v in contour if v in CONTROL_POINTS)
        last = len(contour) - 1
        for position, vertex in enumerate(contour[1:-1], start=1):
            if vertex not in CONTROL_POINTS:
                ties[vertex] = (row, float(np.sin(np.pi * position / last) ** 0.6))
    return ties


def harmonic_propagation(
    triangles: np.ndarray,
    num_vertices: int,
    controls: tuple[int, ...],
    pinned: np.ndarray,
    cuts: set[tuple[int, int]],
    ties: dict[int, tuple[int, float]] | None = None,
) -> np.ndarray:
    """(num_vertices, len(controls)): harmonic extension of unit control displacements.

    Controls move with weight 1 on their own column, `ties` with a fixed weight on one
    control's column, `pinned` vertices not at all; every other vertex is harmonic.
    """
    adjacency = np.zeros((num_vertices, num_vertices))
    for a, b in np.unique(_edges(triangles), axis=0):
        if (int(a), int(b)) not in cuts:
            adjacency[a, b] = adjacency[b, a] = 1.0
    laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
    fixed = np.zeros(num_vertices, dtype=bool)
    fixed[list(controls)] = True
    fixed[pinned] = True
    boundary_values = np.zeros((num_vertices, len(controls)))
    boundary_values[list(controls), np.arange(len(controls))] = 1.0
    for vertex, (row, weight) in (ties or {}).items():
        fixed[vertex] = True
        boundary_values[vertex, row] = weight
    free = np.flatnonzero(~fixed)
    rhs = -laplacian[np.ix_(free, np.flatnonzero(fixed))] @ boundary_values[fixed]
    weights = boundary_values.copy()
    weights[free] = np.linalg.solve(laplacian[np.ix_(free, free)], rhs)
    return weights


@functools.lru_cache(maxsize=1)
def face_topology() -> FaceTopology:
    canonical = load_canonical_face()
    controls_set = set(CONTROL_POINTS)
    # MediaPipe's rigid set includes jaw-line points; only its upper-face part stays pinned
    # here, or an opening jaw could not move the lower face.
    rigid = canonical.rigid_ids.tolist()
    upper_rigid = [i for i in rigid if canonical.vertices[i, 1] > PIN_BELOW_CM]
    pinned_ids = [i for i in (*upper_rigid, *PINNED_EXTRA) if i not in controls_set]
    propagation = harmonic_propagation(
        canonical.triangles,
        len(canonical.vertices),
        CONTROL_POINTS,
        np.array(sorted(set(pinned_ids)), dtype=np.int32),
        _opening_cuts(),
        lid_ties(),
    )
    mouth_loop = np.array(UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1], dtype=np.int32)
    return FaceTopology(
        canonical=canonical,
        model_vertices=canonical.vertices / FACE_UNIT_CM,
        triangles=canonical.triangles,
        oval=boundary_loop(canonical.triangles),
        propagation=propagation.astype(np.float32),
        mouth_loop=mouth_loop,
    )
