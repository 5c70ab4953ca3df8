"""Lip sync, before and after, in both downlink kinds: how much later (or earlier) a tile's
sound plays than its mouth moves, end to end in headless Chromium.

The talking clip of tests/lip_sync.py (d6.mp4's closed and open mouth, a voice-like buzz
exactly at each opening, period 3.2 s) is the fake camera and microphone of two pages in a
room; the sender page's own preview and microphone give the clip's phase there (Chromium
starts the two fake devices apart), the receiver page's tile and its audio what the call
shows; the call's offset is the difference, per event (sound − mouth: positive = the sound
after the mouth). Mouth times from the pictures the page shows (requestVideoFrameCallback /
the animation frame), sound times where the browser's audio output plays them (a PulseAudio
null sink, tests/audio_output.py; the receiving page's AudioWorklet, which hears them later,
is given beside as `worklet_median_ms`).

Four calls: keypoint tile with the page's playout sync on, then off (`?lipsync=0`);
node-rendered video tile with the node's sync on, then off (NodeConfig.lip_sync).

Run: .venv/bin/python bench/lip_sync.py [--seconds 40] → bench/results/lip_sync.json
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from lpstream.node import NodeConfig  # noqa: E402
from lpstream.serve import CallServer, ServeConfig  # noqa: E402
from lpstream.shared_data import shared_dir  # noqa: E402
from signaling import Limits  # noqa: E402
from tests.audio_output import AudioOutput, browser_launch_options  # noqa: E402
from tests.lip_sync import (  # noqa: E402
    PERIOD_S,
    TARGET_MS,
    Offsets,
    listen_only,
    measure,
    worklet_offsets,
    write_clip,
)
from tests.test_browser_keypoints import close_pages, live_tile, open_pages  # noqa: E402

RESULT = ROOT / "bench" / "results" / "lip_sync.json"


def _figures(offsets: Offsets, name: str) -> dict[str, Any]:
    raw = Path(tempfile.gettempdir()) / f"lip_sync_{name}.json"
    raw.write_text(json.dumps(offsets.raw))  # to look into, not a result
    worklet = worklet_offsets(offsets)
    return {
        "sound_from": "audio output" if worklet is not None else "AudioWorklet",
        "median_ms": round(offsets.median_ms, 1),
        "p90_abs_ms": round(offsets.p90_abs_ms, 1),
        "events": len(offsets.events_ms),
        "events_ms": [round(e, 1) for e in offsets.events_ms],
        "sound_latency_median_ms": round(statistics.median(offsets.sound_latency_ms), 1)
        if offsets.sound_latency_ms
        else None,
        "mouth_latency_median_ms": round(statistics.median(offsets.mouth_latency_ms), 1)
        if offsets.mouth_latency_ms
        else None,
        "in_target": bool(TARGET_MS[0] <= offsets.median_ms <= TARGET_MS[1]),
        "worklet_median_ms": round(worklet.median_ms, 1) if worklet is not None else None,
    }


async def _call(
    clip: tuple[Path, Path], lip_sync: bool, query: str, kind: str, seconds: float
) -> dict[str, Any]:
    server = CallServer(
        ServeConfig(port=0),
        NodeConfig(node_id="lips", backend="meshwarp", workers=2, lip_sync=lip_sync),
        Limits(),
    )
    await server.start()
    out: dict[str, Any] = {}
    output = AudioOutput.start()
    try:
        handles, (ann, bob) = await open_pages(
            server,
            clip[0],
            ["room=lips&name=ann", f"room=lips&name=bob{query}"],
            clip[1],
            browser_launch_options(output),
        )
        try:
            for page in (ann, bob):
                await page.wait_for_function(
                    "() => window.lpstream.phase === 'in-call'", timeout=30000
                )
            await live_tile(bob, kind)
            await listen_only(bob)
            await asyncio.sleep(3)  # a few stats periods: the voice's wait is known
            name = f"{kind}_{'on' if lip_sync else 'off'}"
            try:
                out = _figures(await measure(ann, bob, seconds, output), name)
            except Exception as exc:  # a page that rejoined mid-measurement: say so, go on
                out = {"error": str(exc)[:300]}
            out["load_average"] = round(os.getloadavg()[0], 1)
        finally:
            await close_pages(handles)
    finally:
        await server.stop()
        if output is not None:
            output.close()
    return out


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "talking.y4m", Path(tmp) / "talking.wav"
        write_clip(shared_dir() / "media" / "d6.mp4", *clip)
        keypoints = {
            "after": await _call(clip, True, "", "canvas", seconds),
            "before": await _call(clip, True, "&lipsync=0", "canvas", seconds),
        }
        print("keypoints", json.dumps(keypoints))
        video = {
            "after": await _call(clip, True, "&downlink=video", "video", seconds),
            "before": await _call(clip, False, "&downlink=video", "video", seconds),
        }
        print("video", json.dumps(video))
    RESULT.write_text(
        json.dumps(
            {
                "what": "sound − mouth per event, ms (positive: the sound after the mouth); "
                "median and 90th percentile of |offset|; EBU R37 target −40 … +60 ms",
                "period_s": PERIOD_S,
                "seconds_per_measurement": seconds,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "keypoints": keypoints,
                "video": video,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    asyncio.run(main(parser.parse_args().seconds))
