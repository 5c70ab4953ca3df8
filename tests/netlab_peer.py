"""Two pages of one call, run inside the lab's client namespace (`tests/netlab.py`), and the
figures of what they showed.

`python -m tests.netlab_peer MODE WS_URL --window S` joins `ann` and `bob` to one room on the
node across the impaired link (both pages on the client side: every packet crosses the link
twice, up to the node and down again; with `--far-ns NS` bob joins from NS, the node's side,
so the link is ann's own and each stream crosses it once), prints `steady` once both show
the other's avatar (or after a timeout), waits `SETTLE_S` (the lab impairs the link from
`steady` on), records for `S` seconds and prints one JSON line of raw events. Both pages
share this process's clock, CLOCK_MONOTONIC, which is also the forwarder's.

- `keypoints`: KeypointBrowser pages playing d0.mp4's meshwarp motion. A frame is *shown*
  when the decoder says DECODED; each shown motion is compared with the motion the other
  page sent at that timestamp (known: timestamps are index × 40 ms), in quantiser steps of
  the LANDMARKS profile, and its latency is the decode time minus the sender's send time.
Both pages also talk all the time (d6.mp4's speech as 60 ms Opus packets, no DTX, so any
hole in what arrives is the network's): each page records when the other's voice arrives as
decoded audio, and how much of it.

- `camera`: LoopbackBrowser pages with FileCamera (VP8 up, the node renders, VP8 down). A
  frame is *shown* when the avatar track delivers a non-placeholder frame that differs from
  the previous one. No latency (the rendered frame carries no capture time) and no
  corruption check (VP8 does not say which frame it decoded from which).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection

from lpstream.backend import SenderOutput
from lpstream.motion import Motion
from lpstream.node.framing import unframe_packet
from lpstream.node.loopback import FileCamera, LoopbackBrowser, jpeg, load_face_frames
from lpstream.node.loopback_audio import FRAME_MS, OpusMicrophone, load_speech
from lpstream.node.loopback_keypoints import FPS, KeypointBrowser
from lpstream.protocol import LANDMARKS, DecodeStatus
from lpstream.protocol import motion_fields as mf
from lpstream.shared_data import shared_dir
from tests.netlab import sockets_in

SETTLE_S = 1.0
"""Between `steady` and the measured window: the link's impairment takes hold."""
OFFSET = 7
"""bob plays the clip from this frame on, so the two streams differ."""
TOLERANCE_STEPS = LANDMARKS.dead_zone + 0.05
"""Keyframes round (½ step), deltas hold within the dead zone: no shown field is further."""


def error_steps(sent: Motion, shown: Motion) -> float:
    """The largest difference of any field, in that field's quantiser steps."""
    a, b = mf.motion_to_units(sent), mf.motion_to_units(shown)
    scale = max(1, b.values[mf.SCALE])
    worst = 0.0
    for index in range(mf.NUM_CORE):
        worst = max(worst, abs(a.values[index] - b.values[index]) / LANDMARKS.step(index, scale))
    return worst


@dataclass
class Heard:
    """When the other page's voice arrived (its RTP packets at this page's receiver, before
    aiortc's jitter buffer, which is not a browser's and would count its own stalls), and how
    much sound that is: distinct RTP timestamps × the speaker's 60 ms packet time."""

    arrivals: list[float] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)

    async def listen(self, page: Any) -> None:
        for _ in range(600):  # tile 0's voice (the other page) arrives with the answer
            if 0 in page.audio:
                break
            await asyncio.sleep(0.05)
        track = page.audio[0]
        receiver = next(t.receiver for t in page.pc.getTransceivers() if t.receiver.track is track)
        handle = receiver._handle_rtp_packet

        async def counting(packet: Any, arrival_time_ms: int) -> None:
            if packet.payload:
                self.arrivals.append(time.monotonic())
                self.timestamps.append(packet.timestamp)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = counting
        with contextlib.suppress(Exception):
            while True:  # drained, as a page plays it
                await track.recv()

    def within(self, start: float) -> dict[str, Any]:
        kept = [(t, ts) for t, ts in zip(self.arrivals, self.timestamps, strict=True) if t >= start]
        heard = len({ts for _, ts in kept}) * FRAME_MS / 1000
        return {"audio_at": [t for t, _ in kept], "audio_s": heard}


def peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no public STUN from the lab


