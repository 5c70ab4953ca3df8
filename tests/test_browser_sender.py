"""The browser's sender (web_client/sender/) against Python's MeshwarpSender.

- The generated constants module is what the Python definitions give today.
- Motion parity, independent of the landmark detector: Python's own detections of a real clip
  (d3.mp4, with a blank gap) are replayed into the JS tracker + motion + smoothing in Node;
  the JS motion must equal Python's far below the codec's quantiser steps (see TOLERANCE).
- The whole path in headless Chromium: fake camera from d0.mp4, MediaPipe for Web served by
  the node (network blocked except loopback), motion correlated with Python's over time,
  face lost -> null motion, a face after a long loss -> a new face id; ms per frame reported.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from lpstream.face.landmarks import FaceLandmarks
from lpstream.face.tracker import FaceTracker
from lpstream.meshwarp import web_sender_data
from lpstream.meshwarp.sender import MeshwarpSender
from tests.chromium import CHROMIUM, HEADLESS_ARGS, fake_media_args, write_y4m
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parent.parent
SENDER = ROOT / "web_client" / "sender"
VENDOR = ROOT / "web_client" / "vendor" / "tasks-vision"
NODE = shutil.which("node")
FPS = 30.0

TOLERANCE = {"angles": 1e-6, "t": 1e-7, "scale": 1e-7, "exp": 1e-7, "ratios": 1e-6}
"""Largest allowed |JS − Python|: degrees for angles, else the motion's own units. The codec's
finest LANDMARKS steps are 0.2° (angles), 1e-3 (t, scale) and 2e-3 (eyelid exp): the
tolerance is at least 1000× smaller than a quantiser step. What remains is float32 storage of
t/exp (both sides round the same way) and float64 round-off of the SVD vs quaternion fit."""


def _motion_dict(motion: Any) -> dict[str, Any] | None:
    if motion is None:
        return None
    return {
        "pitch": motion.pitch,
        "yaw": motion.yaw,
        "roll": motion.roll,
        "t": motion.t.tolist(),
        "scale": motion.scale,
        "exp": motion.exp.reshape(-1).tolist(),
        "eyeRatio": None if motion.eye_ratio is None else motion.eye_ratio.tolist(),
        "lipRatio": motion.lip_ratio,
    }


def _run_node(script: str, payload: dict[str, Any], tmp_path: Path) -> Any:
    if NODE is None:
        pytest.skip("node is not installed (see README: setup needs Node 20 + npm)")
    data = tmp_path / "payload.json"
    data.write_text(json.dumps(payload))
    source = tmp_path / "script.mjs"
    source.write_text(script.replace("SENDER_DIR", SENDER.as_uri()))
    result = subprocess.run(
        [NODE, str(source), str(data)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_generated_face_data_is_current() -> None:
    committed = (SENDER / "face_data.js").read_text()
    assert committed == web_sender_data.render(), (
        "web_client/sender/face_data.js is stale: run python -m lpstream.meshwarp.web_sender_data"
    )


class _Recording:
    """Wraps one of the tracker's landmark detectors and logs every answer it gives."""

    def __init__(self, detector: Any, kind: str, log: list[dict[str, Any]]) -> None:
        self._detector, self._kind, self._log = detector, kind, log

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[FaceLandmarks]:
        faces = self._detector.detect(image, timestamp_ms)
        self._log.append({"kind": self._kind, "faces": [f.points.ravel().tolist() for f in faces]})
        return faces

    def close(self) -> None:
        self._detector.close()


def _clip_frames(name: str, count: int, gap: range) -> list[np.ndarray]:
    frames = []
    with av.open(str(shared_file(name))) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= count:
                break
            rgb = frame.to_ndarray(format="rgb24")
            frames.append(np.full_like(rgb, 30) if index in gap else rgb)
    return frames


@pytest.fixture(scope="module")
def python_run() -> dict[str, Any]:
    """MeshwarpSender on 60 frames of d3.mp4 with 20 blank frames in the middle (hold, loss,
    loss past re-acquisition: a new face id), every detector answer recorded."""
    frames = _clip_frames("media/d3.mp4", 80, gap=range(30, 50))
    log: list[dict[str, Any]] = []
    tracker = FaceTracker(max_faces=2, fps=FPS)
    tracker._follower = _Recording(tracker._follower, "follower", log)  # type: ignore[assignment]
    tracker._finder = _Recording(tracker._finder, "finder", log)  # type: ignore[assignment]
    sender = MeshwarpSender(fps=FPS, tracker=tracker)
    raw_sender = MeshwarpSender(fps=FPS, tracker=None, smooth=False)
    outputs, raw = [], []
    try:
        for index, frame in enumerate(frames):
            timestamp = round(index * 1000.0 / FPS)
            out = sender.extract(frame, timestamp)
            present = out.motion.extra.get("face_present") if out.motion is not None else None
            outputs.append(
                {"motion": _motion_dict(out.motion), "faceId": out.face_id, "present": present}
            )
            raw.append(_motion_dict(raw_sender.extract(frame, timestamp).motion))
    finally:
        sender.close()
        raw_sender.close()
    height, width = frames[0].shape[:2]
    return {"log": log, "outputs": outputs, "raw": raw, "size": [width, height], "fps": FPS}


