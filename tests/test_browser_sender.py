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
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parent.parent
SENDER = ROOT / "web_client" / "sender"
VENDOR = ROOT / "web_client" / "vendor" / "tasks-vision"
CHROMIUM = Path("/usr/bin/chromium")
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
