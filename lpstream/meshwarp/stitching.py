"""The skirt that stitches the moving face into a still background.

Rings of extra vertices surround the face contour. The innermost ring, a little outside the
face, moves with the contour (hair line, jaw line, ears follow the head); each further ring
follows less, down to the outermost ring, which never moves. The band between them absorbs
the head's motion gradually (several rings, so the bend is spread out and no single triangle
edge shows a kink), and everything outside the outer ring stays exactly where it was.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

RINGS = ((0.15, 1.0), (0.32, 0.7), (0.5, 0.35), (0.75, 0.0))
"""(distance beyond the face contour as a fraction of the contour point's distance from the
face centre, share of the contour's motion the ring follows), innermost first."""


@dataclass(frozen=True)
class Skirt:
    """Ring vertices (appended after the face vertices) and the triangles joining them."""

    rings: np.ndarray
    """(R, K, 2) source pixel positions of each ring (K = contour length), innermost first."""
    follow: np.ndarray
    """(R,) share of the face contour's displacement each ring follows."""
    triangles: np.ndarray
    """(2·K·R, 3) int32 over the vertex list [face vertices..., ring 0, ring 1, ...]."""

    @property
    def vertices(self) -> np.ndarray:
        """(R·K, 2) all ring vertices in vertex-list order."""
        return self.rings.reshape(-1, 2)

    def targets(self, contour_motion: np.ndarray, background_motion: np.ndarray) -> np.ndarray:
        """(R·K, 2) ring positions when the contour moved by `contour_motion` (K, 2) and the
        background by `background_motion` (R, K, 2; zero when stitched)."""
        share = self.follow[:, None, None]
        moved = self.rings + share * contour_motion[None] + (1.0 - share) * background_motion
        return moved.reshape(-1, 2)


def _strip(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Triangles filling the band between two loops of vertex ids with matching lengths."""
    a, b = first, np.roll(first, -1)
    c, d = second, np.roll(second, -1)
    return np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)


def build_skirt(contour_points: np.ndarray, contour_ids: np.ndarray, num_face: int) -> Skirt:
    """Rings around `contour_points` (K, 2 pixels) of the face vertices `contour_ids`."""
    centre = contour_points.mean(axis=0)
    radial = contour_points - centre
    count = len(contour_ids)
    rings = np.stack([centre + radial * (1.0 + extent) for extent, _ in RINGS])
    loops = [np.asarray(contour_ids)] + [
        num_face + r * count + np.arange(count) for r in range(len(RINGS))
    ]
    triangles = np.concatenate([_strip(inner, outer) for inner, outer in itertools.pairwise(loops)])
    return Skirt(rings, np.array([share for _, share in RINGS]), triangles)
