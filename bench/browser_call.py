"""A keypoint call between two pages of one headless Chromium: what each page costs and how
late the avatar is.

Both pages find their face in Chromium's fake camera (a real face video, d0.mp4), encode and
send motion, and render the other with WebGL2 (SwiftShader: the CPU). Over a steady window:
  - extract: landmarks + motion + encode per frame at the sender (median ms);
  - render submit: the JS time of one WebGL2 frame at the receiver (median ms; the GPU work
    itself runs after it — bench/browser_render.py waits for the pixels);
  - latency: sender extraction start → the receiver's render of that frame, on the clock the
    two pages share (Date.now()); the camera frame is at most one frame older than the
    extraction start (the page polls the camera at 25 fps);
  - the page's own link, up and down, from getStats (web_client/link_stats.js).
Both fake microphones play real speech (d6.mp4's sound) all the time, the worst case for the
link (`--microphone tone`: Chromium's own beep instead).

Run: .venv/bin/python bench/browser_call.py → bench/results/browser_call.json
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
from pathlib import Path
from typing import Any

from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from lpstream.shared_data import shared_dir
from signaling import Limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.chromium import (  # noqa: E402
    CHROMIUM,
    HEADLESS_ARGS,
    fake_media_args,
    write_speech_wav,
    write_y4m,
)

RESULT = ROOT / "bench" / "results" / "browser_call.json"

PAGE_FIGURES = """() => {
  const s = window.lpstream, k = s.kinds;
  const tiles = [...k.downlink.tiles.values()].map((t) => k.downlink.tileFigures(
    [...k.downlink.tiles.entries()].find(([, v]) => v === t)[0]));
  return { id: s.id, wallStart: k.uplink.wallStart, extractMs: k.uplink.medianExtractMs(),
           framesSent: k.uplink.framesSent, drawn: k.downlink.drawn, tiles, link: s.link,
           mode: s.mode };
}"""


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="bench", backend="meshwarp"), Limits()
    )
    await server.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            camera = Path(folder) / "face.y4m"
            await asyncio.to_thread(write_y4m, shared_dir() / "media" / "d0.mp4", camera)
            microphone = None
            if args.microphone == "speech":
                microphone = Path(folder) / "speech.wav"
                seconds = min(33.0, args.warmup + args.window + 15)  # d6 has 33 s of sound
                await asyncio.to_thread(write_speech_wav, microphone, seconds)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=[*HEADLESS_ARGS, *fake_media_args(camera, microphone)],
                )
                pages = []
                for name in ("ann", "bob"):
                    # A window each: a background tab would not draw (requestAnimationFrame).
                    context = await browser.new_context(viewport={"width": 1100, "height": 900})
                    page = await context.new_page()
                    await page.goto(
                        f"http://127.0.0.1:{server.port}/?room=bench&name={name}&autojoin=1"
                    )
                    pages.append(page)
                for page in pages:
                    await page.wait_for_function(
                        "() => window.lpstream.phase === 'in-call'", timeout=30000
                    )
                await asyncio.sleep(args.warmup)
                start = [await page.evaluate(PAGE_FIGURES) for page in pages]
                await asyncio.sleep(args.window)
                end = [await page.evaluate(PAGE_FIGURES) for page in pages]
                await browser.close()
    finally:
        await server.stop()
    results = {}
    for index, name in enumerate(("ann", "bob")):
        sender, receiver = end[index], end[1 - index]
        since = start[1 - index]["drawn"][-1]["at"] if start[1 - index]["drawn"] else 0
        drawn = [d for d in receiver["drawn"] if d["id"] == sender["id"] and d["at"] > since]
        latencies = sorted(d["at"] - (sender["wallStart"] + d["senderMs"]) for d in drawn)
        render_ms = [t["renderMs"] for t in receiver["tiles"] if t]
        results[name] = {
            "mode": sender["mode"],
            "extract_ms_median": round(sender["extractMs"], 2),
            "sent_fps": round((sender["framesSent"] - start[index]["framesSent"]) / args.window, 1),
            "render_submit_ms_median_at_receiver": round(statistics.median(render_ms), 2)
            if render_ms
            else None,
            "drawn_fps_at_receiver": round(len(drawn) / args.window, 1),
            "latency_ms_median": round(latencies[len(latencies) // 2], 1) if latencies else None,
            "latency_ms_p90": round(latencies[int(len(latencies) * 0.9)], 1) if latencies else None,
            "link_kbps": {
                direction: {k: round(v, 1) for k, v in sender["link"][direction].items()}
                for direction in ("up", "down")
            }
            if sender["link"]
            else None,
        }
    return {
        "benchmark": "browser_call",
        "machine": {"cpus": os.cpu_count(), "processor": platform.machine()},
        "window_s": args.window,
        "microphone": args.microphone,
        "load_average_1min": os.getloadavg()[0],
        "targets": {"extract_ms": 15, "render_ms": 5, "latency_ms": 100},
        "pages": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULT)
    parser.add_argument("--microphone", choices=("speech", "tone"), default="speech")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
