"""Cover an eye the driver closes further than the source portrait's.

A warp closes an eye by squeezing the eye opening into a thin band; that band still samples
the source's eye white and iris, which reads as a bright slit instead of a shut lid. Once the
target opening is well below the source's, we paint it with the source's own lid skin colour
(feathered), so a blink looks like a lid coming down.
"""

from __future__ import annotations

import cv2
import numpy as np

LID_SKIN = {"left": (27, 28, 29, 30, 56), "right": (257, 258, 259, 260, 286)}
"""Vertices on the upper-lid skin just above each eye (image-left / image-right)."""
FULLY_COVERED, UNCOVERED = 0.2, 0.45
"""Target/source opening ratios at which the lid paint is fully on and fully off. Was 0.3 /
0.6: a squint (d3 narrows her eyes to about half) got skin paint over the iris, so the
output's eyes read as more closed than the driver's and its irises were hidden
(self-reenactment, bench/reenactment.py: d3 eye r 0.955 -> 0.968, gaze r 0.63 -> 0.67; d0
eye r 0.972 -> 0.975; PSNR within 0.01 dB). A blink still ends fully painted."""
FEATHER_PX = 1.0
DILATE_PX = 1
LASH_DARKNESS = 0.5
"""Lash line colour = lid skin colour × this; drawn where the lids meet."""


def sample_colour(image: np.ndarray, points: np.ndarray, radius: int = 1) -> np.ndarray:
    """Mean RGB of small patches around `points` (N, 2) pixels."""
    height, width = image.shape[:2]
    patches = []
    for x, y in np.round(points).astype(int):
        x0, y0 = max(x - radius, 0), max(y - radius, 0)
        patch = image[y0 : min(y + radius + 1, height), x0 : min(x + radius + 1, width)]
        if patch.size:
            patches.append(patch.reshape(-1, 3).astype(np.float32))
    if not patches:
        return np.array([180.0, 140.0, 120.0], dtype=np.float32)
    return np.concatenate(patches).mean(axis=0)


def lid_cover_strength(target_ratio: float, source_ratio: float) -> float:
    """How opaque the lid paint is, from the target/source eye-opening ratio."""
    if source_ratio <= 1e-6:
        return 0.0
    relative = target_ratio / source_ratio
    return float(np.clip((UNCOVERED - relative) / (UNCOVERED - FULLY_COVERED), 0.0, 1.0))


def paint_lid(
    frame: np.ndarray,
    opening: np.ndarray,
    lower_lid: np.ndarray,
    strength: float,
    skin: np.ndarray,
) -> None:
    """Blend `skin` colour into `frame` (in place) over the eye-opening polygon (N, 2), with
    a lash line along `lower_lid` (M, 2), where a shut eye's lashes rest."""
    if strength <= 0.0:
        return
    height, width = frame.shape[:2]
    pad = DILATE_PX + int(np.ceil(3 * FEATHER_PX)) + 1
    x0, y0 = np.floor(opening.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(opening.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shift = 4
    polygon = np.round((opening - [x0, y0]) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [polygon], 255, cv2.LINE_AA, shift)
    cv2.polylines(mask, [polygon], True, 255, 1 + 2 * DILATE_PX, cv2.LINE_AA, shift)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), FEATHER_PX)
    alpha = (alpha * strength)[..., None]
    lashes = np.zeros_like(mask)
    eye_width = float(np.ptp(opening[:, 0]))
    thickness = max(1, round(eye_width / 30))
    lash_line = np.round((lower_lid - [x0, y0]) * (1 << shift)).astype(np.int32)
    cv2.polylines(lashes, [lash_line], False, 255, thickness, cv2.LINE_AA, shift)
    lash_alpha = cv2.GaussianBlur(lashes.astype(np.float32) / 255.0, (0, 0), 0.8) * strength * 0.8
    lash_alpha = lash_alpha[..., None]
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    painted = patch * (1.0 - alpha) + skin * alpha
    painted = painted * (1.0 - lash_alpha) + skin * LASH_DARKNESS * lash_alpha
    frame[y0:y1, x0:x1] = painted.astype(np.uint8)
