"""One stable face per stream: landmarks, smoothed crop box and eye/lip ratios per frame.

Two MediaPipe landmarkers work together:

- a **follower** in video mode with `max_faces=1`. While it follows a face it never re-runs
  its face detector, it derives each frame's region from the previous landmarks. This matters:
  measured on d3.mp4, landmarks jitter half as much as with `max_faces=2`, where MediaPipe
  re-runs detection every frame a second face is not found and re-seeds from it;
- a **finder** in image mode (several faces), used only while no face is followed: at
  start-up, after a loss, or when the follower jumped to the wrong face.

Behaviour, frame by frame:

- **Tiny faces**: a face whose landmark box is smaller than `min_face_px` pixels or
  `min_face_fraction` of the frame's shorter side is treated as no face (its landmarks are too
  coarse to drive anyone, and a passer-by far behind the user must not steal the stream).
  Note that MediaPipe's detector (128×128 input) already misses faces smaller than about a
  sixth of the frame width (measured in 640×480: nothing under ~80 px), so the threshold
  mostly matters for small frames and for a followed face moving away from the camera.
- **Acquisition**: with no target the finder's largest face is taken. To make the follower lock
  onto that face and not another one, the other faces are greyed out in the frame the follower
  sees until it has locked on.
- **Several faces**: once locked, the follower stays on its face whatever the others do
  (another face growing larger does not steal the stream). Every result is checked for
  continuity with the previous target box (IoU ≥ `min_iou`, or centre within
  `max_centre_jump` face sizes); a jump to another face counts as a loss.
- **Loss**: the last result is repeated with `face_present=False` for `hold_frames` frames
  (covers a one-frame miss without a visible glitch), then `update` returns None. For
  `reacquire_after` frames the target is remembered and only a face near its last place is
  taken back (same person, smoothing continues); after that the largest face is acquired
  again wherever it is (re-entry anywhere, `track_id` increments).
- **No face at all**: `update` returns None.
- **Resolution change**: the tracker resets (new track) since old boxes no longer apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lpstream.errors import ImageError
from lpstream.face.crop import CropBox, LiveCropper
from lpstream.face.landmarks import FaceLandmarks, LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio

_MASK_GROW = 1.4
"""Other faces are greyed out over this multiple of their landmark box (hair, chin)."""
_LOCK_IOU = 0.5
"""The follower's face counts as the chosen one when their boxes overlap this much."""


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """The tracked face in one frame."""

    landmarks: FaceLandmarks
    """478 landmarks in frame pixels (the last seen ones when `face_present` is False)."""
    box: CropBox
    """Causally smoothed driving crop box (scale 2.2, shifted up 0.1: `lpstream.face.crop`)."""
    eye_ratio: np.ndarray
    """(2,) eye-open ratios (image-left, image-right)."""
    lip_ratio: float
    """Lip-open ratio."""
    face_present: bool
    """False while the tracker holds the last result over a short detection gap."""
    track_id: int
    """Increments each time a face is newly acquired (not after a short dropout)."""


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def grey_out(frame: np.ndarray, faces: list[FaceLandmarks]) -> np.ndarray:
    """A copy of `frame` with each face's (grown) box filled with mid-grey."""
    masked = frame.copy()
    height, width = frame.shape[:2]
    for face in faces:
        (cx, cy), half = face.centre(), face.size() * _MASK_GROW / 2.0
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(width, int(cx + half) + 1), min(height, int(cy + half) + 1)
        masked[y0:y1, x0:x1] = 128
    return masked


