"""Eye- and lip-openness controls, applied as extra control-point displacements.

A target ratio (eyelid gap / eye width, inner-lip gap / mouth width, as lpstream.face.ratios
measures them) is reached by moving the lid or lip control points vertically in the
head-fixed face frame; the harmonic propagation then carries the surrounding skin along.
"""

from __future__ import annotations

import numpy as np

from lpstream.face.ratios import (
    INNER_LIPS,
    LEFT_EYE_CORNERS,
    LEFT_EYE_LIDS,
    MOUTH_CORNERS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYE_LIDS,
)
from lpstream.meshwarp.topology import CONTROL_POINTS

_ROW = {vertex: row for row, vertex in enumerate(CONTROL_POINTS)}

UPPER_LID_SHARE = 0.75
"""Blinks are mostly the upper lid moving; the lower lid takes the rest."""
MOUTH_OPENING = {
    14: -0.75, 87: -0.75, 317: -0.75, 17: -0.65, 152: -0.45,  # lower lip and jaw
    13: 0.25, 82: 0.25, 312: 0.25, 0: 0.15,  # upper lip
}  # fmt: skip
"""Vertical share of each control point in opening the mouth by one unit of inner-lip gap
(lower lip and jaw go down, the upper lip lifts a little): lower 0.75 + upper 0.25 = 1."""


def _gap(shape: np.ndarray, pair: tuple[int, int]) -> float:
    return float(shape[pair[0], 1] - shape[pair[1], 1])


def _width(shape: np.ndarray, pair: tuple[int, int]) -> float:
    return float(np.linalg.norm(shape[pair[0], :2] - shape[pair[1], :2]))


def set_eye_openness(
    shape: np.ndarray, controls_delta: np.ndarray, target_ratio: float
) -> np.ndarray:
    """`controls_delta` (21, 3) adjusted so both eyes open to `target_ratio`.

    `shape` is the face shape (468, 3) the delta applies to (y up, face units).
    """
    adjusted = controls_delta.copy()
    for lids, corners in ((LEFT_EYE_LIDS, LEFT_EYE_CORNERS), (RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS)):
        upper, lower = _ROW[lids[0]], _ROW[lids[1]]
        current = _gap(shape, lids) + adjusted[upper, 1] - adjusted[lower, 1]
        change = max(target_ratio, 0.0) * _width(shape, corners) - current
        adjusted[upper, 1] += UPPER_LID_SHARE * change
        adjusted[lower, 1] -= (1.0 - UPPER_LID_SHARE) * change
    return adjusted


def set_lip_openness(
    shape: np.ndarray, controls_delta: np.ndarray, target_ratio: float
) -> np.ndarray:
    """`controls_delta` adjusted so the inner lips open to `target_ratio` of the mouth width."""
    adjusted = controls_delta.copy()
    upper, lower = _ROW[INNER_LIPS[0]], _ROW[INNER_LIPS[1]]
    current = _gap(shape, INNER_LIPS) + adjusted[upper, 1] - adjusted[lower, 1]
    change = max(target_ratio, 0.0) * _width(shape, MOUTH_CORNERS) - current
    for vertex, share in MOUTH_OPENING.items():
        adjusted[_ROW[vertex], 1] += share * change
    return adjusted
