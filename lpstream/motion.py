"""The per-frame motion a sender transmits: the one data object shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_KEYPOINTS = 21


def _vector(value: object, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.shape != shape:
        array = array.reshape(shape) if array.size == int(np.prod(shape)) else array
    if array.shape != shape:
        raise ValueError(f"Motion.{name} must have shape {shape}, got {array.shape}")
    return array


@dataclass
class Motion:
    """LivePortrait implicit-keypoint motion of one frame.

    Units and wire ranges: docs/protocol.md §2; how a renderer applies it:
    `lpstream.liveportrait.keypoints.relative_motion`.

    Both backends speak this structure, so the codec, the wire and the node never ask
    which backend produced it.
    """

    pitch: float
    """Head pitch in degrees (positive: looking down, LivePortrait convention)."""
    yaw: float
    """Head yaw in degrees."""
    roll: float
    """Head roll in degrees."""
    t: np.ndarray
    """Translation (3,) in normalised keypoint space; t[2] is ignored by the renderer."""
    scale: float
    """Keypoint scale (about 1.1-1.7 for LivePortrait)."""
    exp: np.ndarray
    """Expression deltas (21, 3) in normalised keypoint space."""
    eye_ratio: np.ndarray | None = None
    """Optional eye-open ratios (left, right), as (2,)."""
    lip_ratio: float | None = None
    """Optional lip-open ratio."""
    extra: dict[str, float] = field(default_factory=dict)
    """Backend-private scalars that never cross the wire (diagnostics only)."""

    def __post_init__(self) -> None:
        self.pitch = float(self.pitch)
        self.yaw = float(self.yaw)
        self.roll = float(self.roll)
        self.scale = float(self.scale)
        self.t = _vector(self.t, (3,), "t")
        self.exp = _vector(self.exp, (NUM_KEYPOINTS, 3), "exp")
        if self.eye_ratio is not None:
            self.eye_ratio = _vector(self.eye_ratio, (2,), "eye_ratio")
        if self.lip_ratio is not None:
            self.lip_ratio = float(self.lip_ratio)

    def copy(self) -> Motion:
        return Motion(
            self.pitch,
            self.yaw,
            self.roll,
            self.t.copy(),
            self.scale,
            self.exp.copy(),
            None if self.eye_ratio is None else self.eye_ratio.copy(),
            self.lip_ratio,
            dict(self.extra),
        )


LivePortraitMotion = Motion
"""The name the protocol API uses for the same structure."""
