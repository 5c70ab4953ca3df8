"""What one participant's own link carries in a two-person call, per direction, by mode.

A real node (signaling, aiortc, the built-in backend) and two pages on loopback in one room,
each sending a real face video's motion (d0.mp4). Counted at the pages' UDP sockets
(`lpstream.node.wire_meter`: every datagram with its IP + UDP headers, split into STUN, DTLS
— i.e. SCTP data channels and their acknowledgements — RTP and RTCP) over a steady window:
  - `keypoints`: keypoint uplink and downlink (the page extracts and renders; no RTP);
  - `video`: camera uplink and video downlink (VP8 both ways: the LivePortrait topology).
  - `node_link`: the same keypoint call with each page on its own node: what the link
    between the two nodes carries (data channels only: motion, and sound as Opus packets).
Each mode runs once per `--audio` choice of the pages' microphones:
  - `none`: no microphone (motion only);
  - `speech`: both talk all the time (d6.mp4 speech as 16 kbit/s, 60 ms Opus packets, as a
    browser tuned by lpstream/node/opus_sdp.py sends it): the worst case;
  - `dtx`: both silent, as a browser's DTX sends silence: one packet every 400 ms (modelled
    with a 60 ms Opus packet of digital silence, 53 B, more than a comfort-noise update).
The pages here are aiortc peers doing what web_client/ does.

Run: .venv/bin/python bench/user_link.py  → bench/results/user_link.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.node import NodeConfig, wire_meter
from lpstream.node.loopback import FileCamera, LoopbackBrowser, jpeg, load_face_frames
from lpstream.node.loopback_audio import RATE, TIME_BASE, OpusMicrophone, load_speech
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.serve import CallServer, ServeConfig
from lpstream.shared_data import shared_dir
from signaling import Limits

RESULT = Path(__file__).resolve().parent / "results" / "user_link.json"
DTX_INTERVAL_S = 0.4
"""A WebRTC Opus sender in DTX sends one packet per 400 ms of silence."""


class DtxMicrophone(OpusMicrophone):
    """A silent microphone as a DTX encoder sends it: a packet every 400 ms, no stream."""

    async def recv(self) -> av.Packet:  # type: ignore[override]
        self.index += 1
        await asyncio.sleep(max(0.0, self.start + self.index * DTX_INTERVAL_S - time.monotonic()))
        packet = av.Packet(self.silence)
        packet.pts = round(self.index * DTX_INTERVAL_S * RATE)
        packet.time_base = TIME_BASE
        return packet


def microphone(audio: str, speech: np.ndarray, offset_s: int) -> OpusMicrophone | None:
    if audio == "none":
        return None
    if audio == "dtx":
        return DtxMicrophone(speech[: RATE // 2])
    return OpusMicrophone(speech[RATE * offset_s :])


async def drain(track: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            await track.recv()


def kbps(before: wire_meter.Direction, after: wire_meter.Direction, seconds: float) -> dict:
    by_kind = {
        kind: round((after.bytes[kind] - before.bytes[kind]) * 8 / 1000 / seconds, 2)
        for kind in wire_meter.KINDS
    }
    packets = (after.total_packets - before.total_packets) / seconds
    return {
        "kbps": round(sum(by_kind.values()), 2),
        "packets_per_s": round(packets, 1),
        "kbps_by_kind": {k: v for k, v in by_kind.items() if v},
    }


async def measure(
    mode: str, audio: str, frames: list, speech: np.ndarray, warmup_s: float, window_s: float
) -> dict[str, Any]:
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="bench", backend="meshwarp"), Limits()
    )
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/ws"
    if mode == "node_link":
        return await measure_node_link(server, url, audio, frames, speech, warmup_s, window_s)
    pages: list[Any] = []
    drains: list[asyncio.Task[None]] = []
    try:
        if mode == "keypoints":
            motions = extract_motions(frames)
            for index, name in enumerate(("ann", "bob")):
                page = KeypointBrowser(url, "link", name)
                await page.join(motions[index * 7 :], microphone(audio, speech, 3 * index))
                page.upload(jpeg(frames[index * 10][:, 40:280]))
                pages.append(page)
        else:
            for index, name in enumerate(("ann", "bob")):
                page = LoopbackBrowser(url, "link", name)
                await page.join(
                    FileCamera(frames[index * 7 :]), microphone(audio, speech, 3 * index)
                )
                page.upload(jpeg(frames[index * 10][:, 40:280]))
                pages.append(page)
        await asyncio.sleep(warmup_s)
        tracks = [t for p in pages for t in p.audio.values()]
        if mode == "video":
            tracks += [t for p in pages for t in p.tracks.values()]
        drains = [asyncio.create_task(drain(t)) for t in tracks]
        before = [wire_meter.tally(page.pc) for page in pages]
        await asyncio.sleep(window_s)
        after = [wire_meter.tally(page.pc) for page in pages]
        per_page = {
            page.name: {
                "up": kbps(b.sent, a.sent, window_s),
                "down": kbps(b.received, a.received, window_s),
            }
            for page, b, a in zip(pages, before, after, strict=True)
        }
        return {"mode": mode, "audio": audio, "window_s": window_s, "pages": per_page}
    finally:
        for task in drains:
            task.cancel()
        for page in pages:
            await page.close()
        await server.stop()


def extract_motions(frames: list) -> list:
    sender = MeshwarpSender()
    try:
        return [sender.extract(frame, i * 40) for i, frame in enumerate(frames)]
    finally:
        sender.close()


async def measure_node_link(
    server: CallServer,
    url: str,
    audio: str,
    frames: list,
    speech: np.ndarray,
    warmup_s: float,
    window_s: float,
) -> dict[str, Any]:
    other = CallServer(
        ServeConfig(port=0, peer_node=url),
        NodeConfig(node_id="bench-b", backend="meshwarp"),
        Limits(),
    )
    await other.start()
    motions = extract_motions(frames)
    pages = []
    drains: list[asyncio.Task[None]] = []
    try:
        for index, (name, node) in enumerate((("ann", "bench"), ("bob", "bench-b"))):
            page = KeypointBrowser(url, "link", name, node=node)
            await page.join(motions[index * 7 :], microphone(audio, speech, 3 * index))
            page.upload(jpeg(frames[index * 10][:, 40:280]))
            pages.append(page)
        await asyncio.sleep(warmup_s)
        drains = [asyncio.create_task(drain(t)) for p in pages for t in p.audio.values()]
        assert server.node is not None
        link = server.node.links.links["node:bench-b"]
        before = wire_meter.tally(link.pc)
        payload_before = (link.motion_bytes_out.total, link.audio_bytes_out.total)
        await asyncio.sleep(window_s)
        after = wire_meter.tally(link.pc)
        payload = {
            name: round((now - then) * 8 / 1000 / window_s, 2)
            for name, then, now in zip(
                ("motion_kbps", "opus_kbps"),
                payload_before,
                (link.motion_bytes_out.total, link.audio_bytes_out.total),
                strict=True,
            )
        }
        return {
            "mode": "node_link",
            "audio": audio,
            "window_s": window_s,
            "link": {
                "a_to_b": kbps(before.sent, after.sent, window_s),
                "b_to_a": kbps(before.received, after.received, window_s),
                "a_to_b_payload": payload,
            },
        }
    finally:
        for task in drains:
            task.cancel()
        for page in pages:
            await page.close()
        await other.stop()
        await server.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    wire_meter.install()
    frames = load_face_frames(shared_dir() / "media" / "d0.mp4")
    speech = load_speech(shared_dir() / "media" / "d6.mp4")
    load_before = os.getloadavg()
    modes = [
        await measure(mode, audio, frames, speech, args.warmup, args.window)
        for mode in args.modes
        for audio in args.audio
    ]
    return {
        "benchmark": "user_link",
        "machine": {"cpus": os.cpu_count(), "processor": platform.machine()},
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "headers": "IPv4 + UDP (28 B) on every datagram; loopback, so no loss and no retransmits",
        "audio": {
            "none": "no microphone",
            "speech": "both talk all the time: d6.mp4 speech, 16 kbit/s Opus in 60 ms packets",
            "dtx": "both silent as DTX sends it: one 53 B Opus packet of silence per 400 ms",
        },
        "modes": modes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", nargs="+", default=["keypoints", "video", "node_link"])
    parser.add_argument(
        "--audio", nargs="+", choices=["none", "speech", "dtx"], default=["none", "speech", "dtx"]
    )
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
