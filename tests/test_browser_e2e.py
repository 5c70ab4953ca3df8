"""End to end in headless Chromium: two tabs join one room by deep link and see each other.

Over https:// and wss:// with the certificate `python -m lpstream cert` makes (the browser
accepts it as a user would click through; the camera needs a secure page).

Chromium's fake camera plays a real face video (d0.mp4, converted to .y4m). Each page must
show the other's avatar: the remote <video> advances and its pixels are non-blank and
change; the motion the node sends stays under 10 kbit/s.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from lpstream.tls import make_self_signed
from signaling import Limits
from tests.chromium import CHROMIUM, HEADLESS_ARGS, fake_media_args, write_y4m
from tests.conftest import shared_file

pytestmark = pytest.mark.slow

MOTION_LIMIT_KBPS = 10.0


# Samples the first visible remote tile: playback time, and a small grey thumbnail.
SAMPLE_TILE = """() => {
  const video = [...document.querySelectorAll('.tile.remote')]
    .filter((t) => !t.hidden).map((t) => t.querySelector('video'))[0];
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(video, 0, 0, 64, 64);
  const rgba = context.getImageData(0, 0, 64, 64).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) grey.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
  return { time: video.currentTime, width: video.videoWidth, grey,
           name: video.closest('.tile').dataset.name };
}"""


async def sample_until_live(page: Any, limit_s: float = 60) -> dict[str, Any]:
    """Wait for a remote tile showing a face-like (non-blank) frame; return the sample."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline:
        sample = await page.evaluate(SAMPLE_TILE)
        if sample and np.std(sample["grey"]) > 15:
            return sample
        await asyncio.sleep(0.5)
    state = await page.evaluate("() => JSON.stringify(window.lpstream)")
    raise AssertionError(f"no live avatar tile; page state: {state[:800]}")


