"""Piecewise-affine warp and the painted mouth/lids, on synthetic meshes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lpstream.meshwarp.eyelids import lid_cover_strength, paint_lid
from lpstream.meshwarp.mouth import paint_cavity
from lpstream.meshwarp.stitching import SILHOUETTE_DEPTH, build_skirt
from lpstream.meshwarp.warp import triangle_affines, warp_image


def _textured(height: int = 120, width: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 1.5) % 256, (yy * 2.0) % 256, (xx + yy) % 256], axis=-1)
    return (base + rng.integers(0, 20, base.shape)).clip(0, 255).astype(np.uint8)


def _grid_mesh(x0: float, y0: float, x1: float, y1: float, n: int = 6):
    xs, ys = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    triangles = []
    for row in range(n - 1):
        for col in range(n - 1):
            a = row * n + col
            triangles += [[a, a + 1, a + n + 1], [a, a + n + 1, a + n]]
    return points, np.array(triangles, dtype=np.int32)


def test_affines_map_target_triangles_onto_source_triangles() -> None:
    source, triangles = _grid_mesh(10, 10, 90, 70)
    target = source * 1.1 + [3.0, -2.0]
    affines, valid = triangle_affines(source, target, triangles)
    assert valid.all()
    corners = np.concatenate([target[triangles], np.ones((*triangles.shape, 1))], axis=2)
    mapped = np.einsum("tij,tkj->tki", affines, corners)
    np.testing.assert_allclose(mapped, source[triangles], atol=1e-9)


def test_identity_mesh_leaves_the_image_unchanged() -> None:
    image = _textured()
    points, triangles = _grid_mesh(20, 15, 140, 105)
    out = warp_image(image, points, points, triangles, np.arange(len(triangles)))
    assert np.abs(out.astype(int) - image).max() <= 1


def test_translated_mesh_moves_the_content_and_nothing_outside() -> None:
    image = _textured()
    points, triangles = _grid_mesh(40, 30, 120, 90)
    inner = points.copy()
    x, y = points[:, 0], points[:, 1]
    interior = (x > 40) & (x < 120) & (y > 30) & (y < 90)
    inner[interior] += [6.0, 0.0]  # move the interior vertices, keep the border fixed
    out = warp_image(image, points, inner, triangles, np.arange(len(triangles)))
    # Pixels outside the mesh are untouched (the stitching guarantee) ...
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[26:95, 36:125] = False
    assert np.array_equal(out[outside], image[outside])
    # ... and inside, content moved right by 6 px where the whole neighbourhood moved.
    np.testing.assert_allclose(
        out[55:66, 76:86].astype(float), image[55:66, 70:80].astype(float), atol=3
    )


def test_background_transform_moves_everything_when_unstitched() -> None:
    image = _textured()
    points, triangles = _grid_mesh(40, 30, 120, 90)
    background = np.array([[1.0, 0.0, -5.0], [0.0, 1.0, 0.0]])  # target -> source: x - 5
    moved = points + np.array([5.0, 0.0])
    out = warp_image(image, points, moved, triangles, np.arange(len(triangles)), background)
    np.testing.assert_allclose(out[5:20, 20:150].astype(float), image[5:20, 15:145], atol=1)


def test_skirt_rings_surround_the_contour() -> None:
    angle = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    contour = np.stack([100 + 30 * np.cos(angle), 80 + 40 * np.sin(angle)], axis=1)
    skirt = build_skirt(contour, np.arange(36), 36)
    radius = lambda p: np.hypot(*(p - contour.mean(axis=0)).T)  # noqa: E731
    previous = radius(contour)
    for ring in skirt.rings:
        assert (radius(ring) > previous + 2).all()
        previous = radius(ring)
    rings = len(skirt.rings)
    assert skirt.triangles.shape == (2 * 36 * rings, 3)
    assert skirt.triangles.max() == 36 * (rings + 1) - 1
    # A head moving rigidly (contour and anchors alike): the innermost ring follows most of
    # it, each further ring no more, the outermost not at all.
    motion = np.full((36, 2), 4.0)
    head = np.full((rings, 36, 2), 4.0)
    moved = skirt.targets(motion, np.zeros_like(skirt.rings), head).reshape(rings, 36, 2)
    followed = (moved - skirt.rings)[:, :, 0].mean(axis=1) / 4.0
    assert followed[0] >= 0.5
    assert (np.diff(followed) <= 0).all() and followed[-2] > 0
    np.testing.assert_allclose(moved[-1], skirt.rings[-1])


def test_skirt_anchors_reach_back_to_the_head_silhouette() -> None:
    angle = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    contour = np.stack([0.45 * np.cos(angle), 0.55 * np.sin(angle), np.full(36, -0.1)], axis=1)
    skirt = build_skirt(contour[:, :2] * 100 + 200, np.arange(36), 36, contour)
    assert skirt.anchors.shape == (len(skirt.rings), 36, 3)
    depths = skirt.anchors[:, :, 2].mean(axis=1)
    assert depths[0] < -0.1 and np.allclose(depths[-1], SILHOUETTE_DEPTH)
    assert (np.diff(depths) <= 0).all()
    spread = np.hypot(*skirt.anchors[:, :, :2].transpose(2, 0, 1)).mean(axis=1)
    assert (np.diff(spread) > 0).all()  # outer rings' anchors lie further out


def test_cavity_darkens_only_inside_the_opening() -> None:
    frame = np.full((100, 100, 3), 200, dtype=np.uint8)
    polygon = np.array([[30, 50], [50, 40], [70, 50], [50, 60]], dtype=float)
    paint_cavity(frame, polygon, opening_px=20.0, strength=1.0, lip_rgb=np.array([180.0, 90, 90]))
    assert frame[51, 50].mean() < 120  # between the teeth rows: dark cavity
    assert frame[44, 50].mean() > 140 and frame[57, 50].mean() > 140  # upper and lower teeth
    assert (frame[:30] == 200).all() and (frame[70:] == 200).all()
    untouched = np.full((100, 100, 3), 200, dtype=np.uint8)
    paint_cavity(untouched, polygon, 20.0, 0.0, np.array([180.0, 90, 90]))
    assert (untouched == 200).all()


def test_lids_are_painted_only_when_the_eye_closes_beyond_the_source() -> None:
    assert lid_cover_strength(0.30, 0.30) == 0.0
    assert lid_cover_strength(0.01, 0.30) == 1.0
    assert 0.0 < lid_cover_strength(0.12, 0.30) < 1.0
    frame = np.zeros((60, 80, 3), dtype=np.uint8)
    opening = np.array([[20, 30], [40, 28], [60, 30], [40, 32]], dtype=float)
    paint_lid(frame, opening, opening[[0, 3, 2]], 1.0, np.array([200.0, 160, 140]))
    assert frame[29, 40].mean() > 100 and frame[5, 5].sum() == 0


@pytest.mark.parametrize("size", [(64, 48), (512, 512)])
def test_mesh_partly_outside_the_frame_is_clipped(size: tuple[int, int]) -> None:
    width, height = size
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    points, triangles = _grid_mesh(-50, -50, width + 50, height + 50)
    out = warp_image(image, points, points + 3.0, triangles, np.arange(len(triangles)))
    assert out.shape == image.shape
