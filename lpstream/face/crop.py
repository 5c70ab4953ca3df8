"""LivePortrait's crop geometry on MediaPipe landmarks, plus a causal live crop.

Official behaviour, restated: take the face's landmarks, find the direction from the eye
centre to the mouth centre (`uy`) and its perpendicular (`ux`), measure the landmarks' extent in
that rotated frame, make it square with the larger side, multiply by `scale`, move the centre
"up" (towards the forehead, along −uy) by `shift_up × size`, and map that square onto the
`size × size` crop.

- Source portrait: scale 2.3, shift up 0.125, rotated so the eye → mouth line is vertical;
  512-pixel crop (the networks take it resized to 256).
- Driving frames: scale 2.2, shift up 0.1, no rotation (the square's centre and side still come
  from the rotated frame, as in the official code). The official code averages the box over the
  whole video; a live stream cannot look ahead, so `LiveCropper` smooths it causally with a
  One-Euro filter instead.

The official crop uses landmark sets without the forehead (insightface's 106 points, its own
203 points), so the box's extent here comes from MediaPipe's jaw contour up to the temples plus
the eyebrows (`EXTENT_INDICES`); the forehead vertices of MediaPipe's mesh would make the box
taller than the official one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from lpstream.errors import ImageError
from lpstream.face.landmarks import NUM_LANDMARKS, FaceLandmarks
from lpstream.face.smoothing import OneEuroFilter

SOURCE_SCALE = 2.3
SOURCE_SHIFT_UP = 0.125
SOURCE_CROP_SIZE = 512
DRIVING_SCALE = 2.2
DRIVING_SHIFT_UP = 0.1
NETWORK_INPUT_SIZE = 256

JAW_CONTOUR = (
    162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389,
)  # fmt: skip
"""MediaPipe face-oval vertices from temple to temple under the chin (forehead excluded)."""
EYEBROWS = (
    70, 63, 105, 66, 107, 55, 65, 52, 53, 46,
    300, 293, 334, 296, 336, 285, 295, 282, 283, 276,
)  # fmt: skip
"""Both eyebrows (upper and lower edges)."""
EXTENT_INDICES = np.array(JAW_CONTOUR + EYEBROWS, dtype=np.intp)
"""Vertices whose extent sizes the crop box, like the official 106/203-point sets."""
LEFT_EYE_POINTS = (33, 133, 159, 145)
"""Image-left eye: corners and mid lids; their mean is the eye centre."""
RIGHT_EYE_POINTS = (263, 362, 386, 374)
"""Image-right eye: corners and mid lids."""
MOUTH_CORNER_POINTS = (61, 291)
"""Mouth corners; their mean is the mouth centre."""


def _points_xy(landmarks: FaceLandmarks | np.ndarray) -> np.ndarray:
    points = landmarks.points if isinstance(landmarks, FaceLandmarks) else np.asarray(landmarks)
    if points.ndim != 2 or points.shape[0] != NUM_LANDMARKS or points.shape[1] < 2:
        raise ValueError(f"expected (478, 2 or 3) MediaPipe landmarks, got {points.shape}")
    return points[:, :2].astype(np.float64)


def eye_centres(landmarks: FaceLandmarks | np.ndarray) -> np.ndarray:
    """(2, 2): centre of the image-left eye, then the image-right eye, in pixels."""
    xy = _points_xy(landmarks)
    return np.stack([xy[list(LEFT_EYE_POINTS)].mean(0), xy[list(RIGHT_EYE_POINTS)].mean(0)])


@dataclass(frozen=True)
class FaceRect:
    """A square around a face, possibly rotated with the face."""

    cx: float
    """Centre x in image pixels."""
    cy: float
    """Centre y in image pixels."""
    size: float
    """Side length in image pixels."""
    angle: float
    """Rotation in radians of the square's x-axis from the image's x-axis (0: upright)."""

    def original_to_crop(self, crop_size: int) -> np.ndarray:
        """3×3 similarity mapping image pixels to `crop_size`² crop pixels."""
        scale = crop_size / self.size
        cos_a, sin_a = math.cos(self.angle), math.sin(self.angle)
        # Rows are the square's axes (ux, uy) in image coordinates, scaled to crop pixels.
        linear = scale * np.array([[cos_a, sin_a], [-sin_a, cos_a]])
        offset = np.array([crop_size / 2.0, crop_size / 2.0]) - linear @ (self.cx, self.cy)
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = offset
        return matrix

    def crop_to_original(self, crop_size: int) -> np.ndarray:
        """3×3 inverse of `original_to_crop`."""
        return np.linalg.inv(self.original_to_crop(crop_size))


def face_rect(
    landmarks: FaceLandmarks | np.ndarray,
    scale: float,
    shift_up: float,
    rotate: bool,
) -> FaceRect:
    """The official square (see the module docstring) for one face's 478 landmarks."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    xy = _points_xy(landmarks)
    eye_centre = eye_centres(xy).mean(0)
    mouth_centre = xy[list(MOUTH_CORNER_POINTS)].mean(0)
    uy = mouth_centre - eye_centre
    length = float(np.linalg.norm(uy))
    uy = uy / length if length > 1e-3 else np.array([0.0, 1.0])
    ux = np.array([uy[1], -uy[0]])
    axes = np.stack([ux, uy])

    extent = xy[EXTENT_INDICES]
    rotated = extent @ axes.T  # coordinates along ux, uy
    low, high = rotated.min(0), rotated.max(0)
    side = float((high - low).max()) * scale
    if not side > 1e-6:  # also catches NaN landmarks
        raise ValueError(f"face landmarks span no area (box side {side}); cannot crop")
    centre_rotated = (low + high) / 2.0 - np.array([0.0, shift_up * side])
    centre = axes.T @ centre_rotated
    angle = math.atan2(ux[1], ux[0]) if rotate else 0.0
    return FaceRect(cx=float(centre[0]), cy=float(centre[1]), size=side, angle=angle)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ImageError(f"expected an (H, W, 3) image, got {shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got dtype {image.dtype}")


