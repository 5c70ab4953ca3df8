"""Self-reenactment quality of the built-in (meshwarp) backend on real talking-head clips.

Each clip's first frame is the portrait; the clip itself drives it through the live sender
and renderer, so the right output is the clip. Per clip, on a subset of frames:

- PSNR and SSIM on the face box (the driver frame's landmark box grown by 15% a side), for
  the output and for the "frozen first frame" baseline (the portrait shown unchanged);
- gaze correlation: the iris centre's position along each eye (corner to corner, in eye
  widths), driver vs. output, both measured by MediaPipe;
- landmark correlations (mouth-open, eye-open, yaw, pitch), as tests/test_meshwarp_fidelity;
- sender and renderer milliseconds per frame.

A picture sheet (driver | output | |difference|, worst PSNR first) is written beside the
numbers so a person can look.
Run: `.venv/bin/python bench/reenactment.py [--quick]`
-> bench/results/reenactment.json and bench/results/reenactment_sheet.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpstream.face.landmarks import FaceLandmarks, LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.meshwarp import MeshwarpRenderer, MeshwarpSender
from lpstream.meshwarp.face_motion import fit_face
from lpstream.meshwarp.pose import euler_from_rotation
from lpstream.meshwarp.topology import face_topology
from lpstream.shared_data import shared_dir

RESULTS = Path(__file__).resolve().parent / "results"
CLIPS = ("d0", "d3", "d6")
FULL = {"step": 3, "frames": 60}
QUICK = {"step": 6, "frames": 10}
"""Every `step`-th frame of the clip, at most `frames` of them (the first is the portrait)."""
BOX_GROW = 0.15
SHEET_ROWS = 4
"""Worst frames per clip on the picture sheet."""
CROP_PX = 160
MEASURES = ("mouth", "eye", "yaw", "pitch")
EYES = ((33, 133), (362, 263))
"""Per eye, corners ordered left to right in the image (image-left eye, image-right eye)."""
IRIS_CENTRES = (468, 473)


def read_clip(path: Path, step: int, count: int) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        frames = []
        for index, frame in enumerate(container.decode(stream)):
            if index % step == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
    return frames, fps / step


def gaze(points: np.ndarray) -> np.ndarray:
    """(horizontal, vertical) iris-centre position in the eye, eye widths from the eye's
    middle, mean of both eyes (x to the image's right, y down)."""
    xy = points[:, :2]
    irises = xy[list(IRIS_CENTRES)]
    offsets = []
    for left, right in EYES:
        middle = (xy[left] + xy[right]) / 2
        axis = xy[right] - xy[left]
        width = max(float(np.linalg.norm(axis)), 1e-6)
        axis = axis / width
        normal = np.array([-axis[1], axis[0]])
        iris = irises[np.argmin(np.linalg.norm(irises - middle, axis=1))]
        offsets.append([(iris - middle) @ axis / width, (iris - middle) @ normal / width])
    return np.mean(offsets, axis=0)


def measure(face: FaceLandmarks) -> np.ndarray:
    """mouth-open, mean eye-open, yaw, pitch, gaze x, gaze y of one face."""
    pitch, yaw, _ = euler_from_rotation(fit_face(face.points, face_topology()).pose.rotation)
    mouth = lip_open_ratio(face.points)
    eye = float(eye_open_ratio(face.points).mean())
    return np.array([mouth, eye, yaw, pitch, *gaze(face.points)])


def face_box(face: FaceLandmarks, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = face.bbox()
    grow_x, grow_y = (x1 - x0) * BOX_GROW, (y1 - y0) * BOX_GROW
    height, width = shape[:2]
    return (
        max(int(x0 - grow_x), 0),
        max(int(y0 - grow_y), 0),
        min(int(x1 + grow_x), width),
        min(int(y1 + grow_y), height),
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse < 1e-10 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the grey images (Gaussian window σ = 1.5, Wang et al. 2004)."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    blur = lambda image: cv2.GaussianBlur(image, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(index.mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


@dataclass
class ClipRun:
    name: str
    driver: list[np.ndarray] = field(default_factory=list)
    output: list[np.ndarray] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    psnr_frozen: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    ssim_frozen: list[float] = field(default_factory=list)
    measured_driver: list[np.ndarray] = field(default_factory=list)
    measured_output: list[np.ndarray] = field(default_factory=list)
    sender_s: list[float] = field(default_factory=list)
    render_s: list[float] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)


def run_clip(name: str, step: int, count: int) -> ClipRun:
    frames, fps = read_clip(shared_dir() / "media" / f"{name}.mp4", step, count)
    portrait = frames[0]
    run = ClipRun(name)
    sender, renderer = MeshwarpSender(fps=fps), MeshwarpRenderer()
    driver_detector, output_detector = LandmarkDetector(max_faces=1), LandmarkDetector(max_faces=1)
    try:
        renderer.set_source(portrait)
        for index, frame in enumerate(frames):
            timestamp = round(index * 1000 / fps)
            start = time.perf_counter()
            motion = sender.extract(frame, timestamp).motion
            run.sender_s.append(time.perf_counter() - start)
            seen_driver = driver_detector.detect(frame, timestamp)
            if motion is None or not seen_driver:
                continue
            start = time.perf_counter()
            image = renderer.render(motion)
            run.render_s.append(time.perf_counter() - start)
            seen_output = output_detector.detect(image, timestamp)
            x0, y0, x1, y1 = face_box(seen_driver[0], frame.shape)
            truth, out, frozen = (im[y0:y1, x0:x1] for im in (frame, image, portrait))
            run.psnr.append(psnr(out, truth))
            run.psnr_frozen.append(psnr(frozen, truth))
            run.ssim.append(ssim(out, truth))
            run.ssim_frozen.append(ssim(frozen, truth))
            run.driver.append(frame)
            run.output.append(image)
            run.boxes.append((x0, y0, x1, y1))
            if seen_output:
                run.measured_driver.append(measure(seen_driver[0]))
                run.measured_output.append(measure(seen_output[0]))
    finally:
        for closable in (sender, renderer, driver_detector, output_detector):
            closable.close()
    return run


def summarise(run: ClipRun) -> dict:
    driver, output = np.array(run.measured_driver), np.array(run.measured_output)
    ms = lambda seconds: round(float(np.median(seconds[1:] or seconds)) * 1000, 2)  # noqa: E731
    return {
        "frames": len(run.psnr),
        "psnr_db": round(float(np.mean(run.psnr)), 2),
        "psnr_frozen_db": round(float(np.mean(run.psnr_frozen)), 2),
        "ssim": round(float(np.mean(run.ssim)), 4),
        "ssim_frozen": round(float(np.mean(run.ssim_frozen)), 4),
        "gaze_r": correlation(driver[:, 4], output[:, 4]),
        "gaze_y_r": correlation(driver[:, 5], output[:, 5]),
        "driver_gaze_std": round(float(driver[:, 4].std()), 4),
        "landmark_r": {
            name: correlation(driver[:, k], output[:, k]) for k, name in enumerate(MEASURES)
        },
        "sender_ms": ms(run.sender_s),
        "receiver_ms": ms(run.render_s),
    }


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return cv2.resize(image[y0:y1, x0:x1], (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA)


def picture_sheet(runs: list[ClipRun]) -> np.ndarray:
    """Per clip, its worst frames (lowest PSNR first): driver | output | 4×|difference|."""
    rows = []
    for run in runs:
        worst = np.argsort(run.psnr)[:SHEET_ROWS]
        for k in worst:
            driver = _crop(run.driver[k], run.boxes[k])
            output = _crop(run.output[k], run.boxes[k])
            difference = np.clip(np.abs(driver.astype(np.int16) - output) * 4, 0, 255)
            row = np.concatenate([driver, output, difference.astype(np.uint8)], axis=1)
            label = f"{run.name} frame {k} {run.psnr[k]:.1f} dB"
            cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
            rows.append(row)
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few frames per clip (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    settings = QUICK if args.quick else FULL
    runs = [run_clip(name, settings["step"], settings["frames"]) for name in CLIPS]
    clips = {run.name: summarise(run) for run in runs}
    keys = ("psnr_db", "psnr_frozen_db", "ssim", "ssim_frozen", "sender_ms", "receiver_ms")
    mean = {key: round(float(np.mean([c[key] for c in clips.values()])), 4) for key in keys}
    result = {
        "benchmark": "reenactment",
        "backend": "meshwarp",
        "quick": args.quick,
        "frame_step": settings["step"],
        "face_box": f"driver landmark box grown by {BOX_GROW:.0%} a side",
        "clips": clips,
        "mean": mean,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"reenactment{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    sheet = picture_sheet(runs)
    sheet_path = args.out / f"reenactment{suffix}_sheet.png"
    cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
