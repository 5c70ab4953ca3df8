"""The browser renderer (web_client/render/) against the Python MeshwarpRenderer.

Two implementations of one renderer, held together here: the same portrait, the same real
motion (the built-in sender on d3.mp4), rendered by both, compared by PSNR on the face box
(`browser_render_harness.face_box`: the source landmarks' bounding box grown by 10% a side).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from lpstream.backend import Controls
from lpstream.meshwarp.browser_data import DATA_MODULE, render_module
from lpstream.meshwarp.browser_source import browser_source
from lpstream.meshwarp.renderer import MeshwarpRenderer
from lpstream.motion import Motion
from tests.browser_render_harness import CHROMIUM, browser_renderer, face_box, psnr
from tests.conftest import shared_file

NUM_FRAMES = 30
MEDIAN_DB = 35.0
"""The issue's bar for the median frame."""
WORST_DB = 32.0
"""Worst frame: a fold (a turned cheek over the skirt) is drawn at full resolution here and
from a half-resolution map in Python, so its edge can differ by a pixel; 32 dB on the box still
means an RMS error under 6 levels, far below the motion's own change (checked below)."""
MOTION_DB = 30.0
"""Frames must differ from the reference (neutral) frame by more than this, or the test
could not tell a renderer that ignores motion from a faithful one."""


def test_data_module_is_what_the_generator_writes() -> None:
    assert DATA_MODULE.read_text() == render_module(), (
        "web_client/render/meshwarp_data.js is stale: python -m lpstream.meshwarp.browser_data"
    )


def _portrait(max_side: int = 512) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(shared_file("media/mona_lisa.jpg"))), cv2.COLOR_BGR2RGB)
    factor = max_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, dict, list[Motion]]:
    from lpstream.meshwarp.clip_motion import motions_from_video

    image = _portrait()
    motions, _ = motions_from_video(shared_file("media/d3.mp4"), max_frames=NUM_FRAMES)
    renderer = MeshwarpRenderer()
    try:
        renderer.set_source(image)
        geometry = browser_source(renderer)
    finally:
        renderer.close()
    return image, geometry, motions


def test_source_geometry_is_small_json(scene: tuple[np.ndarray, dict, list[Motion]]) -> None:
    image, geometry, _ = scene
    text = json.dumps(geometry)
    assert len(text) < 40_000
    again = json.loads(text)
    assert (again["width"], again["height"]) == (image.shape[1], image.shape[0])
    assert len(again["points"]) == 468 * 2 and len(again["shape"]) == 468 * 3
    x0, y0, x1, y1 = again["faceBox"]
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure_chromium.sh (as root)")
    with browser_renderer() as renderer:
        yield renderer


def _compare(scene, browser, controls: Controls) -> tuple[list[float], list[float]]:
    image, geometry, motions = scene
    box = face_box(geometry)
    python = MeshwarpRenderer()
    try:
        python.set_source(image)
        expected = [python.render(m, controls) for m in motions]
    finally:
        python.close()
    browser.set_source(geometry, image)
    got = browser.render(motions, controls, box)
    x0, y0, x1, y1 = box
    crops = [frame[y0:y1, x0:x1] for frame in expected]
    parity = [psnr(a, b) for a, b in zip(crops, got, strict=True)]
    moved = [psnr(crops[0], a) for a in crops]
    assert not [line for line in browser.logs if line.startswith("ERROR")], browser.logs
    return parity, moved


def _check(parity: list[float], moved: list[float]) -> None:
    print(f"parity dB median {np.median(parity):.1f} min {np.min(parity):.1f}", end=" ")
    print(f"(vs the reference frame: median {np.median(moved[1:]):.1f})")
    assert np.median(parity) >= MEDIAN_DB, parity
    assert np.min(parity) >= WORST_DB, parity
    # The motion is visible, and the parity is much closer than that change.
    assert np.median(moved[1:]) < MOTION_DB, moved
    assert np.median(parity) > np.median(moved[1:]) + 8.0


def test_matches_python_on_a_real_clip(scene, browser) -> None:
    parity, moved = _compare(scene, browser, Controls())
    assert parity[0] > 45.0  # the reference frame: both render the source itself
    _check(parity, moved)


def test_matches_python_with_the_sliders(scene, browser) -> None:
    controls = Controls(eye_open=0.05, lip_open=0.4, head_motion=0.5, stitching=False)
    _check(*_compare(scene, browser, controls))
