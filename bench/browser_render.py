"""Browser renderer (web_client/render/) vs the Python MeshwarpRenderer: ms per frame.

The same frames for both: mona_lisa.jpg (scaled to 512 px on its long side, and the first
frame of d0.mp4 at 512×512, where the face fills the frame) driven by the built-in sender's
motion on d3.mp4. JS: headless Chromium, WebGL2 through SwiftShader (CPU), render() plus a
1-pixel readPixels to wait for the GPU. Python: render() on this process's one thread.
Target (issue 9): JS <= 5 ms a frame. A benchmark, not a timed test.
Run: `.venv/bin/python bench/browser_render.py` -> bench/results/browser_render.json
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

from lpstream.backend import Controls
from lpstream.meshwarp.browser_source import browser_source
from lpstream.meshwarp.clip_motion import motions_from_video
from lpstream.meshwarp.renderer import MeshwarpRenderer
from lpstream.shared_data import shared_dir
from tests.browser_render_harness import browser_renderer

RESULTS = Path(__file__).resolve().parent / "results" / "browser_render.json"
TARGET_MS = 5.0
FRAMES = 60
REPEATS = 3


def _portraits(media: Path) -> dict[str, np.ndarray]:
    mona = cv2.cvtColor(cv2.imread(str(media / "mona_lisa.jpg")), cv2.COLOR_BGR2RGB)
    factor = 512 / max(mona.shape[:2])
    mona = cv2.resize(mona, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    with av.open(str(media / "d0.mp4")) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return {"mona_lisa_288x512": mona, "d0_512x512": cv2.resize(first, (512, 512))}


def _stats(values: list[float]) -> dict[str, float]:
    array = np.array(values)
    return {
        "median_ms": round(float(np.median(array)), 2),
        "p90_ms": round(float(np.percentile(array, 90)), 2),
        "mean_ms": round(float(array.mean()), 2),
    }


def main() -> None:
    media = shared_dir() / "media"
    motions, _ = motions_from_video(media / "d3.mp4", max_frames=FRAMES)
    settings = {"default": Controls(), "sliders": Controls(0.05, 0.4, 0.5, False)}
    results: dict[str, object] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],  # shared machines: read with care
        },
        "frames": len(motions),
        "target_js_ms": TARGET_MS,
        "cases": {},
    }
    with browser_renderer() as browser:
        for name, image in _portraits(media).items():
            python = MeshwarpRenderer()
            python.set_source(image)
            browser.set_source(browser_source(python), image)
            for label, controls in settings.items():
                js = browser.time(motions, controls, REPEATS)[len(motions) :]  # first pass warms
                py = []
                for _ in range(REPEATS - 1):
                    python.reset_reference()
                    for motion in motions:
                        start = time.perf_counter()
                        python.render(motion, controls)
                        py.append((time.perf_counter() - start) * 1000.0)
                case = {"js": _stats(js), "python": _stats(py)}
                results["cases"][f"{name}/{label}"] = case  # type: ignore[index]
                print(name, label, case, file=sys.stderr)
            python.close()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
