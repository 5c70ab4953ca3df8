"""Face-tracking cost per 640×480 frame on one thread → bench/results/face_tracking.json.

Run: `.venv/bin/python bench/face_tracking.py [--frames N]`. Uses ../shared/media/d3.mp4
(a person talking, 30 fps) resized to 640×480. Reports wall and process-CPU milliseconds per
frame; CPU ≈ wall shows that MediaPipe runs on one core.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpstream.face.crop import LiveCropper, crop_source
from lpstream.face.landmarks import LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.face.tracker import FaceTracker
from lpstream.shared_data import shared_dir

RESULTS = Path(__file__).resolve().parent / "results" / "face_tracking.json"
WIDTH, HEIGHT = 640, 480


def load_frames(count: int) -> list[np.ndarray]:
    path = shared_dir() / "media" / "d3.mp4"
    if not path.exists():
        raise SystemExit(f"missing {path}: this benchmark needs ../shared/media/d3.mp4")
    with av.open(str(path)) as container:
        frames = itertools.islice(container.decode(video=0), count)
        rgb = (frame.to_ndarray(format="rgb24") for frame in frames)
        return [cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for image in rgb]


def time_per_frame(step: Callable[[int, np.ndarray], object], frames: list[np.ndarray]) -> dict:
    step(0, frames[0])  # warm-up: graph start, first detection
    wall, cpu = [], []
    for index, frame in enumerate(frames[1:], start=1):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        step(index, frame)
        wall.append((time.perf_counter() - wall_start) * 1000)
        cpu.append((time.process_time() - cpu_start) * 1000)
    return {
        "wall_ms_mean": round(statistics.fmean(wall), 3),
        "wall_ms_median": round(statistics.median(wall), 3),
        "wall_ms_p95": round(float(np.percentile(wall, 95)), 3),
        "cpu_ms_mean": round(statistics.fmean(cpu), 3),
        "frames": len(wall),
    }


def jitter(points: list[np.ndarray]) -> float:
    return float(np.abs(np.diff(np.array(points)[:, :, :2], n=2, axis=0)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    frames = load_frames(args.frames)
    results: dict[str, object] = {
        "input": f"d3.mp4 resized to {WIDTH}x{HEIGHT}, {len(frames)} frames",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }

    for max_faces in (1, 2):
        points: list[np.ndarray] = []
        with LandmarkDetector(max_faces=max_faces) as detector:
            timing = time_per_frame(
                lambda i, f, d=detector, out=points: out.append(d.detect(f, 33 * i)[0].points),
                frames,
            )
        # Landmark jitter: mean |second difference| of x, y in pixels (steady motion → 0).
        timing["landmark_jitter_px"] = round(jitter(points), 4)
        results[f"landmarks_video_max_faces_{max_faces}"] = timing
    with LandmarkDetector(max_faces=1, video_mode=False) as detector:
        results["landmarks_image_mode"] = time_per_frame(
            lambda i, f, d=detector: d.detect(f), frames[:40]
        )
    with FaceTracker() as tracker:
        results["tracker_full_step"] = time_per_frame(
            lambda i, f, t=tracker: t.update(f, 33 * i), frames
        )
        one = tracker.update(frames[0], 33 * len(frames))
    assert one is not None, "no face in d3.mp4"
    results["ratios_and_crop_only"] = time_per_frame(
        lambda i, f: (
            eye_open_ratio(one.landmarks.points),
            lip_open_ratio(one.landmarks.points),
            LiveCropper.crop(f, one.box, 256),
        ),
        frames[:40],
    )
    results["source_crop_512"] = time_per_frame(
        lambda i, f: crop_source(f, one.landmarks, 512), frames[:40]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
