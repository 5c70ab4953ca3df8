"""The overlay's "a VP8 call of this camera would carry X kbit/s" (web_client/vp8_reference.js)
in headless Chromium: a keypoint page in a real call measures it once with a local pair of
peer connections, from getStats; the figure is VP8 at the camera's size, above the page's own
keypoint uplink, and shown next to it. The same measurement on a still picture and on noise
tells the two apart by an order of magnitude: it is the encoder's output, not a constant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits
from tests.chromium import CHROMIUM, write_y4m
from tests.conftest import shared_file
from tests.test_browser_keypoints import VENDOR, close_pages, open_pages

pytestmark = pytest.mark.slow

CAMERA = (320, 240)

# The same measurement on a canvas redrawn at 25 fps: `still` repaints one picture, `noise`
# new random pixels every frame.
CANVAS_RUN = """async (kind) => {
  const { measureVp8 } = await import('/vp8_reference.js');
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const context = canvas.getContext('2d');
  const picture = context.createImageData(320, 240);
  const fill = () => {
    for (let i = 0; i < picture.data.length; i += 4) {
      const v = kind === 'noise' ? Math.random() * 255 : (i / 4) % 320;
      picture.data[i] = picture.data[i + 1] = picture.data[i + 2] = v;
      picture.data[i + 3] = 255;
    }
  };
  fill();
  const timer = setInterval(() => {
    if (kind === 'noise') fill();
    context.putImageData(picture, 0, 0);
  }, 40);
  const track = canvas.captureStream(25).getVideoTracks()[0];
  try {
    return await measureVp8(track, { warmupMs: 1500, windowMs: 2500 });
  } finally {
    clearInterval(timer);
    track.stop();
  }
}"""


@pytest.fixture
def fake_camera(tmp_path: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure_chromium.sh (as root)")
    if not (VENDOR / "vision_bundle.mjs").exists():
        pytest.skip(f"{VENDOR} missing: run `make setup` (npm ci + copy)")
    out = tmp_path / "face.y4m"
    write_y4m(shared_file("media/d0.mp4"), out, size=CAMERA)
    return out


@pytest.fixture
async def server() -> Any:
    config = NodeConfig(node_id="vp8", backend="meshwarp")
    server = CallServer(ServeConfig(port=0), config, Limits())
    await server.start()
    yield server
    await server.stop()


async def test_keypoint_page_shows_a_measured_vp8_figure(
    server: CallServer, fake_camera: Path
) -> None:
    handles, (page,) = await open_pages(server, fake_camera, ["room=vp8&name=ann"])
    try:
        await page.wait_for_function("() => window.lpstream.phase === 'in-call'", timeout=30000)
        assert (await page.evaluate("() => window.lpstream.mode"))["uplink"] == "keypoints"
        await page.wait_for_function(
            "() => window.lpstream.vp8 && !window.lpstream.vp8.pending", timeout=40000
        )
        vp8 = await page.evaluate("() => window.lpstream.vp8")
        assert "error" not in vp8, vp8
        await page.wait_for_function(
            "() => document.querySelector('.tile.local .overlay').textContent"
            ".includes('VP8 call of this camera would carry')",
            timeout=10000,
        )
        link = await page.evaluate("() => window.lpstream.link")
        text = await page.inner_text(".tile.local .overlay")
        print(json.dumps({"vp8": vp8, "keypoint_link_up": link["up"]}))

        assert vp8["codec"] == "video/VP8"
        assert (vp8["width"], vp8["height"]) == CAMERA
        assert vp8["frames"] >= 2 * vp8["seconds"], "the encoder ran (at least 2 fps)"
        # Wire bytes include the RTP inside them, plus per-packet transport headers.
        assert vp8["upKbps"] > vp8["rtpKbps"] > 0
        assert vp8["upKbps"] > vp8["rtpKbps"] + vp8["packetsPerSecond"] * 28 * 8 / 1000 * 0.9
        assert vp8["downKbps"] > 0, "the receiver's RTCP feedback is counted"
        assert 30 < vp8["upKbps"] < 5000, "a plausible VP8 bitrate for 320×240"
        assert vp8["upKbps"] > link["up"]["total"] > 0, "VP8 costs more than keypoints"
        assert f"would carry ↑ {vp8['upKbps']:.1f} kbit/s" in text, text
        assert "your link ↑" in text and "measured here" in text

        # The figure follows what the encoder is given (measured, not a constant).
        still = await page.evaluate(CANVAS_RUN, "still")
        noise = await page.evaluate(CANVAS_RUN, "noise")
        print(json.dumps({"still_kbps": still["upKbps"], "noise_kbps": noise["upKbps"]}))
        assert noise["upKbps"] > 5 * still["upKbps"], (still, noise)
        assert handles[2] == [], f"requests left loopback or pages failed: {handles[2]}"
    finally:
        await close_pages(handles)