class FaceTracker:
    """Per-frame landmarks of one stable face; see the module docstring for the behaviour."""

    def __init__(
        self,
        fps: float = 30.0,
        max_faces: int = 4,
        min_face_px: float = 40.0,
        min_face_fraction: float = 0.05,
        min_iou: float = 0.3,
        max_centre_jump: float = 0.5,
        hold_frames: int = 3,
        reacquire_after: int = 15,
    ) -> None:
        if hold_frames < 0 or reacquire_after < hold_frames:
            raise ValueError("need 0 <= hold_frames <= reacquire_after")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.min_face_px = min_face_px
        self.min_face_fraction = min_face_fraction
        self.min_iou = min_iou
        self.max_centre_jump = max_centre_jump
        self.hold_frames = hold_frames
        self.reacquire_after = reacquire_after
        self._fps = fps
        self._follower = LandmarkDetector(max_faces=1, video_mode=True)
        self._finder = LandmarkDetector(max_faces=max_faces, video_mode=False)
        self._cropper = LiveCropper(fps=fps)
        self._locked = False  # the follower is on the target
        self._target: FaceLandmarks | None = None
        self._last: TrackedFace | None = None
        self._missing = 0
        self._track_id = 0
        self._frame_index = 0
        self._frame_shape: tuple[int, ...] | None = None

    def is_large_enough(self, face: FaceLandmarks) -> bool:
        """Whether a face is big enough to track (see "Tiny faces" in the module docstring)."""
        shorter_side = min(face.image_size)
        return face.size() >= max(self.min_face_px, self.min_face_fraction * shorter_side)

    def _continuity(self, face: FaceLandmarks) -> float | None:
        """How well `face` continues the target: its IoU with the last target box, or None
        when it is neither overlapping enough nor close enough to be the same face."""
        assert self._target is not None
        iou = box_iou(face.bbox(), self._target.bbox())
        (cx, cy), (tx, ty) = face.centre(), self._target.centre()
        close = np.hypot(cx - tx, cy - ty) <= self.max_centre_jump * self._target.size()
        return iou if (iou >= self.min_iou or close) else None

    def _follow(self, frame: np.ndarray, timestamp_ms: int) -> FaceLandmarks | None:
        found = [f for f in self._follower.detect(frame, timestamp_ms) if self.is_large_enough(f)]
        if found and self._target is not None and self._continuity(found[0]) is not None:
            return found[0]
        self._locked = False
        return None

    def _acquire(self, frame: np.ndarray, timestamp_ms: int) -> FaceLandmarks | None:
        faces = [f for f in self._finder.detect(frame) if self.is_large_enough(f)]
        if self._target is None:
            chosen = faces[0] if faces else None  # the finder lists the largest first
        else:
            scored = [(score, f) for f in faces if (score := self._continuity(f)) is not None]
            chosen = max(scored, key=lambda pair: pair[0])[1] if scored else None
        if chosen is None:
            return None
        others = [face for face in faces if face is not chosen]
        view = grey_out(frame, others) if others else frame
        followed = self._follower.detect(view, timestamp_ms)
        if followed and box_iou(followed[0].bbox(), chosen.bbox()) >= _LOCK_IOU:
            self._locked = True
            return followed[0]
        return chosen  # the follower locks on in a later frame

    def update(self, frame_rgb: np.ndarray, timestamp_ms: int | None = None) -> TrackedFace | None:
        """Track the face in one RGB uint8 frame; None when there is no (trackable) face.

        Give capture timestamps in milliseconds when frames are not evenly spaced at `fps`.
        """
        if timestamp_ms is None:
            timestamp_ms = round(self._frame_index * 1000.0 / self._fps)
        if not isinstance(frame_rgb, np.ndarray):
            raise ImageError(f"expected an RGB numpy array, got {type(frame_rgb).__name__}")
        self._frame_index += 1
        if frame_rgb.shape[:2] != self._frame_shape:
            # New resolution (camera switch): old boxes mean nothing in the new pixel frame.
            if self._frame_shape is not None:
                self.reset()
            self._frame_shape = frame_rgb.shape[:2]
        face = self._follow(frame_rgb, timestamp_ms) if self._locked else None
        if face is None:
            # Not following, or the follower just lost or left the target: look again now
            # (the follower bumps the repeated timestamp by 1 ms).
            face = self._acquire(frame_rgb, timestamp_ms)
        if face is None:
            return self._on_missing(timestamp_ms / 1000.0)
        if self._target is None:
            self._track_id += 1
            self._cropper.reset()
        self._target = face
        self._missing = 0
        box = self._cropper.update(face, timestamp_ms / 1000.0)
        assert box is not None
        self._last = TrackedFace(
            landmarks=face,
            box=box,
            eye_ratio=eye_open_ratio(face.points),
            lip_ratio=lip_open_ratio(face.points),
            face_present=True,
            track_id=self._track_id,
        )
        return self._last

    def _on_missing(self, timestamp_s: float) -> TrackedFace | None:
        self._cropper.update(None, timestamp_s)
        if self._target is None:
            return None
        self._missing += 1
        if self._missing > self.reacquire_after:
            self._target = None
            self._last = None
            return None
        if self._missing <= self.hold_frames and self._last is not None:
            held = self._last
            return TrackedFace(
                landmarks=held.landmarks,
                box=held.box,
                eye_ratio=held.eye_ratio,
                lip_ratio=held.lip_ratio,
                face_present=False,
                track_id=held.track_id,
            )
        return None

    def reset(self) -> None:
        """Forget the target and the smoothing (new camera, new call)."""
        self._locked = False
        self._target = None
        self._last = None
        self._missing = 0
        self._cropper.reset()

    def close(self) -> None:
        """Release both landmarkers."""
        self._follower.close()
        self._finder.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
