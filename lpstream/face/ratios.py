"""Eye- and lip-open ratios from MediaPipe's 478 landmarks (LivePortrait's definitions).

LivePortrait defines the eye-open ratio as eyelid distance / eye-corner distance and the
lip-open ratio as inner-lip distance / mouth-corner distance (its own 203-point model). We use
the corresponding MediaPipe face-mesh vertices:

| quantity                | image-left eye (subject's right) | image-right eye (subject's left) |
|-------------------------|----------------------------------|----------------------------------|
| upper lid (mid)         | 159                              | 386                              |
| lower lid (mid)         | 145                              | 374                              |
| outer corner            | 33                               | 263                              |
| inner corner            | 133                              | 362                              |

Mouth: inner upper lip 13, inner lower lip 14, outer corners 61 and 291.

"Left" is the eye on the image's left, as in LivePortrait's crop code (its 68-point parser calls
points 37/40, the image-left eye, the left eye). Distances use x and y only: MediaPipe's z is a
relative depth estimate and would add noise to a quantity measured in the image plane.
Both ratios are invariant to translation, rotation and scale of the face in the image.
"""

from __future__ import annotations

import numpy as np

LEFT_EYE_LIDS = (159, 145)
"""Upper and lower lid of the image-left eye."""
LEFT_EYE_CORNERS = (33, 133)
"""Outer and inner corner of the image-left eye."""
RIGHT_EYE_LIDS = (386, 374)
"""Upper and lower lid of the image-right eye."""
RIGHT_EYE_CORNERS = (263, 362)
"""Outer and inner corner of the image-right eye."""
INNER_LIPS = (13, 14)
"""Inner upper lip and inner lower lip (centre)."""
MOUTH_CORNERS = (61, 291)
"""Outer mouth corners."""

_EPS = 1e-6


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[0] != 478 or points.shape[1] < 2:
        raise ValueError(f"expected (478, 2 or 3) MediaPipe landmarks, got {points.shape}")
    return points[:, :2]


def _distance(points: np.ndarray, pair: tuple[int, int]) -> float:
    return float(np.linalg.norm(points[pair[0]] - points[pair[1]]))


def eye_open_ratio(points: np.ndarray) -> np.ndarray:
    """(left, right) eyelid distance / eye-corner distance, float32 (2,); ~0 closed, ~0.3 open."""
    xy = _check_points(points)
    left = _distance(xy, LEFT_EYE_LIDS) / max(_distance(xy, LEFT_EYE_CORNERS), _EPS)
    right = _distance(xy, RIGHT_EYE_LIDS) / max(_distance(xy, RIGHT_EYE_CORNERS), _EPS)
    return np.array([left, right], dtype=np.float32)


def lip_open_ratio(points: np.ndarray) -> float:
    """Inner-lip distance / mouth-corner distance; ~0 closed, ~0.3-0.7 wide open."""
    xy = _check_points(points)
    return _distance(xy, INNER_LIPS) / max(_distance(xy, MOUTH_CORNERS), _EPS)
