"""Paste-back of a rendered crop into the source frame (`lpstream.liveportrait.paste_back`)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lpstream.errors import ImageError
from lpstream.liveportrait.paste_back import PasteBack, soft_crop_mask


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array(
        [
            [scale * math.cos(a), -scale * math.sin(a), tx],
            [scale * math.sin(a), scale * math.cos(a), ty],
            [0.0, 0.0, 1.0],
        ]
    )


def test_soft_mask_is_one_inside_and_fades_to_zero_at_the_edges() -> None:
    mask = soft_crop_mask(512, feather=0.03)
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask[40:-40, 40:-40].min() == 1.0
    assert mask[0].max() < 0.01 and mask[:, -1].max() < 0.01
    row = mask[256, :40]
    assert np.all(np.diff(row) >= 0) and 0.0 < row[7] < 1.0  # a monotone ramp, not a step
    np.testing.assert_array_equal(mask, mask.T)
    np.testing.assert_array_equal(mask, mask[::-1, ::-1])


def test_soft_mask_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        soft_crop_mask(1)
    with pytest.raises(ValueError):
        soft_crop_mask(64, feather=0.6)


def test_identity_placement_blends_inside_and_keeps_outside() -> None:
    original = np.full((300, 400, 3), 10, np.uint8)
    crop_to_original = np.array([[1.0, 0, 50], [0, 1.0, 20], [0, 0, 1]])  # crop at (50, 20)
    paste = PasteBack.prepare(original, crop_to_original, crop_size=128)
    rendered = np.full((128, 128, 3), 250, np.uint8)
    result = paste(rendered)
    assert result.shape == original.shape and result.dtype == np.uint8
    assert np.all(result[20 + 20 : 20 + 108, 50 + 20 : 50 + 108] == 250)  # mask 1: rendered
    outside = np.ones(original.shape[:2], bool)
    outside[20:148, 50:178] = False
    assert np.all(result[outside] == 10)  # untouched outside the crop
    edge = result[84, 50]  # first crop column: mostly original
    assert 10 <= edge[0] < 60
    assert paste.box == (50, 20, 178, 148)
    assert np.all(original == 10)  # the source frame itself is never modified


def test_blend_equals_formula_for_a_rotated_scaled_crop() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    crop_to_original = similarity(0.4, 20.0, 140.0, 20.0)
    paste = PasteBack.prepare(original, crop_to_original, crop_size=256)
    rendered = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    size = (original.shape[1], original.shape[0])
    mask = cv2.warpAffine(soft_crop_mask(256), crop_to_original[:2], size)[..., None]
    warped = cv2.warpAffine(rendered, crop_to_original[:2], size).astype(np.float32)
    expected = mask * warped + (1 - mask) * original.astype(np.float32)
    error = np.abs(paste(rendered).astype(np.float32) - expected)
    # OpenCV's fixed-point warp rounds sub-pixel positions differently inside the box: on
    # random-noise images that moves a few pixels by ~1 level; on average it is negligible.
    assert error.max() <= 2.0 and error.mean() < 0.3


def test_rendered_crop_at_another_resolution_lands_in_the_same_place() -> None:
    original = np.zeros((400, 400, 3), np.uint8)
    crop_to_original = similarity(0.5, -30.0, 150.0, 120.0)
    paste = PasteBack.prepare(original, crop_to_original, crop_size=512)
    marker = np.zeros((512, 512, 3), np.uint8)
    marker[300:340, 200:240] = 255  # a bright square centred at crop (219.5, 319.5)
    small = cv2.resize(marker, (256, 256), interpolation=cv2.INTER_AREA)
    for rendered in (marker, small):
        result = paste(rendered)[..., 0].astype(np.float64)
        ys, xs = np.nonzero(result > 127)
        centre = np.array([xs.mean(), ys.mean()])
        expected = crop_to_original[:2] @ np.array([219.5, 319.5, 1.0])
        assert np.linalg.norm(centre - expected) < 1.0


def test_bad_inputs_raise_typed_errors() -> None:
    original = np.zeros((100, 100, 3), np.uint8)
    paste = PasteBack.prepare(original, np.eye(3), crop_size=64)
    with pytest.raises(ImageError):
        paste(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ImageError):
        paste(np.zeros((64, 32, 3), np.uint8))
    with pytest.raises(ImageError):
        PasteBack.prepare(np.zeros((100, 100), np.uint8), np.eye(3), crop_size=64)
    with pytest.raises(ValueError, match="overlap"):
        PasteBack.prepare(original, similarity(1.0, 0.0, 1000.0, 0.0), crop_size=64)
    with pytest.raises(ValueError, match="3×3"):
        PasteBack.prepare(original, np.eye(4), crop_size=64)
