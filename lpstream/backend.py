"""The two small interfaces every backend implements; nothing else asks which backend runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from lpstream.motion import Motion


@dataclass
class Controls:
    """Live receiver-side controls (sliders in the browser client)."""

    eye_open: float | None = None
    """Target eye-open ratio, or None to follow the sender."""
    lip_open: float | None = None
    """Target lip-open ratio, or None to follow the sender."""
    head_motion: float = 1.0
    """Multiplier on head rotation and translation relative to the reference pose."""
    stitching: bool = True
    """Keep the face stitched into the unchanged shoulders/background."""


@runtime_checkable
class MotionSender(Protocol):
    """Sender stage: camera frame -> motion."""

    name: str

    def extract(self, frame_rgb: np.ndarray, timestamp_ms: int | None = None) -> Motion | None:
        """Motion of the face in an RGB uint8 (H, W, 3) frame, or None when no face is seen."""
        ...

    def reset(self) -> None:
        """Forget tracking state (new call, new camera)."""
        ...


@runtime_checkable
class AvatarRenderer(Protocol):
    """Receiver stage: cached source portrait + motion + controls -> frame."""

    name: str

    def set_source(self, image_rgb: np.ndarray) -> None:
        """Prepare a source portrait (RGB uint8). Raises NoFaceError if it has no face."""
        ...

    def render(self, motion: Motion, controls: Controls | None = None) -> np.ndarray:
        """The source animated by `motion`, as an RGB uint8 frame of the source's size.

        The first motion after `set_source`/`reset_reference` is the driver's reference
        pose (relative motion, SPEC §3).
        """
        ...

    def reset_reference(self) -> None:
        """Take the next motion as the new driver reference."""
        ...
