"""Sender of the built-in backend: camera frame -> landmarks -> compact motion."""

from __future__ import annotations

import numpy as np

from lpstream.backend import SenderOutput
from lpstream.face.tracker import FaceTracker
from lpstream.meshwarp.face_motion import motion_from_landmarks
from lpstream.meshwarp.smoothing import MotionSmoother
from lpstream.meshwarp.topology import FaceTopology, face_topology
from lpstream.motion import Motion


class MeshwarpSender:
    """MotionSender of the built-in backend.

    Faces are followed by lpstream.face's FaceTracker: the largest face is acquired and then
    followed by continuity (a second face never steals the stream), faces smaller than the
    tracker's minimum are ignored, a one-to-three-frame dropout repeats the last motion, and
    no face gives no motion. The output's `face_id` (the tracker's id) changes when a
    different face is acquired. Motion is One-Euro smoothed unless `smooth` is False; the
    filter restarts whenever the face is lost or a new one is acquired.
    """

    def __init__(
        self,
        fps: float = 30.0,
        tracker: FaceTracker | None = None,
        topology: FaceTopology | None = None,
        smooth: bool = True,
    ) -> None:
        self._tracker = tracker if tracker is not None else FaceTracker(max_faces=2, fps=fps)
        self._topology = topology or face_topology()
        self._smoother = MotionSmoother() if smooth else None
        self._fps = fps
        self._frames = 0
        self._track_id: int | None = None
        self._last: Motion | None = None

    def extract(self, frame_rgb: np.ndarray, timestamp_ms: int | None = None) -> SenderOutput:
        clock_ms = self._frames * 1000.0 / self._fps if timestamp_ms is None else timestamp_ms
        self._frames += 1
        tracked = self._tracker.update(frame_rgb, timestamp_ms)
        if tracked is None:
            self._forget()
            return SenderOutput(None, self._track_id)
        if tracked.track_id != self._track_id:
            self._forget()
        self._track_id = tracked.track_id
        if tracked.face_present or self._last is None:
            face = tracked.landmarks
            motion = motion_from_landmarks(face.points, face.image_size, self._topology)
            if self._smoother is not None:
                motion = self._smoother.smooth(motion, clock_ms)
            self._last = motion
        # During a short dropout the tracker holds the last face: repeat the last motion.
        motion = self._last.copy()
        motion.extra["face_present"] = float(tracked.face_present)
        return SenderOutput(motion, self._track_id)

    def _forget(self) -> None:
        self._last = None
        if self._smoother is not None:
            self._smoother.reset()

    def reset(self) -> None:
        self._tracker.reset()
        self._frames = 0
        self._track_id = None
        self._forget()

    def close(self) -> None:
        self._tracker.close()