REPLAY_SCRIPT = """
import { readFileSync } from 'node:fs';
import { Face, FaceTracker } from 'SENDER_DIR/face_tracker.js';
import { MotionSender } from 'SENDER_DIR/motion_sender.js';
import { motionFromLandmarks } from 'SENDER_DIR/face_motion.js';

const run = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const size = run.size;
let call = 0;
const replay = (kind) => ({
  detect() {
    const entry = run.log[call++];
    if (!entry || entry.kind !== kind) throw new Error(`call ${call - 1}: JS asked the ${kind}`);
    return entry.faces.map((points) => new Face(Float32Array.from(points), size));
  },
});
const tracker = new FaceTracker({
  follower: replay('follower'), finder: replay('finder'),
  greyOut: (frame) => frame, frameSize: () => size,
});
const sender = new MotionSender();
const plain = (m) => m && {
  ...m, t: [...m.t], exp: [...m.exp], eyeRatio: m.eyeRatio && [...m.eyeRatio],
};
const outputs = [];
const raw = [];
for (let i = 0; i < run.outputs.length; i++) {
  const timestamp = Math.round((i * 1000.0) / run.fps);
  const tracked = tracker.update({}, timestamp);
  const out = sender.push(tracked, timestamp);
  const present = out.motion ? out.facePresent : null;
  outputs.push({ motion: plain(out.motion), faceId: out.faceId, present });
  const fresh = tracked && tracked.facePresent;
  raw.push(fresh ? plain(motionFromLandmarks(tracked.landmarks.points, size)) : null);
}
if (call !== run.log.length) {
  throw new Error(`JS made ${call} detector calls, Python ${run.log.length}`);
}
console.log(JSON.stringify({ outputs, raw }));
"""


def _max_errors(python: dict[str, Any], js: dict[str, Any]) -> dict[str, float]:
    return {
        "angles": max(abs(python[k] - js[k]) for k in ("pitch", "yaw", "roll")),
        "t": float(np.max(np.abs(np.subtract(python["t"], js["t"])))),
        "scale": abs(python["scale"] - js["scale"]),
        "exp": float(np.max(np.abs(np.subtract(python["exp"], js["exp"])))),
        "ratios": max(
            float(np.max(np.abs(np.subtract(python["eyeRatio"], js["eyeRatio"])))),
            abs(python["lipRatio"] - js["lipRatio"]),
        ),
    }


def test_js_motion_matches_python_on_replayed_landmarks(
    python_run: dict[str, Any], tmp_path: Path
) -> None:
    js = _run_node(REPLAY_SCRIPT, python_run, tmp_path)
    worst = dict.fromkeys(TOLERANCE, 0.0)
    faces = 0
    for index, (python, ours) in enumerate(zip(python_run["outputs"], js["outputs"], strict=True)):
        assert ours["faceId"] == python["faceId"], f"frame {index}: face id"
        assert (ours["motion"] is None) == (python["motion"] is None), f"frame {index}: presence"
        if python["motion"] is None:
            continue
        assert bool(ours["present"]) == bool(python["present"]), f"frame {index}: face_present"
        faces += 1
        for key, error in _max_errors(python["motion"], ours["motion"]).items():
            worst[key] = max(worst[key], error)
    print(f"max |JS - Python| over {faces} smoothed motions: {worst}")
    assert all(worst[key] <= TOLERANCE[key] for key in TOLERANCE), worst
    # The clip: a face, a 20-frame blank gap (3 held frames, then none), the face again.
    ids = [o["faceId"] for o in python_run["outputs"]]
    assert ids[0] == 1 and ids[-1] == 2, "a face after a long loss is a new face"
    assert [o["motion"] is None for o in python_run["outputs"][30:50]] == [False] * 3 + [True] * 17
    # and the unsmoothed motion_from_landmarks alone
    for python, ours in zip(python_run["raw"], js["raw"], strict=True):
        if python is not None and ours is not None:
            errors = _max_errors(python, ours)
            assert all(errors[key] <= TOLERANCE[key] for key in TOLERANCE), errors


