"""The page's lip sync (web_client/playout_sync.js), run in Node.js: the same earliest-arrival
mapping as the node's (lpstream/node/media_clock.py) on the same jittered trip, frames due at
their arrival time plus the voice's wait, the wait read from getStats-shaped figures, and
frames due at once when switched off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lpstream.node.media_clock import ArrivalMapping
from tests.node_js import run_module
from tests.test_media_clock import jittered_trip

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"


MODULE = (WEB_CLIENT / "playout_sync.js").as_uri()


def test_the_page_maps_arrivals_as_the_node_does() -> None:
    frames = jittered_trip(3, 300, start_ms=2**32 - 4000)  # across the 2³² wrap
    runner = f"""
import {{ ArrivalMapping }} from "{MODULE}";
import {{ readFileSync }} from "node:fs";
const mapping = new ArrivalMapping(10000);
const frames = JSON.parse(readFileSync(0, "utf8"));
const out = frames.map(([ts, arrival]) => mapping.add(ts, arrival * 1000));
console.log(JSON.stringify(out));
"""
    js = np.array(run_module(runner, frames)) / 1000
    python = ArrivalMapping(10.0)
    py = np.array([python.add(ts, arrival) for ts, arrival in frames])
    assert np.allclose(js, py, atol=1e-6)
    steps = np.diff(js[100:250])  # within one window: only a new fastest trip moves it
    assert np.isclose(steps, 0.040, atol=1e-6).mean() > 0.95, "jitter gone, spacing kept"
    assert (steps <= 0.040 + 1e-6).all(), "a new fastest trip only makes frames earlier"


def test_frames_are_due_when_their_voice_plays() -> None:
    frames = jittered_trip(4, 200)
    runner = f"""
import {{ AudioPlayoutDelay, PlayoutSync }} from "{MODULE}";
import {{ readFileSync }} from "node:fs";
const frames = JSON.parse(readFileSync(0, "utf8"));
const delay = new AudioPlayoutDelay();
// getStats figures one second apart: 48 000 samples emitted after 9 600 s of waiting in
// all (0.2 s each), and the playout adding 0.03 s a sample.
delay.update({{ jitterBufferDelay: 100, jitterBufferEmittedCount: 480000 }},
  {{ totalPlayoutDelay: 10, totalSamplesCount: 480000 }});
const waited = delay.update({{ jitterBufferDelay: 9700, jitterBufferEmittedCount: 528000 }},
  {{ totalPlayoutDelay: 1450, totalSamplesCount: 528000 }});
const synced = new PlayoutSync({{ audioDelayMs: () => delay.ms }});
const unsynced = new PlayoutSync({{ enabled: false }});
const shown = {{ synced: [], unsynced: [] }};
const events = frames.map(([ts, arrival], i) => ({{ at: arrival * 1000, push: i, ts }}));
for (let t = frames[0][1] * 1000; t < frames[frames.length - 1][1] * 1000 + 1500; t += 5) {{
  while (events.length && events[0].at <= t) {{
    const e = events.shift();
    synced.push(e.push, e.ts, e.at);
    unsynced.push(e.push, e.ts, e.at);
  }}
  for (const i of synced.due(t)) shown.synced.push([i, t]);
  for (const i of unsynced.due(t)) shown.unsynced.push([i, t]);
}}
console.log(JSON.stringify({{ waited, ...shown }}));
"""
    out = run_module(runner, frames)
    assert out["waited"] == pytest.approx(230.0)  # 200 ms jitter buffer + 30 ms playout
    synced = out["synced"]
    assert [i for i, _ in synced] == list(range(len(frames))), "every frame, in order"
    # Each is shown at its sender time + the fastest trip so far + the voice's wait (never
    # before the frame before it, nor before it arrived), within one 5 ms step.
    trips = np.minimum.accumulate([arrival - ts / 1000 for ts, arrival in frames])
    expected = np.maximum.accumulate(
        [(ts / 1000 + trip) * 1000 + 230.0 for (ts, _), trip in zip(frames, trips, strict=True)]
    )
    expected = np.maximum(expected, [arrival * 1000 for _, arrival in frames])
    for i, at in synced:
        assert expected[i] - 1e-6 <= at < expected[i] + 5 + 1e-6, (i, at, expected[i])
    # Switched off, a frame is shown as it arrives: far earlier than its voice.
    assert [i for i, _ in out["unsynced"]] == list(range(len(frames)))
    earlier = [b - a for (_, a), (_, b) in zip(out["unsynced"], synced, strict=True)]
    assert np.median(earlier) > 150 and min(earlier) >= 0
