"""The LivePortrait backend: official networks, keypoint math, weights.

`load_networks(weights_dir, device="cpu")` returns the seven networks in eval mode;
`headpose_to_degrees`, `rotation_matrix` and `transform_keypoints` are the keypoint math
(`keypoints.py`); `backend.BACKEND` describes the backend to `lpstream.backend_registry`.
Torch-heavy modules load on first use so `import lpstream.liveportrait` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lpstream.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from lpstream.liveportrait.keypoints import (
        headpose_to_degrees,
        rotation_matrix,
        transform_keypoints,
    )
    from lpstream.liveportrait.weights import LivePortraitNetworks, check_weights, load_networks

__all__ = [
    "LivePortraitNetworks",
    "check_weights",
    "headpose_to_degrees",
    "load_networks",
    "rotation_matrix",
    "transform_keypoints",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "headpose_to_degrees": "lpstream.liveportrait.keypoints",
        "rotation_matrix": "lpstream.liveportrait.keypoints",
        "transform_keypoints": "lpstream.liveportrait.keypoints",
        "LivePortraitNetworks": "lpstream.liveportrait.weights",
        "check_weights": "lpstream.liveportrait.weights",
        "load_networks": "lpstream.liveportrait.weights",
    },
)
