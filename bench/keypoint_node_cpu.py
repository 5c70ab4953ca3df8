"""The node's own CPU per participant when it only relays motion (keypoint mode).

The node runs alone in a child process (`python -m lpstream.serve`, built-in backend); N
keypoint pages (aiortc peers doing what web_client/ does in keypoint mode, real motion of a
real face video at 25 fps) join rooms of two from this process. Over a steady window it
reads the node process's CPU time from /proc (user + system) and the motion frames each
page actually decoded per second, so the figure is per participant *at the rate reached*.

Run: .venv/bin/python bench/keypoint_node_cpu.py [--participants 20]
  → bench/results/keypoint_node_cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._process_cpu import cpu_seconds
from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.node.loopback import jpeg, load_face_frames
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.protocol import DecodeStatus
from lpstream.shared_data import shared_dir

RESULT = Path(__file__).resolve().parent / "results" / "keypoint_node_cpu.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(port: int, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the node did not become healthy")


def decoded(page: KeypointBrowser) -> int:
    return sum(s.statuses.count(DecodeStatus.DECODED) for s in page.seen.values())


def start_node(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lpstream.serve",
            "--port",
            str(port),
            "--backend",
            "meshwarp",
            "--max-rooms",
            "64",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    node = start_node(port)
    pages: list[KeypointBrowser] = []
    try:
        await asyncio.to_thread(wait_healthy, port)
        frames = load_face_frames(shared_dir() / "media" / "d0.mp4")
        sender = MeshwarpSender()
        motions = [sender.extract(frame, i * 40) for i, frame in enumerate(frames)]
        sender.close()
        url = f"ws://127.0.0.1:{port}/ws"
        for index in range(args.participants):
            page = KeypointBrowser(url, f"room{index // 2}", f"p{index}")
            await page.join(motions[(index * 7) % 20 :])
            page.upload(jpeg(frames[index % len(frames)][:, 40:280]))
            pages.append(page)
        await asyncio.sleep(args.warmup)
        decoded_before = [decoded(page) for page in pages]
        cpu_before, wall_before = cpu_seconds(node.pid), time.monotonic()
        await asyncio.sleep(args.window)
        wall = time.monotonic() - wall_before
        cores = (cpu_seconds(node.pid) - cpu_before) / wall
        rates = [(decoded(p) - b) / wall for p, b in zip(pages, decoded_before, strict=True)]
        per_participant = cores / args.participants
        median_rate = sorted(rates)[len(rates) // 2]
        return {
            "benchmark": "keypoint_node_cpu",
            "machine": {"cpus": os.cpu_count(), "processor": platform.machine()},
            "participants": args.participants,
            "window_s": args.window,
            "node_cpu_cores": round(cores, 3),
            "node_cpu_percent_of_a_core_per_participant": round(100 * per_participant, 2),
            "decoded_fps_per_page_min": round(min(rates), 1),
            "decoded_fps_per_page_median": round(median_rate, 1),
            "node_cpu_percent_per_participant_at_25_fps": round(
                100 * per_participant * 25 / max(median_rate, 1e-9), 2
            ),
            "target_percent": 2.0,
            "note": "the pages run in one Python process beside the node; when that process is "
            "saturated the pages send fewer frames, so the per-25-fps figure scales by the "
            "decoded rate reached",
        }
    finally:
        for page in pages:
            await page.close()
        node.terminate()
        try:
            await asyncio.to_thread(node.wait, 10)
        except subprocess.TimeoutExpired:
            node.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
