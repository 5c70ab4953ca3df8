"""Piecewise-affine image warp over a triangle mesh, vectorised (numpy + cv2.remap).

For every output pixel we need the source position it comes from. Inside each destination
triangle that map is affine, so per frame we (1) solve one 2×3 affine per triangle, (2) draw
each triangle's index into an index image, far triangles first so nearer ones win where a
turning head folds the mesh, (3) look up every pixel's affine and evaluate it, (4) resample
with cv2.remap. Steps (2)-(3) run at half resolution and the map is upsampled bilinearly: the
map is continuous and piecewise linear, so this costs well under a pixel of accuracy and
saves three quarters of the work. Pixels no triangle covers use the background transform
(identity when the face is stitched into a still background).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAP_STEP = 2
"""The warp map is computed on every MAP_STEP-th pixel and upsampled."""
_SUBPIXEL_BITS = 4
_MIN_AREA = 1e-6


@dataclass(frozen=True)
class Region:
    """Pixel box [x0, x1) × [y0, y1) of the output that the mesh can touch."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def mesh_region(points: np.ndarray, width: int, height: int, margin: int = 4) -> Region:
    """Bounding box of `points` plus a margin, clipped to the image, snapped to MAP_STEP."""
    x0 = int(np.floor(points[:, 0].min())) - margin
    y0 = int(np.floor(points[:, 1].min())) - margin
    x1 = int(np.ceil(points[:, 0].max())) + margin
    y1 = int(np.ceil(points[:, 1].max())) + margin
    x0, y0 = max(x0 - x0 % MAP_STEP, 0), max(y0 - y0 % MAP_STEP, 0)
    x1, y1 = min(x1, width), min(y1, height)
    return Region(x0, y0, x1, y1)


def triangle_affines(
    source: np.ndarray, target: np.ndarray, triangles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, 3) affines mapping each target triangle onto its source triangle, and a mask of
    triangles that are not degenerate in the target (degenerate ones cover no pixel)."""
    tgt = target[triangles]  # (T, 3, 2)
    src = source[triangles]
    homogeneous = np.concatenate([tgt, np.ones((*tgt.shape[:2], 1))], axis=2)  # (T, 3, 3)
    determinant = np.linalg.det(homogeneous)
    valid = np.abs(determinant) > _MIN_AREA
    homogeneous[~valid] = np.eye(3)
    # Solve homogeneous @ A.T = src for each triangle: A maps [x, y, 1] (target) to source.
    affines = np.linalg.solve(homogeneous, src).transpose(0, 2, 1)
    return affines, valid


def warp_maps(
    source_points: np.ndarray,
    target_points: np.ndarray,
    triangles: np.ndarray,
    draw_order: np.ndarray,
    region: Region,
    background: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution (map_x, map_y) float32 for `region`, as cv2.remap wants them.

    `background` is the 2×3 target->source affine used where no triangle is drawn.
    """
    affines, valid = triangle_affines(source_points, target_points, triangles)
    table = np.concatenate([affines.reshape(-1, 6), background.reshape(1, 6)]).astype(np.float32)
    no_triangle = len(triangles)

    # One extra sample beyond each side, so that upsampling interpolates everywhere and
    # never clamps at the region's edge (which would shift edge pixels by half a sample).
    origin_x, origin_y = region.x0 - MAP_STEP, region.y0 - MAP_STEP
    low_w = -(-(region.x1 - region.x0) // MAP_STEP) + 2
    low_h = -(-(region.y1 - region.y0) // MAP_STEP) + 2
    index = np.full((low_h, low_w), no_triangle, dtype=np.int32)
    # Low-res pixel (j, i) samples the full-res position origin + STEP*j + (STEP-1)/2, which is
    # exactly what cv2.resize's pixel-centre convention maps it back to.
    offset = np.array([origin_x + (MAP_STEP - 1) / 2, origin_y + (MAP_STEP - 1) / 2])
    corners = np.round((target_points - offset) / MAP_STEP * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    for tri in draw_order:
        if valid[tri]:
            cv2.fillConvexPoly(index, corners[triangles[tri]], int(tri), cv2.LINE_8, _SUBPIXEL_BITS)

    coefficients = table[index]  # (h, w, 6)
    xs = np.float32(offset[0]) + MAP_STEP * np.arange(low_w, dtype=np.float32)[None, :]
    ys = np.float32(offset[1]) + MAP_STEP * np.arange(low_h, dtype=np.float32)[:, None]
    low_x = coefficients[..., 0] * xs + coefficients[..., 1] * ys + coefficients[..., 2]
    low_y = coefficients[..., 3] * xs + coefficients[..., 4] * ys + coefficients[..., 5]
    low_x, low_y = low_x.astype(np.float32), low_y.astype(np.float32)
    size = (low_w * MAP_STEP, low_h * MAP_STEP)
    map_x = cv2.resize(low_x, size, interpolation=cv2.INTER_LINEAR)
    map_y = cv2.resize(low_y, size, interpolation=cv2.INTER_LINEAR)
    height, width = region.y1 - region.y0, region.x1 - region.x0
    inside = np.s_[MAP_STEP : MAP_STEP + height, MAP_STEP : MAP_STEP + width]
    return np.ascontiguousarray(map_x[inside]), np.ascontiguousarray(map_y[inside])


def warp_image(
    image: np.ndarray,
    source_points: np.ndarray,
    target_points: np.ndarray,
    triangles: np.ndarray,
    draw_order: np.ndarray,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """`image` warped so that `source_points` land on `target_points` (same size output)."""
    height, width = image.shape[:2]
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    moved_background = background is not None and not np.allclose(background, identity)
    if moved_background:
        assert background is not None
        forward = cv2.invertAffineTransform(background)
        output = cv2.warpAffine(image, forward, (width, height), borderMode=cv2.BORDER_REPLICATE)
    else:
        background = identity
        output = image.copy()
    region = mesh_region(target_points, width, height)
    if region.empty:
        return output
    map_x, map_y = warp_maps(
        source_points, target_points, triangles, draw_order, region, background
    )
    output[region.y0 : region.y1, region.x0 : region.x1] = cv2.remap(
        image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return output