def warp_to_crop(image: np.ndarray, original_to_crop: np.ndarray, crop_size: int) -> np.ndarray:
    """Resample `image` into a `crop_size`² crop; outside the image is black."""
    _check_image(image)
    return cv2.warpAffine(
        image,
        original_to_crop[:2].astype(np.float64),
        (crop_size, crop_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 3×3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)[:, :2]
    return points @ matrix[:2, :2].T + matrix[:2, 2]


@dataclass(frozen=True, eq=False)
class CropResult:
    """A face crop and the transforms needed to paste a rendered crop back."""

    image: np.ndarray
    """(size, size, 3) uint8 crop."""
    crop_to_original: np.ndarray
    """3×3: crop pixels → original image pixels (for paste-back)."""
    original_to_crop: np.ndarray
    """3×3: original image pixels → crop pixels."""
    rect: FaceRect
    """The square the crop was taken from."""
    points: np.ndarray
    """(478, 2) float32 landmarks in crop pixels."""


def crop_source(
    image: np.ndarray,
    landmarks: FaceLandmarks,
    size: int = SOURCE_CROP_SIZE,
    scale: float = SOURCE_SCALE,
    shift_up: float = SOURCE_SHIFT_UP,
) -> CropResult:
    """Official source crop: rotated upright, scale 2.3, shifted up 0.125, `size`² pixels."""
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    rect = face_rect(landmarks, scale=scale, shift_up=shift_up, rotate=True)
    forward = rect.original_to_crop(size)
    return CropResult(
        image=warp_to_crop(image, forward, size),
        crop_to_original=np.linalg.inv(forward),
        original_to_crop=forward,
        rect=rect,
        points=apply_transform(forward, landmarks.points).astype(np.float32),
    )


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned square crop box for a driving frame."""

    cx: float
    """Centre x in frame pixels."""
    cy: float
    """Centre y in frame pixels."""
    size: float
    """Side length in frame pixels."""

    def original_to_crop(self, crop_size: int) -> np.ndarray:
        """3×3 mapping frame pixels to `crop_size`² crop pixels."""
        return FaceRect(self.cx, self.cy, self.size, 0.0).original_to_crop(crop_size)

    def crop_to_original(self, crop_size: int) -> np.ndarray:
        """3×3 mapping crop pixels back to frame pixels."""
        return np.linalg.inv(self.original_to_crop(crop_size))

    def as_array(self) -> np.ndarray:
        """(3,) float64: cx, cy, size."""
        return np.array([self.cx, self.cy, self.size])


def driving_box(landmarks: FaceLandmarks | np.ndarray) -> CropBox:
    """The official per-frame driving box (scale 2.2, shifted up 0.1, unrotated), unsmoothed."""
    rect = face_rect(landmarks, scale=DRIVING_SCALE, shift_up=DRIVING_SHIFT_UP, rotate=False)
    return CropBox(rect.cx, rect.cy, rect.size)


class LiveCropper:
    """Causal, temporally smoothed driving crop box.

    Each call to `update` sees only the current frame's landmarks (no look-ahead). The raw
    official box is smoothed by One-Euro filters in units of the face size at acquisition, so
    the same settings work at any resolution. Centre: at rest the cutoff is `centre_cutoff_hz`
    (steady box, little jitter in the extracted motion); when the head moves it rises with
    speed (`centre_beta`), which bounds the lag. Size: smoothed harder (`size_cutoff_hz`),
    because the raw size breathes with yaw and expression while the official offline crop
    keeps one size for the whole video; a box that changes size changes the motion's scale.

    Without a face `update` returns None. A face that returns within `max_gap_frames`
    continues the smoothing; after a longer gap, or when the raw box jumps by more than
    `reset_jump` box sizes (a different face), the filter restarts at the raw box.
    """

    def __init__(
        self,
        fps: float = 30.0,
        centre_cutoff_hz: float = 0.5,
        centre_beta: float = 6.0,
        size_cutoff_hz: float = 0.2,
        size_beta: float = 1.0,
        max_gap_frames: int = 10,
        reset_jump: float = 0.5,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.max_gap_frames = max_gap_frames
        self.reset_jump = reset_jump
        self._centre_settings = (centre_cutoff_hz, centre_beta)
        self._size_settings = (size_cutoff_hz, size_beta)
        self._centre: OneEuroFilter | None = None
        self._size: OneEuroFilter | None = None
        self._unit = 1.0  # face size at acquisition: the filters work in these units
        self._last_time: float | None = None
        self._missing = 0
        self._frame_index = 0

    def reset(self) -> None:
        """Forget the smoothing state (new camera, new call)."""
        self._centre = self._size = None
        self._last_time = None
        self._missing = 0

    def update(
        self, landmarks: FaceLandmarks | None, timestamp_s: float | None = None
    ) -> CropBox | None:
        """Smoothed box for this frame, or None without a face.

        `timestamp_s` defaults to frame count / fps; give real capture times when the frame
        rate varies.
        """
        if timestamp_s is None:
            timestamp_s = self._frame_index / self.fps
        self._frame_index += 1
        if landmarks is None:
            self._missing += 1
            if self._missing > self.max_gap_frames:
                self._centre = self._size = None
            return None
        self._missing = 0
        raw = driving_box(landmarks).as_array()
        if self._centre is not None and self._size is not None:
            centre = self._centre.value * self._unit
            jump = float(np.hypot(*(raw[:2] - centre))) / (self._size.value[0] * self._unit)
            if jump > self.reset_jump or self._last_time is None:
                self._centre = self._size = None
        if self._centre is None or self._size is None:
            self._unit = float(raw[2])
            normalised = raw / self._unit
            self._centre = OneEuroFilter(normalised[:2], *self._centre_settings)
            self._size = OneEuroFilter(normalised[2:], *self._size_settings)
            smoothed = normalised
        else:
            assert self._last_time is not None
            normalised = raw / self._unit
            # A repeated or backwards timestamp (clock glitch) counts as one nominal frame.
            dt = timestamp_s - self._last_time
            dt = dt if dt > 0 else 1.0 / self.fps
            smoothed = np.concatenate(
                [self._centre.step(normalised[:2], dt), self._size.step(normalised[2:], dt)]
            )
        self._last_time = timestamp_s
        cx, cy, size = (smoothed * self._unit).tolist()
        return CropBox(cx, cy, size)

    @staticmethod
    def crop(frame: np.ndarray, box: CropBox, size: int = NETWORK_INPUT_SIZE) -> np.ndarray:
        """The `size`² crop of `frame` under `box` (black outside the frame)."""
        if size < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        return warp_to_crop(frame, box.original_to_crop(size), size)
