"""The voice clock of the keypoint lip sync (web_client/audio_clock.js, playout_sync.js,
voice_hold.js), run in Node.js: a motion frame stamped with its microphone's RTP time at
capture is due when the listener plays the sound of that moment, across the RTP wrap and
with the two ends unwrapping from different cycles; frames on another clock fall back to
arrival times; late motion makes the voice wait longer, in bounded steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.node_js import run_module

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"
CLOCK = (WEB_CLIENT / "audio_clock.js").as_uri()
SYNC = (WEB_CLIENT / "playout_sync.js").as_uri()
HOLD = (WEB_CLIENT / "voice_hold.js").as_uri()


def test_a_frame_is_due_when_the_sound_of_its_capture_plays() -> None:
    rng = np.random.default_rng(5)
    # The speaker's RTP clock starts 3 s before its 2³² wrap; 60 ms packets for 8 s.
    origin = 2**32 - 48 * 3000
    packets = np.arange(0, 8000, 60.0)
    sender_readings = [  # (page ms of capture, RTP) as the sender's transform reports them
        [1000.0 + t + rng.uniform(0, 2), (origin + int(48 * t)) % 2**32] for t in packets
    ]
    # The listener hears RTP time t at listener page time 5000 + t + 250 (trip and jitter
    # buffer), read with a few ms of jitter; it first hears the speaker after the wrap.
    heard_readings = [
        [5250.0 + t + rng.uniform(0, 4), (origin + int(48 * t)) % 2**32]
        for t in packets
        if t > 3500
    ]
    captures = [1000.0 + t for t in np.arange(4000, 7000, 40.0)]
    runner = f"""
import {{ RtpClockFit, ReceiverAudioClock }} from "{CLOCK}";
import {{ readFileSync }} from "node:fs";
const data = JSON.parse(readFileSync(0, "utf8"));
const sender = new RtpClockFit();
const receiver = new ReceiverAudioClock();
receiver.outputMs = 30; // the loudspeaker's own delay
const out = [];
let s = 0, r = 0;
for (const capture of data.captures) {{
  while (s < data.sender.length && data.sender[s][0] <= capture) {{
    sender.add(...data.sender[s]);
    s += 1;
  }}
  const now = capture - 1000 + 5000 + 150; // the frame reaches the listener 150 ms later
  while (r < data.heard.length && data.heard[r][0] <= now) {{
    const [page, rtp] = data.heard[r];
    receiver.read({{ timestamp: page + performance.timeOrigin, rtpTimestamp: rtp }});
    r += 1;
  }}
  const stamp = Math.floor(capture - sender.offsetMs()) % 2 ** 32;
  out.push(receiver.playoutAtMs(stamp, now));
}}
console.log(JSON.stringify(out));
"""
    data = {"sender": sender_readings, "heard": heard_readings, "captures": captures}
    due = np.array(run_module(runner, data))
    expected = np.array(captures) - 1000 + 5250 + 30
    assert np.abs(due - expected).max() < 5, np.abs(due - expected).max()


def test_playout_follows_the_voice_clock_and_falls_back_on_another_clock() -> None:
    runner = f"""
import {{ PlayoutSync }} from "{SYNC}";
const clock = {{ playoutAtMs: (stamp, now) => stamp + 100 }}; // voice time t plays at t + 100
const sync = new PlayoutSync({{ audioDelayMs: () => 50, audioClock: () => clock }});
const shown = [];
// Voice-clock frames every 40 ms arriving 60 ms after their time (40 ms early),
// then three arriving 130 ms after (30 ms late), then frames of a far-off clock.
const frames = [];
for (let i = 0; i < 10; i += 1) frames.push([1000 + 40 * i, 1060 + 40 * i]);
for (let i = 10; i < 13; i += 1) frames.push([1000 + 40 * i, 1130 + 40 * i]);
for (let i = 13; i < 16; i += 1) frames.push([9e6 + 40 * i, 1130 + 40 * i]);
let f = 0;
for (let t = 1000; t < 2500; t += 1) {{
  while (f < frames.length && frames[f][1] <= t) {{ sync.push(f, frames[f][0], t); f += 1; }}
  for (const i of sync.due(t)) shown.push([i, t]);
}}
const late = sync.lateMs(1.0), early = sync.lateMs(0);
console.log(JSON.stringify({{ shown, placed: sync.placed, late, early }}));
"""
    out = run_module(runner, None)
    shown = dict(out["shown"])
    assert sorted(shown) == list(range(16))
    for i in range(10):  # on time: when their sound plays
        assert shown[i] == 1100 + 40 * i, (i, shown[i])
    for i in range(10, 13):  # late: drawn as they arrive, never before
        assert shown[i] == 1130 + 40 * i, (i, shown[i])
    assert out["placed"] == {"voiceClock": 13, "arrival": 3}
    assert out["late"] == 30 and out["early"] == -40
    for i in range(13, 16):  # another clock: arrival + the voice's wait (50 ms), in order
        assert shown[i] >= 1130 + 40 * i + 50 - 1, (i, shown[i])


def test_late_motion_makes_the_voice_wait_longer_in_bounded_steps() -> None:
    runner = f"""
import {{ VoiceHold, MAX_HOLD_MS, MAX_STEP_MS }} from "{HOLD}";
const hold = new VoiceHold();
const targets = [];
let jitter = 40; // the jitter buffer follows the target half-way per reading
let late = 150;  // motion 150 ms behind its sound, less as the voice waits
for (let i = 0; i < 30; i += 1) {{
  const target = hold.update(late, jitter);
  targets.push(target);
  const before = jitter;
  jitter += (Math.max(target, 40) - jitter) / 2;
  late -= jitter - before;
}}
const settled = hold.targetMs;
for (let i = 0; i < 10; i += 1) targets.push(hold.update(-100, jitter)); // far too early now
const huge = new VoiceHold();
for (let i = 0; i < 50; i += 1) huge.update(5000, huge.targetMs);
const nan = new VoiceHold().update(NaN, 40);
const out = {{ targets, settled, max: MAX_HOLD_MS, step: MAX_STEP_MS, huge: huge.targetMs, nan }};
console.log(JSON.stringify(out));
"""
    out = run_module(runner, None)
    targets = out["targets"]
    steps = np.diff([40.0, *targets[:30]])
    assert (steps <= out["step"] + 1e-9).all(), steps
    assert 170 <= out["settled"] <= 205, out["settled"]  # 40 + the 150 ms, less the tolerance
    assert targets[-1] < out["settled"] and (np.diff(targets[30:]) <= 0).all()
    assert out["huge"] == out["max"]
    assert out["nan"] == 0
