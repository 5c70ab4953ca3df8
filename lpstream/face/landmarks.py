"""478-point face landmarks from MediaPipe's FaceLandmarker (Tasks API), in image pixels.

The landmarker model (`face_landmarker.task`, 3.7 MB, Apache-2.0, by Google's MediaPipe) is not
part of mediapipe's wheel, so it ships as package data of lpstream (`lpstream/face/models/`, see
the README there): `pip install .` and the wheel carry it, no extra step.
`find_face_landmarker_model` takes `$LPSTREAM_FACE_LANDMARKER` if set, else that file, and
checks its sha256.

Threads: mediapipe 1.2.2's Tasks API exposes no thread count (BaseOptions has only the model
and the delegate). Measured on this build, inference runs on one core: process CPU time equals
wall time per frame (~6 ms for 640×480 in VIDEO mode), so the second core stays free for
WebRTC. The extra OS threads mediapipe starts are idle dispatchers.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from lpstream.errors import ImageError, ModelFileError

NUM_LANDMARKS = 478
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_ENV_VAR = "LPSTREAM_FACE_LANDMARKER"
PACKAGED_MODEL = Path(__file__).resolve().parent / "models" / "face_landmarker.task"
_FIX_HINT = (
    f"reinstall lpstream (the model is its package data, {PACKAGED_MODEL}), or set "
    f"${MODEL_ENV_VAR} to a face_landmarker.task file with sha256 {MODEL_SHA256}"
)


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """One face's MediaPipe landmarks in the pixel frame of the analysed image.

    Compared by identity (`eq=False`): element-wise array equality has no single truth value.
    """

    points: np.ndarray
    """(478, 3) float32: x, y in pixels; z in the same pixel scale (MediaPipe z × width),
    negative towards the camera."""
    image_size: tuple[int, int]
    """(width, height) of the analysed image."""

    def __post_init__(self) -> None:
        if self.points.shape != (NUM_LANDMARKS, 3):
            raise ValueError(
                f"FaceLandmarks.points must be ({NUM_LANDMARKS}, 3), got {self.points.shape}"
            )

    def bbox(self) -> tuple[float, float, float, float]:
        """Tight box around all landmarks: x0, y0, x1, y1 in pixels."""
        x0, y0 = self.points[:, :2].min(axis=0)
        x1, y1 = self.points[:, :2].max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    def area(self) -> float:
        """Area of `bbox()` in square pixels."""
        x0, y0, x1, y1 = self.bbox()
        return (x1 - x0) * (y1 - y0)

    def centre(self) -> tuple[float, float]:
        """Centre of `bbox()` in pixels."""
        x0, y0, x1, y1 = self.bbox()
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def size(self) -> float:
        """Side of the landmark box: the larger of its width and height, in pixels."""
        x0, y0, x1, y1 = self.bbox()
        return max(x1 - x0, y1 - y0)

    def xy(self) -> np.ndarray:
        """(478, 2) float32 pixel coordinates."""
        return self.points[:, :2]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _verified(path: Path, size: int, mtime_ns: int) -> bool:
    """Hash once per (path, size, mtime): the model is 3.6 MB and read at every start-up."""
    del size, mtime_ns  # only part of the cache key: a replaced file is checked again
    return _sha256(path) == MODEL_SHA256


def find_face_landmarker_model() -> Path:
    """Path of a verified `face_landmarker.task`; raises ModelFileError naming the fix."""
    override = os.environ.get(MODEL_ENV_VAR)
    if override:
        path, origin = Path(override), f"${MODEL_ENV_VAR}"
    else:
        path, origin = PACKAGED_MODEL, "lpstream's package data"
    if not path.is_file():
        raise ModelFileError(
            f"face landmarker model {path} (from {origin}) is missing; {_FIX_HINT}"
        )
    stat = path.stat()
    if not _verified(path.resolve(), stat.st_size, stat.st_mtime_ns):
        raise ModelFileError(
            f"face landmarker model {path} (from {origin}) has the wrong sha256; {_FIX_HINT}"
        )
    return path


_OPEN_DETECTORS: weakref.WeakSet[LandmarkDetector] = weakref.WeakSet()
_LIVE_LANDMARKERS: dict[int, object] = {}
"""Strong references to every MediaPipe landmarker not yet closed. MediaPipe closes itself in
`__del__`, and that close waits on MediaPipe's own dispatcher thread: run by the garbage
collector in the middle of other work (an event loop, an executor thread) it can deadlock. So
a landmarker is never left to the collector: it is closed by `close()`, or, if its detector was
dropped unclosed, at the next safe point (a detector being created or closed) or at exit."""
_ABANDONED: list[int] = []
_REGISTRY_LOCK = threading.Lock()


def _abandon(key: int) -> None:
    # Runs inside the garbage collector: only record, never call into MediaPipe here.
    _ABANDONED.append(key)


def _close_abandoned() -> None:
    with _REGISTRY_LOCK:
        keys = _ABANDONED[:]
        del _ABANDONED[: len(keys)]  # keeps keys the collector appends meanwhile
        landmarkers = [_LIVE_LANDMARKERS.pop(key, None) for key in keys]
    for landmarker in landmarkers:
        if landmarker is not None:
            landmarker.close()


@atexit.register
def _close_open_detectors() -> None:
    # mediapipe's own finaliser fails noisily once the interpreter has torn down its modules;
    # closing every detector still open at exit, while modules are alive, avoids that.
    for detector in list(_OPEN_DETECTORS):
        detector.close()
    _close_abandoned()


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    if not isinstance(image_rgb, np.ndarray):
        raise ImageError(f"expected an RGB numpy array, got {type(image_rgb).__name__}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ImageError(f"expected an RGB image of shape (H, W, 3), got {image_rgb.shape}")
    if image_rgb.dtype != np.uint8:
        raise ImageError(f"expected a uint8 RGB image, got dtype {image_rgb.dtype}")
    if image_rgb.shape[0] < 1 or image_rgb.shape[1] < 1:
        raise ImageError(f"image is empty: {image_rgb.shape}")
    return np.ascontiguousarray(image_rgb)


class LandmarkDetector:
    """MediaPipe FaceLandmarker returning every face's landmarks, largest face first.

    In video mode MediaPipe tracks faces between frames: it only re-runs its face detector
    while it tracks fewer than `max_faces` faces. So with `max_faces=2` and one person in view
    it re-detects, and re-seeds the landmarks, every frame: measured on d3.mp4 that doubles
    landmark jitter (0.77 vs 0.41 px) and costs ~1 ms more than `max_faces=1`. For one
    face per stream use `max_faces=1` or `FaceTracker`.
    Video mode needs strictly increasing timestamps: a missing timestamp is taken from a
    monotonic clock, and a timestamp that does not increase (a restarted file, a clock
    going backwards) is bumped to one millisecond after the previous one, so callers never
    see MediaPipe's ValueError.
    """

    def __init__(
        self,
        max_faces: int = 2,
        num_threads: int = 1,
        video_mode: bool = True,
        min_confidence: float = 0.5,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if num_threads != 1:
            # The Tasks API has no thread setting; refuse rather than silently ignore it.
            raise ValueError(
                "mediapipe's Tasks API exposes no thread count; it runs on one thread "
                f"(num_threads must be 1, got {num_threads})"
            )
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        model_path = find_face_landmarker_model()
        # Imported here so that importing lpstream.face stays cheap for code that only
        # needs the geometry helpers.
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO if video_mode else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        _close_abandoned()
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        key = id(self._landmarker)
        with _REGISTRY_LOCK:
            _LIVE_LANDMARKERS[key] = self._landmarker
        self._finalizer = weakref.finalize(self, _abandon, key)
        _OPEN_DETECTORS.add(self)
        self.video_mode = video_mode
        self.max_faces = max_faces
        self._last_timestamp_ms: int | None = None
        self._clock_origin = time.monotonic()

    def _next_timestamp(self, timestamp_ms: int | None) -> int:
        if timestamp_ms is None:
            timestamp_ms = int((time.monotonic() - self._clock_origin) * 1000.0)
        timestamp_ms = int(timestamp_ms)
        if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
            timestamp_ms = self._last_timestamp_ms + 1
        self._last_timestamp_ms = timestamp_ms
        return timestamp_ms

    def detect(self, image_rgb: np.ndarray, timestamp_ms: int | None = None) -> list[FaceLandmarks]:
        """Landmarks of every face in an RGB uint8 (H, W, 3) image, largest first; [] if none.

        `timestamp_ms` is only used in video mode (see the class docstring).
        """
        if self._landmarker is None:
            raise RuntimeError("LandmarkDetector is closed")
        image_rgb = _check_image(image_rgb)
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=image_rgb)
        if self.video_mode:
            result = self._landmarker.detect_for_video(image, self._next_timestamp(timestamp_ms))
        else:
            result = self._landmarker.detect(image)
        height, width = image_rgb.shape[:2]
        scale = np.array([width, height, width], dtype=np.float32)
        faces = []
        for face in result.face_landmarks:
            normalised = np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32)
            faces.append(FaceLandmarks(points=normalised * scale, image_size=(width, height)))
        faces.sort(key=FaceLandmarks.area, reverse=True)
        return faces

    def close(self) -> None:
        """Release the MediaPipe graph; safe to call twice."""
        if self._landmarker is not None:
            self._finalizer.detach()
            with _REGISTRY_LOCK:
                _LIVE_LANDMARKERS.pop(id(self._landmarker), None)
            self._landmarker.close()
            self._landmarker = None
            _OPEN_DETECTORS.discard(self)
        _close_abandoned()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