@pytest.fixture
def fake_camera(tmp_path: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure_chromium.sh (as root)")
    video = shared_file("media/d0.mp4")
    out = tmp_path / "face.y4m"
    write_y4m(video, out)
    return out


async def test_two_tabs_call_each_other(fake_camera: Path, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, ["127.0.0.1", "localhost"])
    server = CallServer(
        ServeConfig(port=0, tls_cert=cert, tls_key=key),
        NodeConfig(node_id="e2e", backend="meshwarp", workers=2),
        Limits(),
    )
    await server.start()
    base = f"https://127.0.0.1:{server.port}"
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*HEADLESS_ARGS, *fake_media_args(fake_camera)],
            )
            context = await browser.new_context(
                viewport={"width": 1100, "height": 900}, ignore_https_errors=True
            )
            pages = [await context.new_page() for _ in range(2)]
            logs: list[str] = []
            for page, name in zip(pages, ("ann", "bob"), strict=True):
                page.on("console", lambda m, n=name: logs.append(f"{n}: {m.text}"))
                page.on("pageerror", lambda e, n=name: logs.append(f"{n} ERROR: {e}"))
                # The camera/video topology (what a LivePortrait node needs), forced by URL.
                await page.goto(
                    f"{base}/?room=e2e&name={name}&autojoin=1&uplink=camera&downlink=video"
                )

            try:
                first = [await sample_until_live(page) for page in pages]
            except AssertionError:
                states = [await p.evaluate("() => JSON.stringify(window.lpstream)") for p in pages]
                node = server.node
                sources = (
                    {
                        s.name: (s.portrait is not None, s.packets, s.no_face)
                        for s in node.sources.values()
                    }
                    if node
                    else {}
                )
                raise AssertionError(
                    f"states {states}\nsources {sources}\nlogs {logs[-20:]}"
                ) from None
            assert {first[0]["name"], first[1]["name"]} == {"ann", "bob"}, "each sees the other"
            assert await pages[0].evaluate("() => location.protocol + isSecureContext") == (
                "https:true"
            )
            # Playing and changing: sample each page a few times; some consecutive pair must
            # differ visibly (not only by codec noise) in a part of the frame (mouth, eyes...).
            samples = [first]
            for _ in range(5):
                await asyncio.sleep(0.5)
                samples.append([await page.evaluate(SAMPLE_TILE) for page in pages])
            for index in range(len(pages)):
                series = [round_[index] for round_ in samples]
                assert series[-1]["time"] > series[0]["time"] + 2.0, "remote video not playing"
                moved = max(
                    float(np.mean(np.abs(np.subtract(b["grey"], a["grey"])) > 8))
                    for a, b in itertools.pairwise(series)
                )
                assert moved > 0.005, f"the avatar does not change ({moved:.2%} pixels moved)"

            # motion bitrate, measured by the node from the bytes it actually produced
            await asyncio.sleep(1.0)
            assert server.node is not None and len(server.node.sessions) == 2
            for session in server.node.sessions.values():
                kbps = session.uplink.figures()["motion_kbps"]
                assert 0 < kbps < MOTION_LIMIT_KBPS, f"{session.name}: {kbps:.2f} kbit/s motion"
            # and the overlay shows the same measured numbers
            stats = await pages[0].evaluate("() => window.lpstream.stats")
            tile = stats["tiles"][0]
            assert 0 < tile["motion_kbps"] < MOTION_LIMIT_KBPS
            assert tile["camera_kbps"] > tile["motion_kbps"]
            assert "kbit/s" in await pages[0].inner_text(".tile.remote:not([hidden]) .overlay")

            # sliders reach the node: bob's head-motion slider applies to bob's view
            await pages[1].evaluate(
                "() => { const s = document.getElementById('head'); s.value = '0.5';"
                " s.dispatchEvent(new Event('input')); }"
            )
            bob = next(s for s in server.node.sessions.values() if s.name == "bob")
            for _ in range(50):
                if bob.downlink.controls.head_motion == 0.5:
                    break
                await asyncio.sleep(0.1)
            assert bob.downlink.controls.head_motion == 0.5

            # an uploaded portrait: refused with a clear message without a face, then used
            ann = next(s for s in server.node.sessions.values() if s.name == "ann")
            blank = tmp_path / "blank.png"
            cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
            await pages[0].check("input[name=portrait][value=upload]")
            await pages[0].set_input_files("#portrait-file", str(blank))
            await pages[0].wait_for_function(
                "() => document.getElementById('banner').textContent.includes('face')",
                timeout=20000,
            )
            painting = shared_file("media/mona_lisa.jpg")
            await pages[0].set_input_files("#portrait-file", str(painting))
            await pages[0].wait_for_function("() => window.lpstream.portraitOk", timeout=20000)
            source = server.node.router.sources[ann.id]
            assert source.portrait is not None
            assert source.portrait.sha256 == hashlib.sha256(painting.read_bytes()).hexdigest()
            await asyncio.sleep(1.5)
            assert (await sample_until_live(pages[1]))["name"] == "ann"

            for page, name in zip(pages, ("ann", "bob"), strict=True):
                shot = tmp_path / f"call-{name}.png"
                await page.screenshot(path=str(shot))
                if os.environ.get("LPSTREAM_E2E_SCREENSHOT"):  # a folder to look at the pages
                    shutil.copy(shot, Path(os.environ["LPSTREAM_E2E_SCREENSHOT"]) / shot.name)
            # bob reloads his tab: he rejoins by himself, ann sees his new avatar, no ghost
            old_bob = next(s["id"] for s in await pages[0].evaluate("() => window.lpstream.slots"))
            await pages[1].reload()
            await pages[0].wait_for_function(
                "(old) => window.lpstream.slots.length === 1"
                " && window.lpstream.slots[0].id !== old",
                arg=old_bob,
                timeout=30000,
            )
            await pages[1].wait_for_function(
                "() => window.lpstream.phase === 'in-call' && window.lpstream.portraitOk",
                timeout=30000,
            )
            assert sorted(s.name for s in server.node.sessions.values()) == ["ann", "bob"]
            await asyncio.sleep(1.0)  # the old tile's last frame gives way to the new avatar
            assert (await sample_until_live(pages[0]))["name"] == "bob"
            tiles = sum(len(s.downlink.tiles) for s in server.node.sessions.values())
            assert tiles == 2 and server.node.errors == 0

            errors = [line for line in logs if "ERROR" in line]
            assert not errors, errors
            await browser.close()
    finally:
        await server.stop()
