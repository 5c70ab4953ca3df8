"""Browser sender cost in headless Chromium → bench/results/browser_sender.json.

Run: `.venv/bin/python bench/browser_sender.py [--frames N] [--size 320x240]`. Chromium's fake
camera plays ../shared/media/d0.mp4 (letterboxed, 25 fps); the page runs web_client/sender's
KeypointSender (MediaPipe Tasks for Web, CPU delegate, served by the node) on every camera
frame. Timed, per frame:

- `uplink_step_ms`: what the page's keypoint uplink does per camera frame, the issue's figure
  "landmarks + motion + encode": `extract(<video>)` (landmarks, tracker, motion, smoothing)
  plus the codec's `MotionEncoder.encode` (target ≤ 15 ms).
- `breakdown_ms`: of that, MediaPipe's `detectForVideo` and, inside it, its WebGL upload of the
  frame (texImage2D) and read-back for the CPU graph (readPixels), timed by wrapping WebGL2's
  methods in a separate pass; `rest_of_extract` is our JS (tracker, motion, smoothing).
- `extract_ms_by_input`: `extract` alone handed the <video> element, a VideoFrame of it, a
  canvas copy, its ImageData (grabbing the copy not included).

Python's MeshwarpSender on the same frames is timed alongside, as a yardstick of the machine's
load. A benchmark, not a timed test.
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
TARGET_MS = 15.0

PAGE = """async ({ frames }) => {
  const { KeypointSender, motionFromLandmarks } = await import('/sender/keypoint_sender.js');
  const { LANDMARKS, MotionEncoder } = await import('/codec/index.js');
  const sender = await KeypointSender.create();
  const encoder = new MotionEncoder({ profile: LANDMARKS });
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
  const started = performance.now();

  // The uplink's step (keypoint_uplink.js): extract from the <video>, encode, per frame.
  const step = { ms: [], faces: 0, bytes: 0 };
  for (let i = 0; i < frames; i++) {
    await nextFrame();
    const start = performance.now();
    const out = sender.extract(video, start - started);
    const packet = encoder.encode(out.motion, Math.round(start - started));
    step.ms.push(performance.now() - start);
    step.faces += out.motion !== null;
    step.bytes += packet.length;
  }
  results.step = step;

  // Where it goes: detectForVideo inside extract, WebGL calls inside detectForVideo.
  const landmarker = sender._follower._landmarker;
  const detect = landmarker.detectForVideo.bind(landmarker);
  let detectMs = 0;
  landmarker.detectForVideo = (...args) => {
    const start = performance.now();
    const result = detect(...args);
    detectMs += performance.now() - start;
    return result;
  };
  const gl = {};
  const proto = WebGL2RenderingContext.prototype;
  const originals = {};
  for (const name of ['texImage2D', 'readPixels']) {
    originals[name] = proto[name];
    proto[name] = function (...args) {
      const start = performance.now();
      const result = originals[name].apply(this, args);
      gl[name] = (gl[name] ?? 0) + performance.now() - start;
      return result;
    };
  }
  const parts = { extract: [], detect: [], texImage2D: [], readPixels: [], encode: [] };
  for (let i = 0; i < frames; i++) {
    await nextFrame();
    detectMs = 0;
    gl.texImage2D = 0;
    gl.readPixels = 0;
    const start = performance.now();
    const out = sender.extract(video, start - started);
    const mid = performance.now();
    encoder.encode(out.motion, Math.round(start - started));
    parts.encode.push(performance.now() - mid);
    parts.extract.push(mid - start);
    parts.detect.push(detectMs);
    parts.texImage2D.push(gl.texImage2D);
    parts.readPixels.push(gl.readPixels);
  }
  for (const name of Object.keys(originals)) proto[name] = originals[name];
  landmarker.detectForVideo = detect;
  results.parts = parts;

  for (const mode of ['video', 'videoframe', 'canvas', 'imagedata']) {
    const ms = [];
    let faces = 0;
    for (let i = 0; i < frames; i++) {
      await nextFrame();
      let source = video;
      if (mode === 'videoframe') source = new VideoFrame(video);
      if (mode === 'canvas' || mode === 'imagedata') {
        context.drawImage(video, 0, 0);
        const { width, height } = canvas;
        source = mode === 'canvas' ? canvas : context.getImageData(0, 0, width, height);
      }
      const start = performance.now();
      const out = sender.extract(source, start - started);
      ms.push(performance.now() - start);
      if (mode === 'videoframe') source.close();
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
  results.crossOriginIsolated = self.crossOriginIsolated;
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
    parts = result["parts"]
    skip = 5  # the first frames warm up
    median = lambda key: round(statistics.median(parts[key][skip:]), 2)  # noqa: E731
    rest = [e - d for e, d in zip(parts["extract"], parts["detect"], strict=True)][skip:]
    report = {
        "camera": result["size"],
        "frames": args.frames,
        "target_ms": TARGET_MS,
        "uplink_step_ms": summary(result["step"]["ms"][skip:]),
        "breakdown_ms": {
            "extract": median("extract"),
            "detect_for_video": median("detect"),
            "of_which_gl_upload_texImage2D": median("texImage2D"),
            "of_which_gl_readback_readPixels": median("readPixels"),
            "rest_of_extract": round(statistics.median(rest), 2),
            "encode": median("encode"),
        },
        "extract_ms_by_input": {
            mode: summary(result[mode]["ms"][skip:])
            for mode in ("video", "videoframe", "canvas", "imagedata")
        },
        "faces": {
            mode: result[mode]["faces"]
            for mode in ("step", "video", "videoframe", "canvas", "imagedata")
        },
        "motion_bytes_per_frame": round(result["step"]["bytes"] / args.frames, 1),
        "motion_only_ms": round(result["motionOnlyMs"], 4),
        "wasm": [name.rsplit("/", 1)[-1] for name in result["wasm"]],
        "cross_origin_isolated": result["crossOriginIsolated"],
        "python_meshwarp_sender_ms": python,
        "load_average": os.getloadavg(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
