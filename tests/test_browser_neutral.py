"""A face that disappears, in headless Chromium: the real page, a fake camera playing a real
clip then an empty scene (looped), a fake microphone playing real speech (d6.mp4). The page
watching the other renders the portrait at rest while the face is gone — not the last
mid-word frame — and, with "mouth follows voice" on, moves its mouth while the speech plays
and says so on the tile; the node reads the speaker's level from the RTP audio-level
extension that Chromium sends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.chromium import write_speech_wav, write_y4m
from tests.conftest import shared_file
from tests.test_browser_keypoints import (  # noqa: F401 (fixtures)
    close_pages,
    fake_camera,
    live_tile,
    open_pages,
    server,
)

pytestmark = pytest.mark.slow

SIZE = 64
# The remote tile as SIZE² grey, the portrait it is drawn from (same size), the tile's pose
# and whether its "mouth follows voice" badge shows.
SAMPLE = f"""() => {{
  const tile = [...document.querySelectorAll('.tile.remote')].find((t) => !t.hidden);
  const down = window.lpstream.kinds && window.lpstream.kinds.downlink;
  if (!tile || !down) return null;
  const slot = Number(tile.dataset.slot);
  const drawn = down.tiles.get(slot);
  const pose = down.tilePose(slot);
  if (!drawn || !pose) return null;
  const grey = (source) => {{
    const probe = document.createElement('canvas');
    probe.width = probe.height = {SIZE};
    const context = probe.getContext('2d');
    context.drawImage(source, 0, 0, {SIZE}, {SIZE});
    const rgba = context.getImageData(0, 0, {SIZE}, {SIZE}).data;
    const out = [];
    for (let i = 0; i < rgba.length; i += 4) out.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
    return out;
  }};
  return {{
    tile: grey(tile.querySelector('canvas')),
    portrait: grey(down.images.get(drawn.sourceSha)),
    neutral: pose.neutral,
    voice: pose.voice,
    badge: !tile.querySelector('.voice-badge').hidden,
  }};
}}"""


@pytest.fixture
def vanishing_face(fake_camera: Path, tmp_path: Path) -> Path:  # noqa: F811
    out = tmp_path / "vanishing.y4m"
    write_y4m(shared_file("media/d0.mp4"), out, seconds=2.4, blank_s=2.4)
    return out


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    return write_speech_wav(tmp_path / "speech.wav")


Enough = Callable[[list[dict[str, Any]]], bool]


def _never(samples: list[dict[str, Any]]) -> bool:
    return False


async def _samples(page: Any, seconds: float, enough: Enough = _never) -> list[dict[str, Any]]:
    """Samples every 0.1 s for `seconds`, or until `enough` of them (a loaded machine draws
    and answers slowly, so what a test needs is counted, not timed)."""
    out: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline and not enough(out):
        sample = await page.evaluate(SAMPLE)
        if sample is not None:
            sample["tile"] = np.array(sample["tile"])
            sample["portrait"] = np.array(sample["portrait"])
            out.append(sample)
        await asyncio.sleep(0.1)
    return out


def _count(samples: list[dict[str, Any]], **wanted: Any) -> int:
    return sum(all(s[k] == v for k, v in wanted.items()) for s in samples)


def _settled(samples: list[dict[str, Any]], hold: int = 1) -> list[dict[str, Any]]:
    """Samples at rest whose `hold` predecessors were at rest too (the rest frame is
    rendered; a page that lip-syncs a node's video shows it up to its sound's delay later)."""
    return [
        s
        for i, s in enumerate(samples)
        if i >= hold and all(p["neutral"] == 1.0 for p in samples[i - hold : i + 1])
    ]


def _to_portrait(sample: dict[str, Any]) -> float:
    return float(np.abs(sample["tile"] - sample["portrait"]).mean())


async def test_a_vanished_face_rests_and_its_mouth_follows_the_voice(
    server: Any,  # noqa: F811
    vanishing_face: Path,
    speech_wav: Path,
) -> None:
    handles, pages = await open_pages(
        server, vanishing_face, ["room=rest&name=ann", "room=rest&name=bob"], speech_wav
    )
    try:
        ann, bob = pages
        for page in pages:
            await page.wait_for_function("() => window.lpstream.phase === 'in-call'", timeout=30000)
        await live_tile(bob, "canvas")
        await bob.click("#voice-mouth")  # off
        assert not await bob.is_checked("#voice-mouth")
        quiet = await _samples(
            bob, 30.0, lambda s: _count(s, neutral=0.0) >= 4 and _count(s, neutral=1.0) >= 4
        )
        await bob.click("#voice-mouth")  # on
        assert await bob.is_checked("#voice-mouth")
        voiced = await _samples(
            bob, 30.0, lambda s: _count(s, neutral=1.0, voice=True, badge=True) >= 3
        )

        live = [s for s in quiet if s["neutral"] == 0.0]
        rest = [s for s in quiet if s["neutral"] == 1.0]
        print(
            f"samples: {len(live)} live, {len(rest)} at rest of {len(quiet)}; to the portrait: "
            f"live max {max(map(_to_portrait, live)):.2f}, "
            f"rest max {max(map(_to_portrait, rest)):.2f}"
        )
        assert len(live) >= 4 and len(rest) >= 4, "the face came and went"
        # At rest the tile is the portrait itself, closer to it than any live frame: the
        # rest pose, not the last frame held.
        assert max(map(_to_portrait, rest)) < 0.5 * max(map(_to_portrait, live))
        spread = max(float(np.abs(a["tile"] - rest[0]["tile"]).mean()) for a in rest)
        assert spread < 0.5, "at rest with the voice off nothing moves"
        assert not any(s["badge"] or s["voice"] for s in quiet)

        resting = [s for s in voiced if s["neutral"] == 1.0]
        speaking = [s for s in resting if s["voice"]]
        print(f"voice on: {len(speaking)} of {len(resting)} resting samples follow the voice")
        assert len(speaking) >= 3, "the mouth follows the speech while the face is gone"
        assert any(s["badge"] for s in speaking), "and the tile says so"
        moved = max(float(np.abs(s["tile"] - rest[0]["tile"]).mean()) for s in speaking)
        print(f"voice mouth moves the tile by up to {moved:.2f} grey levels")
        assert moved > 2 * spread + 0.1, "the mouth moves with the voice"
        assert not any(s["voice"] for s in voiced if s["neutral"] == 0.0), "a face: its mouth"
        # The badge is redrawn every 0.1 s: once the face is back for a sample, it is gone.
        back_live = [
            b for a, b in itertools.pairwise(voiced) if a["neutral"] == b["neutral"] == 0.0
        ]
        assert not any(s["badge"] for s in back_live)

        # Camera off: ann's page sends no motion at all; bob's tile notices the silence and
        # stays at rest for longer than the clip's own blank part.
        await ann.click("#camera-off")
        sent = "() => window.lpstream.kinds.uplink.framesSent"
        # SILENCE_S, then the ease, after the last motion is drawn: up to the tile's voice
        # wait (playout_sync.js MAX_DELAY_MS, 1 s) after it arrived
        await asyncio.sleep(3.0)
        before = await ann.evaluate(sent)
        off = await _samples(bob, 3.0)
        assert await ann.evaluate(sent) == before, "a camera that is off sends nothing"
        assert off and all(s["neutral"] == 1.0 for s in off), [s["neutral"] for s in off]
        await ann.click("#camera-off")
        back = await _samples(bob, 15.0, lambda s: _count(s, neutral=0.0) >= 1)
        assert any(s["neutral"] == 0.0 for s in back), "the camera on again: the face is back"

        node = server.node
        assert node is not None
        ann_id = next(s.id for s in node.sessions.values() if s.name == "ann")
        levels = [node.audio.voice_level(ann_id) for _ in range(1)]
        assert levels[0] is not None, "Chromium sends the RTP audio level; the node reads it"
        assert handles[2] == [], handles[2]
    finally:
        await close_pages(handles)


VIDEO_SAMPLE = f"""() => {{
  const tile = [...document.querySelectorAll('.tile.remote')].find((t) => !t.hidden);
  if (!tile) return null;
  const video = tile.querySelector('video');
  if (!video.videoWidth) return null;
  const probe = document.createElement('canvas');
  probe.width = probe.height = {SIZE};
  const context = probe.getContext('2d');
  context.drawImage(video, 0, 0, {SIZE}, {SIZE});
  const rgba = context.getImageData(0, 0, {SIZE}, {SIZE}).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) grey.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
  const stats = window.lpstream.stats;
  const figures = stats && stats.tiles.find((t) => t.slot === Number(tile.dataset.slot));
  return {{ grey, badge: !tile.querySelector('.voice-badge').hidden,
    voiceMouth: figures ? figures.voice_mouth : null }};
}}"""


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    small = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float64)
    return small.mean(axis=2)


async def _node_samples(
    page: Any, tile: Any, seconds: float, enough: Enough
) -> list[dict[str, Any]]:
    """The node's tile (its pose, its last rendered frame) and what the page shows of it."""
    out: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline and not enough(out):
        pose = tile.pose
        frame = tile.track._frame.to_ndarray(format="rgb24")
        shown = await page.evaluate(VIDEO_SAMPLE)
        if pose is not None and shown is not None:
            out.append(
                {
                    "neutral": pose.neutral,
                    "voice": pose.voice,
                    "frame": frame,
                    "shown": np.array(shown["grey"]).reshape(SIZE, SIZE),
                    "badge": shown["badge"],
                    "voice_mouth": shown["voiceMouth"],
                }
            )
        await asyncio.sleep(0.1)
    return out


