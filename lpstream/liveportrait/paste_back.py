"""Paste a rendered face crop back into the source frame.

A soft mask (1 inside the crop, fading to 0 over a thin border) is warped into the source
frame once per source; each rendered crop is then warped the same way and blended:
`mask · warp(output) + (1 − mask) · original`. Only the mask's bounding box is touched per
frame, so the cost scales with the face, not the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lpstream.errors import ImageError

DEFAULT_FEATHER = 0.03
"""Width of the mask's soft border as a fraction of the crop side (≈15 px at 512)."""


def soft_crop_mask(size: int, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """(size, size) float32 mask: 1 in the interior, a smoothstep ramp to 0 at the edges."""
    if size < 2:
        raise ValueError(f"mask size must be at least 2, got {size}")
    if not 0.0 < feather < 0.5:
        raise ValueError(f"feather must be in (0, 0.5), got {feather}")
    # Distance of each pixel centre from the nearest edge, in units of the border width.
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    ramp = np.clip(np.minimum(centres, 1.0 - centres) / feather, 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no visible crease where it ends
    return np.minimum(ramp[:, None], ramp[None, :])


def _check_rgb(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"{name} must be an (H, W, 3) image, got {getattr(image, 'shape', image)}")
    if image.dtype != np.uint8:
        raise ImageError(f"{name} must be uint8, got {image.dtype}")


@dataclass(frozen=True)
class PasteBack:
    """Blends rendered crops into one source frame; build it with `PasteBack.prepare`."""

    original: np.ndarray
    """(H, W, 3) uint8 source frame."""
    crop_to_original: np.ndarray
    """3×3: pixels of a `crop_size`² crop → source-frame pixels."""
    crop_size: int
    """Side of the crop `crop_to_original` is defined for."""
    box: tuple[int, int, int, int]
    """(x0, y0, x1, y1): the part of the frame the mask touches (exclusive ends)."""
    mask: np.ndarray
    """(y1 − y0, x1 − x0, 1) float32 mask inside `box`."""
    original_in_box: np.ndarray
    """float32 copy of the source pixels inside `box`."""

    @classmethod
    def prepare(
        cls,
        original: np.ndarray,
        crop_to_original: np.ndarray,
        crop_size: int,
        feather: float = DEFAULT_FEATHER,
    ) -> PasteBack:
        """Warp the soft crop mask into `original` once; all later blends reuse it."""
        _check_rgb(original, "original")
        matrix = np.asarray(crop_to_original, dtype=np.float64)
        if matrix.shape == (2, 3):
            matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
        if matrix.shape != (3, 3):
            raise ValueError(f"crop_to_original must be 3×3 or 2×3, got {matrix.shape}")
        height, width = original.shape[:2]
        mask = cv2.warpAffine(
            soft_crop_mask(crop_size, feather), matrix[:2], (width, height), flags=cv2.INTER_LINEAR
        )
        rows, cols = np.nonzero(mask > 0.0)
        if rows.size == 0:
            raise ValueError("the crop does not overlap the frame: nothing to paste back")
        x0, y0, x1, y1 = int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1
        return cls(
            original=original,
            crop_to_original=matrix,
            crop_size=int(crop_size),
            box=(x0, y0, x1, y1),
            mask=np.ascontiguousarray(mask[y0:y1, x0:x1, None]),
            original_in_box=original[y0:y1, x0:x1].astype(np.float32),
        )

    def __call__(self, rendered: np.ndarray) -> np.ndarray:
        """The source frame with `rendered` (a crop of any square size, uint8) blended in."""
        _check_rgb(rendered, "rendered crop")
        if rendered.shape[0] != rendered.shape[1]:
            raise ImageError(f"rendered crop must be square, got {rendered.shape[:2]}")
        x0, y0, x1, y1 = self.box
        # rendered pixels → crop pixels (resolution change) → frame pixels → box pixels
        step = self.crop_size / rendered.shape[1]
        offset = (step - 1.0) / 2.0  # pixel centres, not corners, line up
        to_crop = np.array([[step, 0.0, offset], [0.0, step, offset], [0.0, 0.0, 1.0]])
        to_box = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        matrix = to_box @ self.crop_to_original @ to_crop
        warped = cv2.warpAffine(rendered, matrix[:2], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
        blended = self.mask * warped + (1.0 - self.mask) * self.original_in_box
        result = self.original.copy()
        result[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return result
