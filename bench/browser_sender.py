"""Browser sender cost in headless Chromium → bench/results/browser_sender.json.

Run: `.venv/bin/python bench/browser_sender.py [--frames N] [--size 320x240]`. Chromium's fake
camera plays ../shared/media/d0.mp4 (letterboxed, 25 fps); the page runs web_client/sender's
KeypointSender (MediaPipe Tasks for Web, CPU delegate, served by the node) on every camera
frame and times `extract` (landmarks + tracker + motion + smoothing), handing MediaPipe the
<video> element itself and, for comparison, a canvas copy of it and its ImageData. Python's
MeshwarpSender on the same frames is timed alongside, as a yardstick of the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from lpstream.shared_data import shared_dir
from signaling import Limits
from tests.chromium import CHROMIUM, HEADLESS_ARGS, fake_media_args, write_y4m

RESULTS = Path(__file__).resolve().parent / "results" / "browser_sender.json"

PAGE = """async ({ frames }) => {
  const { KeypointSender, motionFromLandmarks } = await import('/sender/keypoint_sender.js');
  const sender = await KeypointSender.create();
  const stream = await navigator.mediaDevices.getUserMedia({ video: true });
  const video = document.createElement('video');
  video.muted = true;
  video.srcObject = stream;
  await video.play();
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  const nextFrame = () => new Promise((resolve) => video.requestVideoFrameCallback(resolve));
  const results = { size: [video.videoWidth, video.videoHeight] };
  for (const mode of ['video', 'canvas', 'imagedata']) {
    const ms = [];
    let faces = 0;
    for (let i = 0; i < frames; i++) {
      await nextFrame();
      let source = video;
      if (mode !== 'video') {
        context.drawImage(video, 0, 0);
        const { width, height } = canvas;
        source = mode === 'canvas' ? canvas : context.getImageData(0, 0, width, height);
      }
      const start = performance.now();
      const out = sender.extract(source, start);
      ms.push(performance.now() - start);
      faces += out.motion !== null;
    }
    results[mode] = { ms, faces };
  }
  const face = sender._tracker._last?.landmarks;
  const start = performance.now();
  for (let i = 0; i < 1000; i++) motionFromLandmarks(face.points, face.imageSize);
  results.motionOnlyMs = (performance.now() - start) / 1000;
  results.wasm = performance.getEntriesByType('resource')
    .map((entry) => entry.name).filter((name) => name.endsWith('.wasm'));
  sender.close();
  return results;
}"""


class _NoNode:
    def __init__(self, config: Any) -> None:
        del config

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(ms), 2),
        "p90": round(float(np.percentile(ms, 90)), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


def python_reference(y4m: Path) -> dict[str, float]:
    with av.open(str(y4m)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    sender = MeshwarpSender(fps=25.0)
    ms = []
    try:
        for index, frame in enumerate(frames):
            start = time.perf_counter()
            sender.extract(frame, index * 40)
            ms.append((time.perf_counter() - start) * 1000)
    finally:
        sender.close()
    return summary(ms[1:])


async def browser_run(y4m: Path, frames: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    server = CallServer(ServeConfig(port=0), NodeConfig(node_id="bench"), Limits())
    await server.start(node_factory=_NoNode)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*HEADLESS_ARGS, *fake_media_args(y4m)],
            )
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{server.port}/sender/face_data.js")
            result = await page.evaluate(PAGE, {"frames": frames})
            await browser.close()
            return result
    finally:
        await server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", default="320x240", help="camera size WxH (default 320x240)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    video = shared_dir() / "media" / "d0.mp4"
    if not video.exists() or not Path(CHROMIUM).exists():
        raise SystemExit(f"needs {video} and {CHROMIUM}")
    with tempfile.TemporaryDirectory() as folder:
        y4m = Path(folder) / "camera.y4m"
        write_y4m(video, y4m, size=(width, height))
        result = asyncio.run(browser_run(y4m, args.frames))
        python = python_reference(y4m)
    report = {
        "camera": result["size"],
        "frames": args.frames,
        "extract_ms_video_element": summary(result["video"]["ms"][5:]),
        "extract_ms_canvas": summary(result["canvas"]["ms"][5:]),
        "extract_ms_imagedata": summary(result["imagedata"]["ms"][5:]),
        "faces": {mode: result[mode]["faces"] for mode in ("video", "canvas", "imagedata")},
        "motion_only_ms": round(result["motionOnlyMs"], 4),
        "wasm": [name.rsplit("/", 1)[-1] for name in result["wasm"]],
        "python_meshwarp_sender_ms": python,
        "load_average": os.getloadavg()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