def test_node_serves_the_model_and_wasm() -> None:
    """The landmark model (sha256-checked) and the vendored wasm, with the right types."""
    import hashlib

    from websockets.datastructures import Headers
    from websockets.http11 import Request

    from lpstream.face.landmarks import MODEL_SHA256
    from lpstream.node import NodeConfig
    from lpstream.serve import CallServer, ServeConfig
    from signaling import Limits

    server = CallServer(ServeConfig(port=0), NodeConfig(node_id="t"), Limits())
    ask = lambda path: server._process_request(None, Request(path, Headers()))  # type: ignore[arg-type]  # noqa: E731
    model = ask("/models/face_landmarker.task")
    assert model is not None and model.status_code == 200
    assert hashlib.sha256(model.body).hexdigest() == MODEL_SHA256
    if not (VENDOR / "wasm").is_dir():
        pytest.skip(f"{VENDOR} missing: run `make setup` (npm ci of web_client/)")
    wasm = ask("/vendor/tasks-vision/wasm/vision_wasm_internal.wasm")
    assert wasm is not None and wasm.status_code == 200
    assert wasm.headers["Content-Type"] == "application/wasm"
    bundle = ask("/vendor/tasks-vision/vision_bundle.mjs")
    assert bundle is not None and bundle.headers["Content-Type"].startswith("text/javascript")


# --- the whole path in headless Chromium -------------------------------------------------

THUMB = (32, 24)
"""Frames are identified by a 32×24 grey thumbnail (10×10 block means of 320×240)."""

BROWSER_RUN = """async ({ frames, blank, after, thumb }) => {
  const { KeypointSender, motionFromLandmarks } = await import('/sender/keypoint_sender.js');
  const t0 = performance.now();
  const sender = await KeypointSender.create();
  const createMs = performance.now() - t0;
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
  const video = document.createElement('video');
  video.muted = true;
  video.srcObject = stream;
  await video.play();
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  const nextFrame = () => new Promise((resolve) => video.requestVideoFrameCallback(resolve));
  const grab = () => {
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const { data, width, height } = context.getImageData(0, 0, canvas.width, canvas.height);
    const [tw, th] = thumb;
    const bx = width / tw;
    const by = height / th;
    const grey = new Array(tw * th).fill(0);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = 4 * (y * width + x);
        const cell = Math.floor(y / by) * tw + Math.floor(x / bx);
        grey[cell] += (data[i] + data[i + 1] + data[i + 2]) / 3;
      }
    }
    return grey.map((v) => v / (bx * by));
  };
  const plain = (m) => m && {
    ...m, t: [...m.t], exp: [...m.exp], eyeRatio: m.eyeRatio && [...m.eyeRatio],
  };
  const records = [];
  const run = async (count) => {
    for (let i = 0; i < count; i++) {
      await nextFrame();
      const grey = grab();
      const now = performance.now();
      const out = sender.extract(canvas, now);
      const ms = performance.now() - now;
      const { faceId, facePresent } = out;
      records.push({ grey, ms, faceId, present: facePresent, motion: plain(out.motion) });
    }
  };
  await run(frames);
  // Face lost: a blank frame of the same size, long enough to give up the face.
  const blankResults = [];
  let clock = performance.now();
  context.fillStyle = 'rgb(30, 30, 30)';
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < blank; i++) {
    clock += 40;
    const out = sender.extract(canvas, clock);
    const { faceId, facePresent } = out;
    blankResults.push({ motion: out.motion !== null, present: facePresent, faceId });
  }
  const before = records.length;
  await run(after);
  // Motion alone (tracker + smoothing excluded): motionFromLandmarks on a landmark set.
  const face = sender._tracker._last?.landmarks;
  let motionMs = null;
  if (face) {
    const start = performance.now();
    for (let i = 0; i < 1000; i++) motionFromLandmarks(face.points, face.imageSize);
    motionMs = (performance.now() - start) / 1000;
  }
  sender.close();
  stream.getTracks().forEach((track) => track.stop());
  return { records: records.slice(0, before), after: records.slice(before), blankResults,
           createMs, motionMs };
}"""