@dataclass
class MeasuredPage(KeypointBrowser):
    """A keypoint page that times and checks every frame it shows."""

    other: MeasuredPage | None = None
    order: list[Motion] = field(default_factory=list)
    send_start: float = 0.0
    shown: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)

    async def _send_motion(self, motions: Any) -> None:
        self.order = [m.motion for m in [*motions, *reversed(motions)]]
        self.send_start = asyncio.get_running_loop().time()
        await super()._send_motion(motions)

    def _on_motion(self, message: bytes) -> None:
        super()._on_motion(message)
        source_id, _ = unframe_packet(message)
        decoder = self.seen[source_id].decoder
        if decoder.last_status is not DecodeStatus.DECODED or self.other is None:
            return
        now = time.monotonic()
        assert decoder.last_timestamp_ms is not None and decoder.last_motion is not None
        index = round(decoder.last_timestamp_ms * FPS / 1000)
        sent = self.other.order[index % len(self.other.order)]
        self.shown.append(now)
        self.latency_ms.append((now - (self.other.send_start + index / FPS)) * 1000)
        self.errors.append(error_steps(sent, decoder.last_motion))


def joining_from(index: int, far_ns: str | None) -> contextlib.AbstractContextManager[None]:
    """Page `index` 1 joins from `far_ns` (beside the node, off the impaired link) if given."""
    return sockets_in(far_ns) if far_ns and index == 1 else contextlib.nullcontext()


async def keypoints(
    url: str,
    window_s: float,
    frames: list[np.ndarray],
    speech: np.ndarray,
    far_ns: str | None = None,
) -> dict[str, Any]:
    from lpstream.meshwarp.sender import MeshwarpSender

    sender = MeshwarpSender()
    motions: list[SenderOutput] = [sender.extract(f, i * 40) for i, f in enumerate(frames)]
    sender.close()
    pages = [MeasuredPage(url, "lab", name, pc=peer_connection()) for name in ("ann", "bob")]
    pages[0].other, pages[1].other = pages[1], pages[0]
    heard = {p.name: Heard() for p in pages}
    listeners: list[asyncio.Task[None]] = []
    try:
        for index, page in enumerate(pages):
            with joining_from(index, far_ns):
                await page.join(motions[index * OFFSET :], OpusMicrophone(speech))
            page.upload(jpeg(frames[index * 10][:, 40:280]))
        listeners = [asyncio.create_task(heard[p.name].listen(p)) for p in pages]
        await steady(lambda: all(len(p.shown) >= 10 and heard[p.name].arrivals for p in pages))
        start = time.monotonic()
        await asyncio.sleep(window_s)
        end = time.monotonic()
        return {
            "mode": "keypoints",
            "window": [start, end],
            "pages": {
                p.name: {
                    "shown": [t for t in p.shown if t >= start],
                    "latency_ms": [
                        lat for t, lat in zip(p.shown, p.latency_ms, strict=True) if t >= start
                    ],
                    "error_steps": [
                        e for t, e in zip(p.shown, p.errors, strict=True) if t >= start
                    ],
                    "statuses": {
                        s.name: sum(x.statuses.count(s) for x in p.seen.values())
                        for s in DecodeStatus
                    },
                    **heard[p.name].within(start),
                }
                for p in pages
            },
        }
    finally:
        for task in listeners:
            task.cancel()
        for page in pages:
            await page.close()


