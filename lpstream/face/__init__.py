"""Face stage: landmarks, eye/lip ratios, the official crop geometry and a causal tracker."""

from lpstream.face.crop import CropBox, CropResult, LiveCropper, crop_source, driving_box
from lpstream.face.landmarks import FaceLandmarks, LandmarkDetector, find_face_landmarker_model
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.face.tracker import FaceTracker, TrackedFace

__all__ = [
    "CropBox",
    "CropResult",
    "FaceLandmarks",
    "FaceTracker",
    "LandmarkDetector",
    "LiveCropper",
    "TrackedFace",
    "crop_source",
    "driving_box",
    "eye_open_ratio",
    "find_face_landmarker_model",
    "lip_open_ratio",
]
