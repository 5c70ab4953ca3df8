"""Keypoint mode end to end in headless Chromium: each page finds its own face (MediaPipe
Tasks for Web, served by the node), sends motion, and renders the others with WebGL2 — and
getStats shows no video RTP either way. A mixed room (one camera/video page, one keypoint
page) works both ways.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits
from tests.chromium import CHROMIUM, HEADLESS_ARGS, fake_media_args, write_y4m
from tests.conftest import shared_file

pytestmark = pytest.mark.slow

VENDOR = Path(__file__).resolve().parent.parent / "web_client" / "vendor" / "tasks-vision"

# A grey 48×48 thumbnail of the first visible remote tile (canvas or video, whichever shows).
SAMPLE = """() => {
  const tile = [...document.querySelectorAll('.tile.remote')].find((t) => !t.hidden);
  if (!tile) return null;
  const canvas = tile.querySelector('canvas');
  const source = canvas.hidden ? tile.querySelector('video') : canvas;
  if (!source.width && !source.videoWidth) return null;
  const probe = document.createElement('canvas');
  probe.width = probe.height = 48;
  const context = probe.getContext('2d');
  context.drawImage(source, 0, 0, 48, 48);
  const rgba = context.getImageData(0, 0, 48, 48).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) grey.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
  return { grey, kind: canvas.hidden ? 'video' : 'canvas', name: tile.dataset.name };
}"""

RTP_KINDS = """async () => {
  const report = await window.lpstream.call.pc.getStats();
  const kinds = [];
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' || s.type === 'inbound-rtp') kinds.push(`${s.type}:${s.kind}`);
  });
  return kinds;
}"""


@pytest.fixture
def fake_camera(tmp_path: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure_chromium.sh (as root)")
    if not (VENDOR / "vision_bundle.mjs").exists():
        pytest.skip(f"{VENDOR} missing: run `make setup` (npm ci + copy)")
    out = tmp_path / "face.y4m"
    write_y4m(shared_file("media/d0.mp4"), out)
    return out


async def live_tile(page: Any, kind: str, limit_s: float = 60) -> list[float]:
    """Wait until the remote tile (of `kind`) shows a face-like picture that changes."""
    deadline = asyncio.get_running_loop().time() + limit_s
    previous = None
    while asyncio.get_running_loop().time() < deadline:
        sample = await page.evaluate(SAMPLE)
        if sample and sample["kind"] == kind and np.std(sample["grey"]) > 15:
            grey = np.array(sample["grey"])
            if previous is not None and np.abs(grey - previous).mean() > 0.3:
                return list(grey)
            previous = grey
        await asyncio.sleep(0.4)
    state = await page.evaluate(
        "() => JSON.stringify({...window.lpstream, call: undefined, kinds: undefined})"
    )
    raise AssertionError(f"no live {kind} tile; page state: {state[:1500]}")


async def open_pages(
    server: CallServer,
    camera: Path,
    queries: list[str],
    microphone: Path | None = None,
    launch: dict[str, Any] | None = None,
) -> tuple[Any, list]:
    """One browser, a window per page (a background tab does not draw); nothing may leave
    loopback. `launch`: more Playwright launch options (`tests/audio_output.py`)."""
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[*HEADLESS_ARGS, *fake_media_args(camera, microphone)],
        **(launch or {}),
    )
    # Nothing may leave loopback: no CDN, no telemetry.
    outside: list[str] = []

    async def only_loopback(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    pages = []
    for query in queries:
        # A window each, as two people would have: a background tab does not draw.
        context = await browser.new_context(viewport={"width": 1100, "height": 900})
        await context.route("**/*", only_loopback)
        page = await context.new_page()
        page.on("pageerror", lambda e: outside.append(f"page error: {e}"))
        await page.goto(f"http://127.0.0.1:{server.port}/?{query}&autojoin=1")
        pages.append(page)
    return (playwright, browser, outside), pages


async def close_pages(handles: Any) -> None:
    playwright, browser, _ = handles
    await browser.close()
    await playwright.stop()


@pytest.fixture
async def server() -> Any:
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="kp", backend="meshwarp", workers=2), Limits()
    )
    await server.start()
    yield server
    await server.stop()


async def test_two_keypoint_pages_see_each_other_with_no_video_on_their_links(
    server: CallServer, fake_camera: Path
) -> None:
    handles, pages = await open_pages(server, fake_camera, ["room=kp&name=ann", "room=kp&name=bob"])
    try:
        for page in pages:
            await page.wait_for_function("() => window.lpstream.phase === 'in-call'", timeout=30000)
            mode = await page.evaluate("() => window.lpstream.mode")
            assert (mode["uplink"], mode["downlink"]) == ("keypoints", "keypoints"), mode
        for page in pages:
            await live_tile(page, "canvas")
        await asyncio.sleep(3)  # a few stats periods
        for page in pages:
            kinds = set(await page.evaluate(RTP_KINDS))
            assert kinds <= {"outbound-rtp:audio", "inbound-rtp:audio"}, "no video RTP"
            link = await page.evaluate("() => window.lpstream.link")
            assert link is not None and link["up"]["motion"] > 0 and link["down"]["motion"] > 0
            assert link["up"]["video"] == 0 and link["down"]["video"] == 0
            print(json.dumps({"link": link}))
            text = await page.inner_text(".tile.local .overlay")
            assert "your link" in text and "kbit/s" in text
        assert handles[2] == [], f"requests left loopback or pages failed: {handles[2]}"
        node = server.node
        assert node is not None
        assert sorted(s.uplink.kind for s in node.sessions.values()) == ["keypoints"] * 2
    finally:
        await close_pages(handles)


async def test_a_mixed_room_works_both_ways_in_browsers(
    server: CallServer, fake_camera: Path
) -> None:
    handles, pages = await open_pages(
        server,
        fake_camera,
        ["room=mix&name=cam&uplink=camera&downlink=video", "room=mix&name=kp"],
    )
    try:
        camera_page, keypoint_page = pages
        await live_tile(camera_page, "video")
        await live_tile(keypoint_page, "canvas")
        assert "outbound-rtp:video" in await camera_page.evaluate(RTP_KINDS)
        assert not any(k.endswith(":video") for k in await keypoint_page.evaluate(RTP_KINDS))
        assert handles[2] == [], handles[2]
    finally:
        await close_pages(handles)


VISIBLE_TILE_CANVAS = (
    "[...document.querySelectorAll('.tile.remote')].find((t) => !t.hidden).querySelector('canvas')"
)


async def test_a_keypoint_tile_comes_back_after_a_media_restart_and_a_lost_gpu_context(
    server: CallServer, fake_camera: Path
) -> None:
    """A restart closes the old downlink, whose renderer frees the GPU by losing its canvas's
    context; the new downlink used to compile its shaders on that dead context ("shader:
    null") and the tile stayed blank. A GPU process reset loses a context mid-call the same
    way. Either way the tile must play again, on a new canvas."""
    handles, (ann, bob) = await open_pages(
        server, fake_camera, ["room=kp&name=ann", "room=kp&name=bob"]
    )
    try:
        for page in (ann, bob):
            await page.wait_for_function("() => window.lpstream.phase === 'in-call'", timeout=30000)
        await live_tile(bob, "canvas")

        await bob.evaluate(f"() => {{ {VISIBLE_TILE_CANVAS}.lpstreamBefore = true; }}")
        await bob.evaluate(
            "() => window.lpstream.call.dispatchEvent(new CustomEvent('stalled', "
            "{detail: 'test: a restart'}))"
        )
        await bob.wait_for_function(
            "() => window.lpstream.restarts >= 1 && window.lpstream.phase === 'in-call'",
            timeout=30000,
        )
        await live_tile(bob, "canvas")
        assert await bob.evaluate(f"() => !{VISIBLE_TILE_CANVAS}.lpstreamBefore"), "same canvas"

        await bob.evaluate(
            f"() => {{ const canvas = {VISIBLE_TILE_CANVAS}; canvas.lpstreamBefore = true;"
            " canvas.getContext('webgl2').getExtension('WEBGL_lose_context').loseContext(); }"
        )
        await bob.wait_for_function(
            "() => window.lpstream.kinds.downlink.contextLosses >= 1", timeout=10000
        )
        await live_tile(bob, "canvas")
        assert await bob.evaluate(f"() => !{VISIBLE_TILE_CANVAS}.lpstreamBefore"), "same canvas"
        assert await bob.evaluate("() => window.lpstream.rejoins") == 0
        assert handles[2] == [], f"requests left loopback or pages failed: {handles[2]}"
    finally:
        await close_pages(handles)
