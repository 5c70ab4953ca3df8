"""Helpers that `tests/test_turn.py` runs inside network namespaces (`ip netns exec`).

`python -m tests.turn_peer proxy LISTEN_HOST PORT TARGET_HOST` forwards TCP (the page and the
signaling websocket, like a reverse proxy) and nothing else: no UDP path exists between the
namespaces, so media can only go through TURN.

`python -m tests.turn_peer browser BASE_URL` acts as the web client: reads `/config.json`
(minted TURN credentials), joins a room with a LoopbackBrowser, waits for the node's `hello`
on the control channel, and prints the selected ICE candidate pair as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from lpstream.node.loopback import FileCamera, LoopbackBrowser


async def proxy(listen: str, port: int, target: str) -> None:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, listen, port)
    print("proxy ready", flush=True)
    async with server:
        await server.serve_forever()


def fetch_config(base: str, limit_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                if json.loads(answer.read())["state"] == "ready":
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)
    with urllib.request.urlopen(f"{base}/config.json", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def selected_pair(pc: RTCPeerConnection) -> dict[str, str]:
    """The nominated pair of the (bundled) ICE transport, as aioice reports it."""
    connection = pc.sctp.transport.transport._connection  # aiortc → aioice.Connection
    pair = next(iter(connection._nominated.values()))
    return {
        "local_type": pair.local_candidate.type,
        "local": f"{pair.local_candidate.host}:{pair.local_candidate.port}",
        "remote_type": pair.remote_candidate.type,
        "remote": f"{pair.remote_candidate.host}:{pair.remote_candidate.port}",
    }


async def browser(base: str) -> None:
    config = await asyncio.to_thread(fetch_config, base)
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in config["iceServers"]
    ]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    ws_url = base.replace("http", "ws", 1) + "/ws"
    peer = LoopbackBrowser(ws_url, "turn-room", "alice", pc=pc)
    frames = [np.full((240, 320, 3), 40 + i, np.uint8) for i in range(10)]
    try:
        await peer.join(FileCamera(frames))
        hello = await peer.wait_message("hello", 30)
        report = {
            "ice_servers": config["iceServers"],
            "hello": hello["type"],
            "pair": selected_pair(pc),
            "local_candidates": [
                c.type for c in pc.sctp.transport.transport.iceGatherer.getLocalCandidates()
            ],
        }
        print(json.dumps(report), flush=True)
    finally:
        await peer.close()


def main() -> None:
    if sys.argv[1] == "proxy":
        asyncio.run(proxy(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        asyncio.run(browser(sys.argv[2]))


if __name__ == "__main__":
    main()
