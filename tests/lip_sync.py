"""Lip sync measured end to end in headless Chromium (tests/test_browser_lip_sync.py,
bench/lip_sync.py): a talking clip whose sound and mouth are in sync by construction, probes
that time mouth openings and sound onsets in a page, and the offsets they give.

The clip: two real frames of d6.mp4, the mouth closed (frame 225) and wide open (229, the
eyes open wider too), looped with period `PERIOD_S`: open for `OPEN_FRAMES` frames at the start
of each period, and the fake microphone's wav has a voice-like buzz of the same length at
exactly the same times. Chromium starts its fake camera and fake microphone separately (the
page asks for them at different moments), so at the sender the two are in step only modulo
the period; the probes therefore time the same events on the sender page too (its preview
and its microphone track) and the offset a call adds is the receiver's minus the sender's,
wrapped to ±PERIOD_S/2.

Sign: **offset = sound time − mouth time**; positive means the sound comes after the mouth
(audio behind), negative the sound first (audio ahead). EBU R37 wants −40 … +60 ms.
"""

from __future__ import annotations

import statistics
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from tests.audio_output import AudioOutput
from tests.chromium import write_y4m

PERIOD_S = 3.2
OPEN_FRAMES = 12
FPS = 25
CLOSED_FRAME, OPEN_FRAME = 225, 229
"""d6.mp4 frames: lip-open ratio 0.03 and 1.06 (MediaPipe, lpstream.face.ratios)."""
AUDIO_RATE = 48000
TARGET_MS = (-40.0, 60.0)


