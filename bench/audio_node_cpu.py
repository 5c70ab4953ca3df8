"""The node's CPU per forwarded audio stream: a real node in its own process, three aiortc
keypoint pages in this one, each with a microphone (real speech, 60 ms Opus) or without;
the node's process CPU time (/proc) over a steady window, with audio minus without, divided
by the streams forwarded (3 speakers × 2 listeners = 6).

Run: PYTHONPATH=. .venv/bin/python bench/audio_node_cpu.py
Measured (2 cores shared with other work): 0.008 → 0.047 of a core, ≈ 0.65 % of a core per stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._process_cpu import cpu_seconds
from lpstream.node.loopback_audio import OpusMicrophone, load_speech
from lpstream.node.loopback_keypoints import KeypointBrowser
from lpstream.shared_data import shared_dir

SERVER = """
import asyncio, sys
from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from signaling import Limits
async def main():
    config = NodeConfig(node_id="cpu", backend="meshwarp")
    server = CallServer(ServeConfig(port=0), config, Limits())
    await server.start()
    print(server.port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def window(port: int, pid: int, room: str, speech: object, window_s: float) -> float:
    pages = [KeypointBrowser(f"ws://127.0.0.1:{port}/ws", room, f"p{i}") for i in range(3)]
    try:
        for index, page in enumerate(pages):
            mic = OpusMicrophone(speech[48000 * index :]) if speech is not None else None
            await page.join(microphone=mic)
        await asyncio.sleep(3)
        start, wall = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window_s)
        return (cpu_seconds(pid) - start) / (time.monotonic() - wall)
    finally:
        for page in pages:
            await page.close()


async def main() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    node = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, stdout=subprocess.PIPE, env=env
    )
    try:
        assert node.stdout is not None
        port = int(await node.stdout.readline())
        speech = load_speech(shared_dir() / "media" / "d6.mp4")
        silent = await window(port, node.pid, "quiet", None, 15)
        talking = await window(port, node.pid, "talk", speech, 15)
        streams = 6
        print(
            json.dumps(
                {
                    "node_cpu_without_audio": round(silent, 4),
                    "node_cpu_with_audio": round(talking, 4),
                    "streams": streams,
                    "cpu_percent_of_a_core_per_stream": round(
                        100 * (talking - silent) / streams, 3
                    ),
                }
            )
        )
    finally:
        node.terminate()
        await node.wait()


if __name__ == "__main__":
    asyncio.run(main())
