"""Paint the inside of a mouth the source portrait never showed open.

When the driver opens their mouth and the source's is closed, the mesh triangles inside the
inner-lip contour map to a sliver of lip in the source, so a plain warp would stretch lip
colour into the opening. We cover the opening with a dark cavity shading (the lips' own hue,
darkened) with a lighter band of upper teeth, faded in by how much wider the opening is
than the source's own, and feathered at the edge.
"""

from __future__ import annotations

import cv2
import numpy as np

CAVITY_DARKNESS = (0.16, 0.42)
"""Cavity colour = lip colour × this, from just under the teeth to the tongue at the bottom."""
TEETH_COLOUR = np.array([206.0, 198.0, 186.0], dtype=np.float32)
TEETH_SHADE = 0.9
"""Teeth are painted at TEETH_COLOUR × this (they sit in the mouth's shadow)."""
TEETH_BANDS = (0.55, 0.5, 0.08)
"""(upper teeth end, lower teeth start, fade width), as depth in the opening (0: upper lip,
1: lower lip). Self-reenactment (bench/reenactment.py) showed drivers baring both rows in a
grin where a single thin upper band read as a dark hole. The rows overlap and meet in a thin
faint line (was a gap, 0.5 / 0.64 / 0.12, then 0.5 / 0.56 / 0.1): zoomed on the picture
sheet the gap read as a black line running out to the lip corners; face-box PSNR d0 29.58 ->
29.99, d6 23.13 -> 23.25 dB, d3 unchanged; mouth r d0 0.994 -> 0.999, d6 0.979 -> 0.983,
output yaw r d0 0.913 -> 0.876 (MediaPipe reads the mouth's edges)."""
TEETH_MAX = 0.9
"""Teeth opacity once the opening is wide (TEETH_OPEN_PX[1] pixels more than TEETH_OPEN_PX[0])."""
TEETH_OPEN_PX = (2.0, 16.0)
"""Teeth start to show at an inner-lip gap of TEETH_OPEN_PX[0] pixels, their opacity rising by
1 per TEETH_OPEN_PX[1] pixels more (was 10) up to TEETH_MAX: a mouth just parted stays dark, as the
drivers' do; output mouth-open r (bench/reenactment.py) d0 0.994 -> 0.997, d6 0.980 -> 0.981,
PSNR unchanged to 0.01 dB."""
FEATHER_PX = 1.5


def lip_colour(image: np.ndarray, lip_points: np.ndarray) -> np.ndarray:
    """Mean RGB of the pixels around the inner-lip contour of the source."""
    x0, y0 = np.maximum(np.floor(lip_points.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(lip_points.max(axis=0)).astype(int) + 3
    patch = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32)
    if patch.size == 0:
        return np.array([150.0, 70.0, 70.0], dtype=np.float32)
    return patch.mean(axis=0)


def teeth_amount(depth: np.ndarray, opening_px: float) -> np.ndarray:
    """How much of the shading is teeth at `depth` in an opening `opening_px` tall: an upper
    and a lower row, shown more as the lips part."""
    upper_end, lower_start, fade = TEETH_BANDS
    visibility = np.clip((opening_px - TEETH_OPEN_PX[0]) / TEETH_OPEN_PX[1], 0.0, TEETH_MAX)
    upper = np.clip((upper_end - depth) / fade, 0.0, 1.0)
    lower = np.clip((depth - lower_start) / fade, 0.0, 1.0)
    return np.maximum(upper, lower) * visibility


def paint_cavity(
    frame: np.ndarray,
    mouth_polygon: np.ndarray,
    opening_px: float,
    strength: float,
    lip_rgb: np.ndarray,
) -> None:
    """Blend cavity shading into `frame` (in place) inside `mouth_polygon` (N, 2) pixels.

    `opening_px` is the current inner-lip gap, `strength` in [0, 1] how much of the opening
    must be painted (0: the source's own mouth interior is good enough).
    """
    if strength <= 0.0 or opening_px < 1.0:
        return
    height, width = frame.shape[:2]
    pad = int(np.ceil(3 * FEATHER_PX)) + 1
    x0, y0 = np.floor(mouth_polygon.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(mouth_polygon.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return
    box_h, box_w = y1 - y0, x1 - x0
    mask = np.zeros((box_h, box_w), dtype=np.float32)
    shift = 4
    polygon = np.round((mouth_polygon - [x0, y0]) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [polygon], 1.0, cv2.LINE_AA, shift)
    mask = cv2.GaussianBlur(mask, (0, 0), FEATHER_PX)

    # Vertical position inside the opening: 0 at the upper lip, 1 at the lower lip.
    top = float(mouth_polygon[:, 1].min()) - y0
    rows = (np.arange(box_h, dtype=np.float32) - top) / max(opening_px, 1.0)
    depth = np.clip(rows, 0.0, 1.0)[:, None, None]
    darkest, lightest = CAVITY_DARKNESS
    cavity = lip_rgb * (darkest + (lightest - darkest) * depth**2)
    # Upper teeth show as a band under the upper lip once the mouth is open enough.
    teeth = teeth_amount(depth, opening_px)
    shading = cavity * (1.0 - teeth) + TEETH_COLOUR * TEETH_SHADE * teeth

    alpha = (mask * strength)[..., None]
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (patch * (1.0 - alpha) + shading * alpha).astype(np.uint8)