def _d6_frames(d6: Path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(d6)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == CLOSED_FRAME:
                closed = frame.to_ndarray(format="rgb24")
            if index == OPEN_FRAME:
                return closed, frame.to_ndarray(format="rgb24")
    raise ValueError(f"{d6} is shorter than {OPEN_FRAME + 1} frames")


def write_clip(d6: Path, video_out: Path, wav_out: Path, periods: int = 8) -> None:
    """The talking clip: `video_out` (.y4m, 320×240, 25 fps) and `wav_out` (48 kHz mono),
    both exactly `periods` × PERIOD_S long, so the fake devices loop them in step."""
    closed, opened = _d6_frames(d6)
    per_period = round(PERIOD_S * FPS)
    mp4 = video_out.with_suffix(".mp4")
    with av.open(str(mp4), "w") as container:
        stream = container.add_stream("libx264rgb", rate=FPS)
        stream.width, stream.height = closed.shape[1], closed.shape[0]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0"}
        for index in range(per_period * periods):
            rgb = opened if index % per_period < OPEN_FRAMES else closed
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    write_y4m(mp4, video_out, seconds=per_period * periods / FPS)
    mp4.unlink()

    samples = round(PERIOD_S * AUDIO_RATE) * periods
    sound = np.zeros(samples)
    burst = round(OPEN_FRAMES / FPS * AUDIO_RATE)
    t = np.arange(burst) / AUDIO_RATE
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms edges, no click
    buzz = 0.25 * buzz / np.abs(buzz).max() * ramp
    for period in range(periods):
        start = round(period * PERIOD_S * AUDIO_RATE)
        sound[start : start + burst] = buzz
    with wave.open(str(wav_out), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(AUDIO_RATE)
        file.writeframes((sound * 32767).astype("<i2").tobytes())


# Installs window.lipProbe in a page. Mouth: a 24×24 grey thumbnail of the picture at every
# frame it shows — requestVideoFrameCallback for a <video> (the camera frame's capture time
# on the sender, the expected display time of a received one), the animation frame for a
# canvas (where the page draws it). Sound: an AudioWorklet on the audio rendering thread (not
# starved by a busy page) reports the RMS of every 128-sample block with its context time,
# put on performance.now() by getOutputTimestamp (when that block is heard). `which` =
# "sender": the page's preview and microphone; "receiver": its first visible remote tile
# (canvas or video) and that tile's audio.
PROBE = """async (which) => {
  const probe = { mouth: [], sound: [] };
  window.lipProbe = probe;
  const zero = performance.timeOrigin; // times are wall-clock ms, shared by the pages
  // The remote tile that shows someone: a canvas this page renders, or a playing video.
  const down = window.lpstream.kinds.downlink;
  const tile = () => [...document.querySelectorAll('.tile.remote')].find((t) => {
    if (t.hidden) return false;
    const slot = Number(t.dataset.slot);
    if (down.tiles) return [...down.tiles].some(([s, r]) => r.ready && s === slot);
    return t.querySelector('video').videoWidth > 0;
  });
  for (let waited = 0; which === 'receiver' && !tile(); waited += 200) {
    if (waited > 30000) throw new Error('no remote tile shows anyone');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const picture = () => {
    if (which === 'sender') return document.getElementById('preview');
    const t = tile();
    const canvas = t.querySelector('canvas');
    return canvas.hidden ? t.querySelector('video') : canvas;
  };
  let stream;
  if (which === 'sender') {
    const sender = window.lpstream.call.pc.getSenders()
      .find((s) => s.track && s.track.kind === 'audio');
    stream = new MediaStream([sender.track]);
  } else {
    stream = tile().querySelector('audio').srcObject;
  }
  const thumb = document.createElement('canvas');
  thumb.width = thumb.height = 24;
  const context = thumb.getContext('2d', { willReadFrequently: true });
  const sample = (source, at) => {
    context.drawImage(source, 0, 0, 24, 24);
    const rgba = context.getImageData(0, 0, 24, 24).data;
    const grey = new Array(576);
    for (let i = 0; i < 576; i += 1) {
      grey[i] = Math.round((rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3);
    }
    probe.mouth.push([zero + at, grey]);
  };
  const source = picture();
  probe.running = true;
  if (source.tagName === 'VIDEO') {
    const onFrame = (now, meta) => {
      if (!probe.running) return;
      const camera = which === 'sender' && meta.captureTime;
      sample(source, camera ? meta.captureTime : meta.expectedDisplayTime || now);
      source.requestVideoFrameCallback(onFrame);
    };
    source.requestVideoFrameCallback(onFrame);
  } else {
    const onFrame = (now) => {
      if (!probe.running) return;
      sample(source, now);
      requestAnimationFrame(onFrame);
    };
    requestAnimationFrame(onFrame);
  }
  const audio = new AudioContext();
  const code = `registerProcessor('rms', class extends AudioWorkletProcessor {
    process(inputs) {
      const x = inputs[0] && inputs[0][0];
      if (x) { let s = 0; for (let i = 0; i < x.length; i += 1) s += x[i] * x[i];
        this.port.postMessage([currentTime, Math.sqrt(s / x.length)]); }
      return true;
    } });`;
  const module = new Blob([code], { type: 'text/javascript' });
  await audio.audioWorklet.addModule(URL.createObjectURL(module));
  const node = new AudioWorkletNode(audio, 'rms');
  const mute = audio.createGain();
  mute.gain.value = 0;
  audio.createMediaStreamSource(stream).connect(node).connect(mute).connect(audio.destination);
  node.port.onmessage = (event) => {
    const [time, rms] = event.data;
    const stamp = audio.getOutputTimestamp();
    if (!stamp.performanceTime) return;
    probe.sound.push([zero + stamp.performanceTime + (time - stamp.contextTime) * 1000, rms]);
  };
  await audio.resume();
  probe.stop = () => { probe.running = false; audio.close(); };
}"""

COLLECT = """() => { const p = window.lipProbe; const out = { mouth: p.mouth, sound: p.sound };
  // A sender page's encoded microphone frames with their capture times (audio_clock.js).
  const clock = window.lpstream.kinds.uplink.audioClock;
  const first = p.mouth.length ? p.mouth[0][0] : Infinity;
  out.captured = clock ? clock.levels.filter(([at]) => at >= first) : [];
  p.mouth = []; p.sound = []; return out; }"""


def _onsets(times: np.ndarray, values: np.ndarray, open_ms: float | None = None) -> list[float]:
    """When `values` rise through half their range, at most once per half period: the middle
    of the gap between the sample below and the sample above (a busy page samples sparsely).
    With `open_ms` (how long each event lasts at the source), the event's fall narrows that
    gap: the onset is also within the fall's gap minus `open_ms`."""
    if len(values) < 10:
        return []
    low, high = np.percentile(values, 10), np.percentile(values, 99)
    if high - low <= 1e-6:
        return []
    above = values > low + 0.5 * (high - low)
    out: list[float] = []
    for i in range(1, len(values)):
        if not (above[i] and not above[i - 1]):
            continue
        if out and times[i] - out[-1] < PERIOD_S * 500:
            continue
        lo, hi = float(times[i - 1]), float(times[i])
        if open_ms is not None:
            fall = next((j for j in range(i + 1, len(values)) if not above[j]), None)
            if fall is not None:
                lo2, hi2 = times[fall - 1] - open_ms, times[fall] - open_ms
                if max(lo, lo2) < min(hi, hi2):
                    lo, hi = max(lo, lo2), min(hi, hi2)
        out.append((lo + hi) / 2)
    return out


def mouth_onsets(samples: list[Any], open_ms: float | None = None) -> list[float]:
    """Times (ms) the mouth opens: the distance of each thumbnail to the median one (the
    closed mouth, shown 85 % of the time), rising through half its range."""
    if len(samples) < 10:
        return []
    samples = sorted(samples, key=lambda s: s[0])
    times = np.array([s[0] for s in samples], float)
    greys = np.array([s[1] for s in samples], float)
    reference = np.median(greys, axis=0)
    return _onsets(times, np.abs(greys - reference).mean(axis=1), open_ms)


def sound_onsets(samples: list[Any]) -> list[float]:
    if len(samples) < 10:
        return []
    times = np.array([s[0] for s in samples], float)
    return _onsets(times, np.array([s[1] for s in samples], float))


def wrap_ms(value: float) -> float:
    half = PERIOD_S * 500
    return (value + half) % (2 * half) - half


def offsets_ms(sound: list[float], mouth: list[float]) -> list[float]:
    """Per sound onset: sound − the nearest mouth opening (within half a period)."""
    out = []
    for onset in sound:
        if mouth:
            nearest = min(mouth, key=lambda m: abs(onset - m))
            if abs(onset - nearest) <= PERIOD_S * 500:
                out.append(onset - nearest)
    return out


LATENCY_MAX_MS = PERIOD_S * 1000 * 0.8
"""A receiver's onset belongs to the sender's event before it if it is at most this late."""


def _latency(source: float, seen: list[float]) -> float | None:
    later = [t - source for t in seen if 0 < t - source < LATENCY_MAX_MS]
    return min(later) if later else None


@dataclass
class Offsets:
    """One measurement, per event of the clip: how late its sound and its mouth reached the
    receiver (from the sender page's own onsets, on the wall clock both pages share) and the
    call's offset = sound latency − mouth latency (ms; positive: the sound after the mouth).
    Measured per event, a fake camera that falls behind on a loaded machine (it then plays
    its file slower than the microphone) does not count as the call's offset."""

    events_ms: list[float]
    sound_latency_ms: list[float]
    mouth_latency_ms: list[float]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """What the probes saw (sender, receiver), to look into a strange result."""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.events_ms) if self.events_ms else float("nan")

    @property
    def p90_abs_ms(self) -> float:
        return float(np.percentile(np.abs(self.events_ms), 90)) if self.events_ms else float("nan")


def call_offsets(sender: dict[str, list[Any]], receiver: dict[str, list[Any]]) -> Offsets:
    """What the call adds, from the probes of the sender page and the receiver page."""
    open_ms = OPEN_FRAMES / FPS * 1000
    sent_mouth = mouth_onsets(sender["mouth"], open_ms)
    # At the source, both events at their capture times: the camera frame's, and the
    # microphone frame's (from the sender's encoded frames; the page's AudioWorklet hears its
    # own microphone some 60-120 ms after capture). A page without them: the worklet's.
    captured = sender.get("captured") or []
    sent_sound = sound_onsets(captured) if len(captured) >= 10 else sound_onsets(sender["sound"])
    seen_mouth = mouth_onsets(receiver["mouth"])
    seen_sound = sound_onsets(receiver["sound"])
    events, sounds, mouths = [], [], []
    for mouth in sent_mouth:
        # The same event's sound at the sender: the nearest onset (the two fake devices run
        # apart by less than half a period).
        sound = min(sent_sound, key=lambda s: abs(s - mouth), default=None)
        if sound is None or abs(sound - mouth) > PERIOD_S * 500:
            continue
        sound_late, mouth_late = _latency(sound, seen_sound), _latency(mouth, seen_mouth)
        if sound_late is None or mouth_late is None:
            continue
        sounds.append(sound_late)
        mouths.append(mouth_late)
        events.append(sound_late - mouth_late)
    raw = {"sender": sender, "receiver": receiver}
    return Offsets(events, sounds, mouths, raw)


def worklet_offsets(offsets: Offsets) -> Offsets | None:
    """The same events with the receiver's sound as its AudioWorklet heard it, if `measure`
    took the sound from the audio output (else None: the worklet's is the measurement)."""
    seen = offsets.raw["receiver"]
    if "worklet" not in seen:
        return None
    return call_offsets(offsets.raw["sender"], {**seen, "sound": seen["worklet"]})


async def measure(
    sender: Any, receiver: Any, seconds: float, output: AudioOutput | None = None
) -> Offsets:
    """Probe both pages for `seconds` (a fresh probe each time) and return the offsets. With
    `output` (the browser plays into it), the receiver's sound is what left the browser's
    audio output; else the receiving page's AudioWorklet (which hears it later)."""
    import asyncio

    for page in (sender, receiver):  # a page that rejoined has a new call
        await page.wait_for_function(
            "() => window.lpstream.phase === 'in-call' && window.lpstream.call", timeout=60000
        )
    await sender.evaluate(PROBE, "sender")
    await receiver.evaluate(PROBE, "receiver")
    if output is not None:
        output.record()
    await asyncio.sleep(seconds)
    sent = await sender.evaluate(COLLECT)
    seen = await receiver.evaluate(COLLECT)
    if output is not None:
        output.stop_recording()
        seen["worklet"], seen["sound"] = seen["sound"], output.samples
    for page in (sender, receiver):
        await page.evaluate("() => window.lipProbe.stop()")
    return call_offsets(sent, seen)


async def listen_only(receiver: Any) -> None:
    """The receiving page turns its camera off and mutes its microphone: the two pages share
    the 2 cores of this machine, where each person's browser would have its own (with one
    landmarker instead of two the sender extracts at its own pace, not at the loaded
    machine's), and one audio output, where only the sender's voice may play."""
    await receiver.click("#camera-off")
    await receiver.wait_for_function("() => window.lpstream.cameraOff === true", timeout=5000)
    await receiver.click("#mute")
    await receiver.wait_for_function("() => window.lpstream.muted === true", timeout=5000)
