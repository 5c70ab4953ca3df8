"""RGB frames in, network tensors out: the input checks and conversion both stages share."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from lpstream.errors import ImageError
from lpstream.face.crop import NETWORK_INPUT_SIZE
from lpstream.liveportrait.device import DevicePlan


def check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """`image` itself when it is an (H, W, 3) uint8 array; else ImageError naming `name`."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ImageError(f"{name} must be an (H, W, 3) RGB image, got {shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"{name} must be uint8, got {image.dtype}")
    return image


def image_tensor(image_rgb: np.ndarray, plan: DevicePlan, dtype: torch.dtype) -> torch.Tensor:
    """A 256² network input, 1×3×256×256 in [0, 1], from an RGB uint8 crop of any size."""
    if image_rgb.shape[:2] != (NETWORK_INPUT_SIZE, NETWORK_INPUT_SIZE):
        size = (NETWORK_INPUT_SIZE, NETWORK_INPUT_SIZE)
        image_rgb = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    tensor = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(plan.device)
    return (tensor.permute(2, 0, 1)[None].to(dtype) / 255.0).clamp(0.0, 1.0)
