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

RINGS = ((0.1, 0.8), (0.25, 0.4), (0.45, 0.15), (0.75, 0.0))
"""(distance beyond the face contour as a fraction of the contour point's distance from the
face centre, share of the contour's motion the ring follows), innermost first.

The share falls off quickly: the contour's motion is the face surface's (a turn slides the
cheek contour across the head, an opening jaw moves the chin), not the head silhouette's, so
hair, ears and background just outside the face move much less than the contour. Measured by
self-reenactment (bench/reenactment.py, face-box PSNR d0/d3/d6): the earlier rings
((0.15, 1), (0.32, 0.7), (0.5, 0.35), (0.75, 0)) gave 28.46 / 22.23 / 22.79 dB, these
29.34 / 23.65 / 22.78 dB; following a head similarity (translation, scale, roll about a
pivot inside the head) instead of the contour measured lower (28.7 / 22.6 / 22.8)."""


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
