"""Sender of the LivePortrait backend: camera frame -> face crop -> M -> Motion.

The face is tracked by lpstream.face, the causal 256² crop goes through the motion
extractor M, and the pose (in degrees), t, scale and expression are sent together with the
eye/lip-open ratios measured on the landmarks.
"""

from __future__ import annotations

import numpy as np
import torch

from lpstream.backend import SenderOutput
from lpstream.face.crop import NETWORK_INPUT_SIZE, LiveCropper
from lpstream.face.tracker import FaceTracker
from lpstream.liveportrait.device import choose_device
from lpstream.liveportrait.images import check_rgb, image_tensor
from lpstream.liveportrait.keypoints import headpose_to_degrees
from lpstream.liveportrait.weights import LivePortraitNetworks
from lpstream.motion import NUM_KEYPOINTS, Motion


def motion_from_extractor(output: dict[str, torch.Tensor]) -> Motion:
    """The transmittable Motion of sample 0 of M's output (pose in degrees)."""
    return Motion(
        pitch=float(headpose_to_degrees(output["pitch"])[0]),
        yaw=float(headpose_to_degrees(output["yaw"])[0]),
        roll=float(headpose_to_degrees(output["roll"])[0]),
        t=output["t"][0].float().cpu().numpy(),
        scale=float(output["scale"][0, 0]),
        exp=output["exp"][0].float().cpu().numpy().reshape(NUM_KEYPOINTS, 3),
    )


class LivePortraitSender:
    """MotionSender: camera frame -> face crop -> M -> Motion (with eye/lip ratios).

    Faces are followed by lpstream.face's FaceTracker (largest face acquired, then followed by
    continuity; short dropouts repeat the last face, no face gives no motion). The output's
    `face_id` is the tracker's id of the followed face.
    """

    def __init__(
        self,
        networks: LivePortraitNetworks,
        device: str | torch.device = "auto",
        fps: float = 30.0,
        tracker: FaceTracker | None = None,
    ) -> None:
        self._plan = choose_device(device)
        self._motion_extractor = networks.motion_extractor.to(self._plan.device, torch.float32)
        self._tracker = tracker if tracker is not None else FaceTracker(max_faces=2, fps=fps)
        self._face_id: int | None = None

    def extract(self, frame_rgb: np.ndarray, timestamp_ms: int | None = None) -> SenderOutput:
        tracked = self._tracker.update(check_rgb(frame_rgb, "frame"), timestamp_ms)
        if tracked is None:
            return SenderOutput(None, self._face_id)
        self._face_id = tracked.track_id
        crop = LiveCropper.crop(frame_rgb, tracked.box, NETWORK_INPUT_SIZE)
        with torch.inference_mode():
            output = self._motion_extractor(image_tensor(crop, self._plan, torch.float32))
        motion = motion_from_extractor(output)
        motion.eye_ratio = np.asarray(tracked.eye_ratio, dtype=np.float32)
        motion.lip_ratio = float(tracked.lip_ratio)
        motion.extra["face_present"] = float(tracked.face_present)
        return SenderOutput(motion, self._face_id)

    def reset(self) -> None:
        self._tracker.reset()
        self._face_id = None

    def close(self) -> None:
        self._tracker.close()
