"""The skirt that stitches the moving face into a still background.

Rings of extra vertices surround the face contour. Each ring moves by a share of the face
contour's own motion plus a share of the head's rigid motion, both falling off outwards, down
to the outermost ring, which never moves; everything outside it stays exactly where it was.

The head share moves each ring vertex as a point of the head behind the contour would move:
every ring vertex has an anchor in the head-fixed frame (the contour point pushed outwards
and back into the head, towards the depth of the head's silhouette), re-posed with the
driver's change of rotation and translation (not of scale, which the landmark fit takes
partly from the expression). So under a nod the scalp above the forehead follows the forehead, and
under a turn the hair at the side of the head (the silhouette, far behind the cheek contour)
barely moves, while the cheek contour slides across it. The contour's own motion (the face
surface's: an opening jaw, a turned cheek) is followed only close to the face.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

RINGS = ((0.1, 0.3, 0.6), (0.25, 0.1, 0.5), (0.45, 0.0, 0.3), (0.75, 0.0, 0.0))
"""(distance beyond the face contour as a fraction of the contour point's distance from the
face centre, share of the contour's motion, share of the head's rigid motion), innermost
first.

Measured by self-reenactment (bench/reenactment.py, face-box PSNR d0 / d3 / d6): the first
skirt, contour share only ((0.15, 1), (0.32, 0.7), (0.5, 0.35), (0.75, 0)), gave 28.46 /
22.23 / 22.79 dB; a contour share falling off faster (0.8 / 0.4 / 0.15 / 0 at 0.1 / 0.25 /
0.45 / 0.75) 29.38 / 23.67 / 22.84; these shares with the head anchors 29.58 / 23.80 / 23.13;
a 2-D head similarity (translation, scale, roll) in place of the anchors about 28.7 / 22.6 /
22.8. The head share re-posed the anchors with the driver's fitted scale, which a wide mouth
or wide eyes inflate (d6: +4 % while her hair moved as a whole, one side 15 px, the other
9 px, and the re-posed rings spread 10 / 19 px): turned and shifted but kept at the
source's scale, with SILHOUETTE_DEPTH -0.5 (was -0.375) and head shares 0.6 / 0.5 / 0.3
(were 0.5 / 0.3 / 0.15), 30.28 / 23.90 / 23.81 dB (iris core of lpstream.meshwarp.gaze
included; 30.21 / 23.90 / 23.76 without it). Keeping the scale alone, with the old shares
and depth, gave 30.39 / 23.77 / 23.56; larger head shares (0.6 / 0.6 / 0.5 / 0.2 at the
still ring) 30.09 / 23.88 / 23.92 but d0 lower, depth -0.6 30.31 / 23.81 / 23.78."""
SILHOUETTE_DEPTH = -0.5
"""Head-frame depth (face units, canonical z; the nose tip is at +0.47) of the head's
silhouette, the depth the anchors reach."""
SILHOUETTE_AT = 0.15
"""Ring distance (as in RINGS) from which the anchors sit at SILHOUETTE_DEPTH; nearer rings'
anchors lie between the contour's depth and it."""


@dataclass(frozen=True)
class Skirt:
    """Ring vertices (appended after the face vertices) and the triangles joining them."""

    rings: np.ndarray
    """(R, K, 2) source pixel positions of each ring (K = contour length), innermost first."""
    follow: np.ndarray
    """(R,) share of the face contour's displacement each ring follows."""
    head_follow: np.ndarray
    """(R,) share of the anchors' rigid displacement each ring follows."""
    anchors: np.ndarray
    """(R, K, 3) each ring vertex's point in the head-fixed frame (face units, y up)."""
    triangles: np.ndarray
    """(2·K·R, 3) int32 over the vertex list [face vertices..., ring 0, ring 1, ...]."""

    @property
    def vertices(self) -> np.ndarray:
        """(R·K, 2) all ring vertices in vertex-list order."""
        return self.rings.reshape(-1, 2)

    def targets(
        self,
        contour_motion: np.ndarray,
        background_motion: np.ndarray,
        head_motion: np.ndarray | None = None,
    ) -> np.ndarray:
        """(R·K, 2) ring positions when the contour moved by `contour_motion` (K, 2), the
        anchors by `head_motion` (R, K, 2 pixels; none: still) and the background by
        `background_motion` (R, K, 2; zero when stitched)."""
        share = self.follow[:, None, None]
        head = self.head_follow[:, None, None]
        moved = self.rings + share * contour_motion[None] + (1.0 - share - head) * background_motion
        if head_motion is not None:
            moved = moved + head * head_motion
        return moved.reshape(-1, 2)


def ring_anchors(contour_shape: np.ndarray) -> np.ndarray:
    """(R, K, 3) head-frame anchors of the rings around `contour_shape` (K, 3 face units)."""
    centre = contour_shape[:, :2].mean(axis=0)
    anchors = []
    for extent, _, _ in RINGS:
        anchor = np.empty_like(contour_shape, dtype=np.float64)
        anchor[:, :2] = centre + (contour_shape[:, :2] - centre) * (1.0 + extent)
        depth_share = min(extent / SILHOUETTE_AT, 1.0)
        anchor[:, 2] = contour_shape[:, 2] + (SILHOUETTE_DEPTH - contour_shape[:, 2]) * depth_share
        anchors.append(anchor)
    return np.stack(anchors)


def _strip(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Triangles filling the band between two loops of vertex ids with matching lengths."""
    a, b = first, np.roll(first, -1)
    c, d = second, np.roll(second, -1)
    return np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)


def build_skirt(
    contour_points: np.ndarray,
    contour_ids: np.ndarray,
    num_face: int,
    contour_shape: np.ndarray | None = None,
) -> Skirt:
    """Rings around `contour_points` (K, 2 pixels) of the face vertices `contour_ids`;
    `contour_shape` (K, 3) is the contour in the head-fixed frame (none: no anchors, zeros)."""
    centre = contour_points.mean(axis=0)
    radial = contour_points - centre
    count = len(contour_ids)
    rings = np.stack([centre + radial * (1.0 + extent) for extent, _, _ in RINGS])
    loops = [np.asarray(contour_ids)] + [
        num_face + r * count + np.arange(count) for r in range(len(RINGS))
    ]
    triangles = np.concatenate([_strip(inner, outer) for inner, outer in itertools.pairwise(loops)])
    anchors = (
        ring_anchors(contour_shape)
        if contour_shape is not None
        else np.zeros((len(RINGS), count, 3))
    )
    return Skirt(
        rings,
        np.array([share for _, share, _ in RINGS]),
        np.array([head for _, _, head in RINGS]),
        anchors,
        triangles,
    )