async def camera(
    url: str,
    window_s: float,
    frames: list[np.ndarray],
    speech: np.ndarray,
    far_ns: str | None = None,
) -> dict[str, Any]:
    from lpstream.node.avatar_track import placeholder_frame

    placeholder = placeholder_frame().astype(np.int16)
    pages = [LoopbackBrowser(url, "lab", name, pc=peer_connection()) for name in ("ann", "bob")]
    shown: dict[str, list[float]] = {p.name: [] for p in pages}

    async def watch(page: LoopbackBrowser) -> None:
        track = page.tracks[0]  # there since join: the answer's first receive slot
        previous: np.ndarray | None = None
        with contextlib.suppress(Exception):
            while True:
                frame = (await track.recv()).to_ndarray(format="rgb24").astype(np.int16)
                if frame.shape == placeholder.shape and np.abs(frame - placeholder).mean() < 8:
                    continue
                if previous is None or np.abs(frame - previous).mean() > 0.3:
                    shown[page.name].append(time.monotonic())
                previous = frame

    heard = {p.name: Heard() for p in pages}
    watchers: list[asyncio.Task[None]] = []
    try:
        for index, page in enumerate(pages):
            with joining_from(index, far_ns):
                await page.join(FileCamera(frames[index * OFFSET :]), OpusMicrophone(speech))
            page.upload(jpeg(frames[index * 10][:, 40:280]))
        watchers = [asyncio.create_task(watch(p)) for p in pages]
        watchers += [asyncio.create_task(heard[p.name].listen(p)) for p in pages]
        await steady(lambda: all(len(s) >= 10 and heard[n].arrivals for n, s in shown.items()))
        start = time.monotonic()
        await asyncio.sleep(window_s)
        end = time.monotonic()
        return {
            "mode": "camera",
            "window": [start, end],
            "pages": {
                name: {"shown": [t for t in s if t >= start], **heard[name].within(start)}
                for name, s in shown.items()
            },
        }
    finally:
        for task in watchers:
            task.cancel()
        for page in pages:
            await page.close()


async def steady(predicate: Any, limit_s: float = 25) -> None:
    for _ in range(round(limit_s / 0.05)):
        if predicate():
            break
        await asyncio.sleep(0.05)
    print(f"steady {predicate()}", flush=True)
    await asyncio.sleep(SETTLE_S)  # the lab starts impairing on `steady`


def figures(report: dict[str, Any], blackouts: list[tuple[float, float]]) -> dict[str, Any]:
    """Per page and the worse of the two: frames shown per second, longest freeze, latency,
    recovery after the last blackout, corrupted frames (keypoints only)."""
    start, end = report["window"]
    pages = {}
    for name, page in report["pages"].items():
        times = [start, *page["shown"], end]
        gaps = np.diff(times)
        entry: dict[str, Any] = {
            "fps": round(len(page["shown"]) / (end - start), 2),
            "longest_freeze_s": round(float(gaps.max()), 3),
        }
        if "audio_at" in page:
            heard_at = [start, *page["audio_at"], end]
            entry["audio_s_per_s"] = round(page["audio_s"] / (end - start), 3)
            entry["audio_longest_gap_s"] = round(float(np.diff(heard_at).max()), 3)
        if blackouts:
            _, black_end = blackouts[-1]
            after = [t for t in page["shown"] if t >= black_end]
            entry["recovery_s"] = round(after[0] - black_end, 3) if after else None
        if "latency_ms" in page:
            latency = page["latency_ms"]
            entry["latency_ms_p50"] = round(float(np.median(latency)), 1) if latency else None
            entry["latency_ms_p95"] = (
                round(float(np.percentile(latency, 95)), 1) if latency else None
            )
            errors = page["error_steps"]
            entry["max_error_steps"] = round(max(errors), 3) if errors else None
            entry["corrupted"] = sum(e > TOLERANCE_STEPS for e in errors)
            entry["statuses"] = page["statuses"]
        pages[name] = entry
    worst: dict[str, Any] = {
        "fps": min(p["fps"] for p in pages.values()),
        "longest_freeze_s": max(p["longest_freeze_s"] for p in pages.values()),
    }
    if all("audio_s_per_s" in p for p in pages.values()):
        worst["audio_s_per_s"] = min(p["audio_s_per_s"] for p in pages.values())
        worst["audio_longest_gap_s"] = max(p["audio_longest_gap_s"] for p in pages.values())
    if blackouts:
        recoveries = [p["recovery_s"] for p in pages.values()]
        worst["recovery_s"] = None if None in recoveries else max(recoveries)
    if report["mode"] == "keypoints":
        for key in ("latency_ms_p50", "latency_ms_p95", "max_error_steps"):
            values = [p[key] for p in pages.values() if p[key] is not None]
            worst[key] = max(values) if values else None
        worst["corrupted"] = sum(p["corrupted"] for p in pages.values())
    return {"worst": worst, "pages": pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["keypoints", "camera"])
    parser.add_argument("url")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument(
        "--far-ns", help="the second page joins from this namespace (beside the node)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    frames = load_face_frames(shared_dir() / "media" / "d0.mp4")
    speech = load_speech(shared_dir() / "media" / "d6.mp4", 8.0)
    run = keypoints if args.mode == "keypoints" else camera
    report = asyncio.run(run(args.url, args.window, frames, speech, args.far_ns))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
