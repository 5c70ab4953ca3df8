"""Built-in (meshwarp) backend on one CPU core: sender and receiver milliseconds per frame.

Sender = landmarks (MediaPipe, via the face tracker) + motion, on d3.mp4's 512×512 frames.
Receiver = render of a 512×512 source driven by those motions: scikit-image's astronaut
(face ~1/3 of the frame) and the first frame of d0.mp4 (face fills the frame, worst case).
Target (issue 3): each <= 15 ms, so a 30 fps call fits on a 2-core machine.
Run: `.venv/bin/python bench/backend_cpu.py` -> bench/results/backend_cpu.json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpstream.face.tracker import FaceTracker
from lpstream.meshwarp import MeshwarpRenderer, MeshwarpSender
from lpstream.meshwarp.face_motion import motion_from_landmarks
from lpstream.meshwarp.topology import face_topology
from lpstream.shared_data import shared_dir

RESULTS = Path(__file__).resolve().parent / "results" / "backend_cpu.json"
TARGET_MS = 15.0
SIZE = 512
WARMUP = 10


def _stats(samples: list[float]) -> dict[str, float]:
    values = np.array(samples[WARMUP:]) * 1000.0
    return {
        "mean_ms": round(float(values.mean()), 2),
        "median_ms": round(float(np.median(values)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
    }


def _driving_frames() -> tuple[list[np.ndarray], float]:
    path = shared_dir() / "media" / "d3.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return [cv2.resize(f, (SIZE, SIZE)) for f in frames], fps


def _source() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(cv2.resize(astronaut(), (SIZE, SIZE)))


def _large_face_source() -> np.ndarray:
    with av.open(str(shared_dir() / "media" / "d0.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return np.ascontiguousarray(cv2.resize(frame, (SIZE, SIZE)))


def _render(source: np.ndarray, motions: list) -> tuple[list[float], float]:
    renderer = MeshwarpRenderer()
    renderer.set_source(source)
    times = []
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for motion in motions:
        start = time.perf_counter()
        frame = renderer.render(motion)
        times.append(time.perf_counter() - start)
    cpu_ratio = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    assert frame.shape == (SIZE, SIZE, 3)
    renderer.close()
    return times, cpu_ratio


def main() -> int:
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    frames, fps = _driving_frames()
    topology = face_topology()

    # Sender, whole stage and its two parts (landmarks through the tracker, motion maths).
    sender = MeshwarpSender(fps=fps)
    sender_times, motions = [], []
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for index, frame in enumerate(frames):
        start = time.perf_counter()
        motion = sender.extract(frame, round(index * 1000 / fps)).motion
        sender_times.append(time.perf_counter() - start)
        if motion is not None:
            motions.append(motion)
    sender_cpu_ratio = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    sender.close()

    tracker = FaceTracker(max_faces=2, fps=fps)
    landmark_times, motion_times = [], []
    for index, frame in enumerate(frames):
        start = time.perf_counter()
        tracked = tracker.update(frame, round(index * 1000 / fps))
        landmark_times.append(time.perf_counter() - start)
        if tracked is not None:
            start = time.perf_counter()
            face = tracked.landmarks
            motion_from_landmarks(face.points, face.image_size, topology)
            motion_times.append(time.perf_counter() - start)
    tracker.close()

    render_times, render_cpu_ratio = _render(_source(), motions)
    large_face_times, _ = _render(_large_face_source(), motions)

    sender_stats, render_stats = _stats(sender_times), _stats(render_times)
    result = {
        "benchmark": "backend_cpu",
        "backend": "meshwarp",
        "resolution": f"{SIZE}x{SIZE}",
        "frames": len(frames),
        "threads": "cv2.setNumThreads(1), torch.set_num_threads(1); MediaPipe runs on one thread",
        "sender": sender_stats,
        "sender_parts": {
            "landmarks_and_tracking": _stats(landmark_times),
            "motion": _stats(motion_times),
        },
        "receiver": render_stats,
        "receiver_large_face": _stats(large_face_times),
        "cpu_time_over_wall_time": {
            "sender": round(sender_cpu_ratio, 2),
            "receiver": round(render_cpu_ratio, 2),
        },
        "target_ms": TARGET_MS,
        "meets_target": max(
            sender_stats["mean_ms"], render_stats["mean_ms"], _stats(large_face_times)["mean_ms"]
        )
        <= TARGET_MS,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
