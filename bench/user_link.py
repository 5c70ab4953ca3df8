"""What one participant's own link carries in a two-person call, per direction, by mode.

A real node (signaling, aiortc, the built-in backend) and two pages on loopback in one room,
each sending a real face video's motion (d0.mp4). Counted at the pages' UDP sockets
(`lpstream.node.wire_meter`: every datagram with its IP + UDP headers, split into STUN, DTLS
— i.e. SCTP data channels and their acknowledgements — RTP and RTCP) over a steady window:
  - `keypoints`: keypoint uplink and downlink (the page extracts and renders; no RTP);
  - `video`: camera uplink and video downlink (VP8 both ways: the LivePortrait topology).
  - `node_link`: the same keypoint call with each page on its own node: what the link
    between the two nodes carries (data channels only).
The pages here are aiortc peers doing what web_client/ does; no audio yet.

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
from pathlib import Path
from typing import Any

from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.node import NodeConfig, wire_meter
from lpstream.node.loopback import FileCamera, LoopbackBrowser, jpeg, load_face_frames
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.serve import CallServer, ServeConfig
from lpstream.shared_data import shared_dir
from signaling import Limits

RESULT = Path(__file__).resolve().parent / "results" / "user_link.json"


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


async def measure(mode: str, frames: list, warmup_s: float, window_s: float) -> dict[str, Any]:
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="bench", backend="meshwarp"), Limits()
    )
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/ws"
    if mode == "node_link":
        return await measure_node_link(server, url, frames, warmup_s, window_s)
    pages: list[Any] = []
    drains: list[asyncio.Task[None]] = []
    try:
        if mode == "keypoints":
            sender = MeshwarpSender()
            motions = [sender.extract(frame, i * 40) for i, frame in enumerate(frames)]
            sender.close()
            for index, name in enumerate(("ann", "bob")):
                page = KeypointBrowser(url, "link", name)
                await page.join(motions[index * 7 :])
                page.upload(jpeg(frames[index * 10][:, 40:280]))
                pages.append(page)
        else:
            for index, name in enumerate(("ann", "bob")):
                page = LoopbackBrowser(url, "link", name)
                await page.join(FileCamera(frames[index * 7 :]))
                page.upload(jpeg(frames[index * 10][:, 40:280]))
                pages.append(page)
        await asyncio.sleep(warmup_s)
        if mode == "video":
            drains = [asyncio.create_task(drain(t)) for p in pages for t in p.tracks.values()]
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
        return {"mode": mode, "window_s": window_s, "pages": per_page}
    finally:
        for task in drains:
            task.cancel()
        for page in pages:
            await page.close()
        await server.stop()


async def measure_node_link(
    server: CallServer, url: str, frames: list, warmup_s: float, window_s: float
) -> dict[str, Any]:
    other = CallServer(
        ServeConfig(port=0, peer_node=url),
        NodeConfig(node_id="bench-b", backend="meshwarp"),
        Limits(),
    )
    await other.start()
    sender = MeshwarpSender()
    motions = [sender.extract(frame, i * 40) for i, frame in enumerate(frames)]
    sender.close()
    pages = []
    try:
        for index, (name, node) in enumerate((("ann", "bench"), ("bob", "bench-b"))):
            page = KeypointBrowser(url, "link", name, node=node)
            await page.join(motions[index * 7 :])
            page.upload(jpeg(frames[index * 10][:, 40:280]))
            pages.append(page)
        await asyncio.sleep(warmup_s)
        assert server.node is not None
        link = server.node.links.links["node:bench-b"]
        before = wire_meter.tally(link.pc)
        await asyncio.sleep(window_s)
        after = wire_meter.tally(link.pc)
        return {
            "mode": "node_link",
            "window_s": window_s,
            "link": {
                "a_to_b": kbps(before.sent, after.sent, window_s),
                "b_to_a": kbps(before.received, after.received, window_s),
            },
        }
    finally:
        for page in pages:
            await page.close()
        await other.stop()
        await server.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    wire_meter.install()
    frames = load_face_frames(shared_dir() / "media" / "d0.mp4")
    modes = [await measure(mode, frames, args.warmup, args.window) for mode in args.modes]
    return {
        "benchmark": "user_link",
        "machine": {"cpus": os.cpu_count(), "processor": platform.machine()},
        "headers": "IPv4 + UDP (28 B) on every datagram; loopback, so no loss and no retransmits",
        "modes": modes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", nargs="+", default=["keypoints", "video", "node_link"])
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
