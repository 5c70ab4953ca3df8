"""Drive web_client/render/ in headless Chromium next to the Python MeshwarpRenderer.

Shared by tests/test_browser_renderer.py and bench/browser_render.py: one loopback HTTP
server for web_client/, one page, the portrait and geometry sent once, motions per batch.
"""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lpstream.backend import Controls
from lpstream.motion import Motion
from tests.chromium import CHROMIUM, HEADLESS_ARGS

WEB_CLIENT = Path(__file__).resolve().parents[1] / "web_client"
# ANGLE on SwiftShader: the renderer's reference figures were measured with it (it slows
# MediaPipe 3×, so the call tests do not use it).
CHROMIUM_ARGS = [*HEADLESS_ARGS, "--use-gl=angle", "--use-angle=swiftshader"]
HARNESS = b"""<!doctype html><meta charset="utf-8"><canvas id="c"></canvas>
<script type="module">
import { MeshwarpGLRenderer } from "/render/renderer.js";
const b64 = (bytes) => { let s = ""; for (let i = 0; i < bytes.length; i += 0x8000)
  s += String.fromCharCode(...bytes.subarray(i, i + 0x8000)); return btoa(s); };
window.harness = {
  setSource(geometry, rgbaB64) {
    const raw = Uint8Array.from(atob(rgbaB64), (c) => c.charCodeAt(0));
    window.renderer ??= new MeshwarpGLRenderer(document.getElementById("c"));
    const image = new ImageData(new Uint8ClampedArray(raw.buffer), geometry.width, geometry.height);
    window.renderer.setSource(geometry, image);
    return true;
  },
  render(motions, controls, box, reset) {
    const r = window.renderer;
    if (reset) r.resetReference();
    const [x0, y0, x1, y1] = box;
    return motions.map((m) => {
      r.render({ ...m, t: Float64Array.from(m.t), exp: Float64Array.from(m.exp) }, controls);
      return b64(r.readPixels(x0, y0, x1 - x0, y1 - y0));
    });
  },
  time(motions, controls, repeats) {
    const r = window.renderer;
    const px = new Uint8Array(4);
    const prepared = motions.map(
      (m) => ({ ...m, t: Float64Array.from(m.t), exp: Float64Array.from(m.exp) }));
    const times = [];
    for (let k = 0; k < repeats; k++) {
      r.resetReference();
      for (const m of prepared) {
        const start = performance.now();
        r.render(m, controls);
        r.gl.readPixels(0, 0, 1, 1, r.gl.RGBA, r.gl.UNSIGNED_BYTE, px);  // wait for the GPU
        times.push(performance.now() - start);
      }
    }
    return times;
  },
};
window.harnessReady = true;
</script>"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/harness.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(HARNESS)))
            self.end_headers()
            self.wfile.write(HARNESS)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_web_client() -> Iterator[str]:
    handler = functools.partial(_Handler, directory=str(WEB_CLIENT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def motion_json(motion: Motion) -> dict[str, Any]:
    """A Motion as the codec's JS decoder hands it to the renderer."""
    return {
        "pitch": motion.pitch,
        "yaw": motion.yaw,
        "roll": motion.roll,
        "scale": motion.scale,
        "t": [float(v) for v in motion.t],
        "exp": [float(v) for v in motion.exp.flat],
        "eyeRatio": None if motion.eye_ratio is None else [float(v) for v in motion.eye_ratio],
        "lipRatio": motion.lip_ratio,
    }


def controls_json(controls: Controls) -> dict[str, Any]:
    return {
        "eyeOpen": controls.eye_open,
        "lipOpen": controls.lip_open,
        "headMotion": controls.head_motion,
        "stitching": controls.stitching,
    }


class BrowserRenderer:
    """The JS renderer in one Chromium page (sync Playwright)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.logs: list[str] = []
        page.on("console", lambda m: self.logs.append(m.text))
        page.on("pageerror", lambda e: self.logs.append(f"ERROR: {e}"))

    def set_source(self, geometry: dict[str, Any], image_rgb: np.ndarray) -> None:
        rgba = np.dstack([image_rgb, np.full(image_rgb.shape[:2], 255, np.uint8)])
        data = base64.b64encode(np.ascontiguousarray(rgba).tobytes()).decode()
        self.page.evaluate("([g, d]) => window.harness.setSource(g, d)", [geometry, data])

    def render(
        self,
        motions: Sequence[Motion],
        controls: Controls,
        box: tuple[int, int, int, int],
        reset: bool = True,
    ) -> list[np.ndarray]:
        """RGB crops `box` (x0, y0, x1, y1) of the frame rendered for each motion."""
        encoded = self.page.evaluate(
            "([m, c, b, r]) => window.harness.render(m, c, b, r)",
            [[motion_json(m) for m in motions], controls_json(controls), list(box), reset],
        )
        x0, y0, x1, y1 = box
        return [
            np.frombuffer(base64.b64decode(e), np.uint8).reshape(y1 - y0, x1 - x0, 4)[..., :3]
            for e in encoded
        ]

    def time(self, motions: Sequence[Motion], controls: Controls, repeats: int) -> list[float]:
        return self.page.evaluate(
            "([m, c, n]) => window.harness.time(m, c, n)",
            [[motion_json(m) for m in motions], controls_json(controls), repeats],
        )


@contextmanager
def browser_renderer() -> Iterator[BrowserRenderer]:
    from playwright.sync_api import sync_playwright

    with serve_web_client() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            renderer = BrowserRenderer(page)
            page.goto(f"{base}/harness.html")
            page.wait_for_function("window.harnessReady === true", timeout=20000)
            yield renderer
        finally:
            browser.close()


def face_box(geometry: dict[str, Any], margin: float = 0.1) -> tuple[int, int, int, int]:
    """The source landmarks' bounding box grown by `margin` of its size on each side, clipped
    to the image: the region where the face (and the skirt next to it) moves."""
    x0, y0, x1, y1 = geometry["faceBox"]
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return (
        max(int(np.floor(x0 - dx)), 0),
        max(int(np.floor(y0 - dy)), 0),
        min(int(np.ceil(x1 + dx)), geometry["width"]),
        min(int(np.ceil(y1 + dy)), geometry["height"]),
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