def _thumb(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    tw, th = THUMB
    grey = rgb.astype(np.float64).mean(axis=2)
    return grey.reshape(th, height // th, tw, width // tw).mean(axis=(1, 3)).ravel()


@pytest.fixture
def browser_clip(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure_chromium.sh (as root)")
    if not (VENDOR / "vision_bundle.mjs").exists():
        pytest.skip(f"{VENDOR} missing: run `make setup` (npm ci of web_client/)")

    out = tmp_path / "face.y4m"
    write_y4m(shared_file("media/d0.mp4"), out)
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return out, frames


class _NoNode:
    """The call server without a media node: only its HTTP side is needed here."""

    def __init__(self, config: Any) -> None:
        del config

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _pearson(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.slow
async def test_browser_sender_follows_python(browser_clip: tuple[Path, list[np.ndarray]]) -> None:
    from urllib.parse import urlsplit

    from playwright.async_api import async_playwright

    from lpstream.node import NodeConfig
    from lpstream.serve import CallServer, ServeConfig
    from signaling import Limits

    y4m, frames = browser_clip
    # Python's motion of the same (decoded) frames, looped twice as the fake camera loops.
    sender = MeshwarpSender(fps=25.0)
    try:
        loop = [sender.extract(f, round(i * 40.0)) for i, f in enumerate(frames + frames)]
    finally:
        sender.close()
    reference = [out.motion for out in loop[len(frames) :]]
    thumbs = np.stack([_thumb(f) for f in frames])

    server = CallServer(ServeConfig(port=0), NodeConfig(node_id="sender-test"), Limits())
    await server.start(node_factory=_NoNode)
    blocked: list[str] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*HEADLESS_ARGS, *fake_media_args(y4m)],
            )
            context = await browser.new_context()

            async def only_loopback(route: Any) -> None:
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    blocked.append(route.request.url)
                    await route.abort()

            await context.route("**/*", only_loopback)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"http://127.0.0.1:{server.port}/sender/face_data.js")
            result = await page.evaluate(
                BROWSER_RUN, {"frames": 120, "blank": 20, "after": 10, "thumb": list(THUMB)}
            )
            await browser.close()
    finally:
        await server.stop()
    assert not errors, errors
    assert not blocked, f"the page reached beyond the node: {blocked}"

    records = result["records"]
    found = [r for r in records if r["motion"] is not None]
    assert len(found) >= 0.9 * len(records), f"motion on {len(found)}/{len(records)} frames"
    # Each JS frame is identified by its thumbnail among the clip's frames.
    pairs = []
    for record in found:
        distances = np.linalg.norm(thumbs - np.asarray(record["grey"]), axis=1)
        index = int(np.argmin(distances))
        if reference[index] is not None:
            pairs.append((record["motion"], reference[index]))
    assert len(pairs) >= 0.8 * len(records)
    series = {
        "pitch": lambda m: m["pitch"] if isinstance(m, dict) else m.pitch,
        "yaw": lambda m: m["yaw"] if isinstance(m, dict) else m.yaw,
        "roll": lambda m: m["roll"] if isinstance(m, dict) else m.roll,
        "lip": lambda m: m["lipRatio"] if isinstance(m, dict) else m.lip_ratio,
        "eye": lambda m: sum(m["eyeRatio"]) if isinstance(m, dict) else float(np.sum(m.eye_ratio)),
        "scale": lambda m: m["scale"] if isinstance(m, dict) else m.scale,
    }
    r = {
        name: _pearson([get(js) for js, _ in pairs], [get(py) for _, py in pairs])
        for name, get in series.items()
    }
    spread = {name: float(np.std([get(py) for _, py in pairs])) for name, get in series.items()}
    times = [rec["ms"] for rec in records]
    print(
        f"\nbrowser sender: motion on {len(found)}/{len(records)} frames; Pearson r vs Python "
        + ", ".join(f"{k} {v:.3f} (py std {spread[k]:.3g})" for k, v in r.items())
        + f"\nlandmarks+motion ms/frame: median {statistics.median(times):.1f}, "
        f"p90 {np.percentile(times, 90):.1f}; motion alone {result['motionMs']:.3f} ms; "
        f"create {result['createMs']:.0f} ms"
    )
    for name in ("pitch", "yaw", "lip"):
        assert r[name] >= 0.9, f"{name}: r = {r[name]:.3f}"

    # Face lost: three held frames (the last motion, face_present false), then no motion.
    blank = result["blankResults"]
    assert [b["motion"] for b in blank] == [True] * 3 + [False] * 17
    assert not any(b["present"] for b in blank)
    # The face again after a loss past re-acquisition: a new face id (the reference resets).
    again = [rec for rec in result["after"] if rec["motion"] is not None]
    assert again and again[-1]["faceId"] == found[-1]["faceId"] + 1