async def test_a_video_tile_rendered_by_the_node_rests_and_follows_the_voice(
    server: Any,  # noqa: F811
    vanishing_face: Path,
    speech_wav: Path,
) -> None:
    from lpstream.meshwarp.renderer import MeshwarpRenderer

    handles, pages = await open_pages(
        server,
        vanishing_face,
        ["room=restv&name=ann", "room=restv&name=cy&downlink=video"],
        speech_wav,
    )
    shadow = MeshwarpRenderer()
    try:
        _ann, cy = pages
        for page in pages:
            await page.wait_for_function("() => window.lpstream.phase === 'in-call'", timeout=30000)
        await live_tile(cy, "video")
        node = server.node
        assert node is not None
        ids = {s.name: s.id for s in node.sessions.values()}
        tile = node.sessions[ids["cy"]].downlink.tile_of(ids["ann"])
        route = node.router.get(ids["ann"])
        assert tile is not None and route is not None and route.portrait is not None
        shadow.set_source(route.portrait.rgb)
        # Whatever the reference, its own render is the portrait at rest.
        assert tile.neutral.live is not None
        rest_frame = shadow.render(tile.neutral.live)

        await cy.click("#voice-mouth")  # off: the page tells the node
        await asyncio.sleep(0.5)
        quiet = await _node_samples(
            cy, tile, 40.0, lambda s: _count(s, neutral=0.0) >= 4 and len(_settled(s, 3)) >= 3
        )
        await cy.click("#voice-mouth")
        voiced = await _node_samples(
            cy, tile, 30.0, lambda s: _count(s, voice=True) >= 3 and _count(s, badge=True) >= 1
        )

        settled = _settled(quiet, 3)  # ≈ 1 s at rest: longer than the page's A/V sync delay
        live = [s for s in quiet if s["neutral"] == 0.0]
        to_rest = [float(np.abs(_grey(s["frame"]) - _grey(rest_frame)).mean()) for s in live]
        print(
            f"node tile: {len(live)} live, {len(settled)} settled at rest of {len(quiet)}; "
            f"live frames differ from rest by up to {max(to_rest):.2f}"
        )
        assert len(live) >= 4 and len(settled) >= 3
        for sample in settled:
            assert np.array_equal(sample["frame"], rest_frame), "the node renders the rest pose"
        # What the page shows (VP8, scaled), in the face box: at rest it is the rest render.
        height, width = rest_frame.shape[:2]
        points = shadow.prepared_source.points
        x0, y0 = (points.min(axis=0) * [SIZE / width, SIZE / height]).astype(int)
        x1, y1 = (points.max(axis=0) * [SIZE / width, SIZE / height]).astype(int) + 1
        expected = _grey(rest_frame)[y0:y1, x0:x1]

        def to_rest_on_page(sample: dict[str, Any]) -> float:
            return float(np.abs(sample["shown"][y0:y1, x0:x1] - expected).mean())

        page_rest = float(np.median([to_rest_on_page(s) for s in settled]))
        page_live = max(to_rest_on_page(s) for s in live)
        print(
            f"the page's face box: {page_rest:.2f} grey levels from the rest render at rest, "
            f"up to {page_live:.2f} live"
        )
        assert page_rest < 0.5 * page_live, "and the page shows it"
        assert not any(s["voice"] or s["badge"] for s in quiet)

        speaking = [s for s in voiced if s["voice"]]
        print(
            f"voice on: {len(speaking)} samples follow the voice, badge on "
            f"{sum(s['badge'] for s in voiced)}"
        )
        assert len(speaking) >= 3, "the node moves the mouth with the speaker's RTP level"
        assert any(not np.array_equal(s["frame"], rest_frame) for s in speaking)
        assert any(s["badge"] for s in voiced), "the page labels the tile (from the node's stats)"
        assert handles[2] == [], handles[2]
    finally:
        shadow.close()
        await close_pages(handles)
