"""What a backend is: its two stages (sender, renderer) and the object that describes it.

Each backend folder (`lpstream/liveportrait/`, `lpstream/meshwarp/`) exposes one `Backend`
in its `backend.py`; `lpstream.backend_registry` lists them and chooses one. Nothing else
asks which backend runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lpstream.motion import Motion
from lpstream.protocol.profiles import CodecProfile


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
    voice_mouth: bool = True
    """While the sender's face is gone, open the avatar's mouth with their voice
    (`lpstream.node.neutral_pose`, which turns it into `lip_open`; renderers ignore it)."""


@dataclass(frozen=True)
class SenderOutput:
    """What the sender stage makes of one camera frame."""

    motion: Motion | None
    """Motion of the tracked face, or None when no face is seen in this frame."""
    face_id: int | None
    """The face tracker's id of the face the motion belongs to. It changes when another face
    is acquired (the receiver then takes a new reference pose), is kept while no face is
    seen, and is None until a face was tracked (and again after `reset`)."""


@runtime_checkable
class MotionSender(Protocol):
    """Sender stage: camera frame -> motion."""

    def extract(self, frame_rgb: np.ndarray, timestamp_ms: int | None = None) -> SenderOutput:
        """Motion of the face in an RGB uint8 (H, W, 3) frame, and which face it is."""
        ...

    def reset(self) -> None:
        """Forget tracking state (new call, new camera)."""
        ...

    def close(self) -> None:
        """Release what the stage holds (landmarker threads, networks); a no-op if nothing."""
        ...


@runtime_checkable
class AvatarRenderer(Protocol):
    """Receiver stage: cached source portrait + motion + controls -> frame."""

    def set_source(self, image_rgb: np.ndarray) -> None:
        """Prepare a source portrait (RGB uint8). Raises NoFaceError if it has no face."""
        ...

    def render(self, motion: Motion, controls: Controls | None = None) -> np.ndarray:
        """The source animated by `motion`, as an RGB uint8 frame of the source's size.

        The first motion after `set_source`/`reset_reference` is the driver's reference
        pose: later motions are applied as their change from it, so the source keeps its own
        pose and expression (`lpstream.liveportrait.keypoints.relative_motion`).
        """
        ...

    def reset_reference(self) -> None:
        """Take the next motion as the new driver reference."""
        ...

    def close(self) -> None:
        """Release what the stage holds (landmarker threads, networks); a no-op if nothing."""
        ...


@dataclass(frozen=True)
class BackendOptions:
    """How to build a backend's stages; a backend ignores what it does not use."""

    weights: Path | None = None
    """Weights folder, or None for the default (`LPSTREAM_WEIGHTS`, else `models/`)."""
    device: str = "auto"
    """Torch device: auto, cpu or cuda."""


@runtime_checkable
class Backend(Protocol):
    """One backend: what it is called, how its motion is coded, whether it can run here, and
    how to build its stages. Cheap to import: heavy modules load in `create_*`."""

    name: str
    """Canonical name, as in `--backend` and the Hello message."""
    aliases: tuple[str, ...]
    """Other names `--backend` accepts."""
    codec_profile: CodecProfile
    """Codec profile of the kind of motion its sender produces (travels in keyframes)."""
    runs_in_browser: bool
    """Whether the web client can extract and render this backend's motion itself (then a
    browser may send and receive motion instead of camera and video)."""

    def unavailable_reason(self, options: BackendOptions) -> str | None:
        """None when the backend can run here with `options`, else why not, in words a user
        can act on."""
        ...

    def create_sender(self, options: BackendOptions) -> MotionSender:
        """A new sender stage (one per camera)."""
        ...

    def create_renderer(self, options: BackendOptions) -> AvatarRenderer:
        """A new renderer stage (one per animated portrait)."""
        ...

    def browser_source(self, image_rgb: np.ndarray) -> dict[str, object]:
        """What the web client's renderer needs of a portrait, JSON-serialisable (only when
        `runs_in_browser`; raises NoFaceError without a face)."""
        ...
