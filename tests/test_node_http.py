"""`lpstream.serve` over real HTTP/websocket on loopback: files, config, health, metrics, CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from urllib.error import HTTPError

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig, main
from signaling import Limits, make_token


@pytest.fixture
async def served() -> AsyncIterator[CallServer]:
    server = CallServer(
        ServeConfig(port=0, token_secret="s3"),
        NodeConfig(node_id="web", backend="meshwarp"),
        Limits(),
    )
    await server.start()
    yield server
    await server.stop()


async def get(server: CallServer, path: str) -> tuple[int, str, str]:
    def fetch() -> tuple[int, str, str]:
        url = f"http://127.0.0.1:{server.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read().decode()

    return await asyncio.to_thread(fetch)


async def test_http_routes(served: CallServer) -> None:
    status, kind, body = await get(served, "/")
    assert status == 200 and kind.startswith("text/html") and "app.js" in body
    status, kind, body = await get(served, "/app.js")
    assert status == 200 and kind.startswith("text/javascript") and "autojoin" in body
    assert (await get(served, "/../pyproject.toml"))[0] == 404
    assert (await get(served, "/%2e%2e/pyproject.toml"))[0] == 404
    assert (await get(served, "/nope.js"))[0] == 404

    status, _, body = await get(served, "/config.json")
    config = json.loads(body)
    assert status == 200 and config["node"] == "web" and config["tokens"] is True
    status, _, body = await get(served, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] is True and health["nodes"] == 1
    status, kind, body = await get(served, "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    assert "# TYPE lpstream_sessions gauge\nlpstream_sessions 0" in body
    assert "lpstream_signaling_nodes 1" in body


async def test_tokens_and_origin_on_the_served_websocket(served: CallServer) -> None:
    url = f"ws://127.0.0.1:{served.port}/ws"
    with pytest.raises(InvalidStatus):
        await connect(url, origin="https://elsewhere.example")
    async with connect(url, origin=f"http://127.0.0.1:{served.port}") as ws:
        await ws.send(json.dumps({"type": "join", "room": "r", "name": "a"}))
        assert json.loads(await ws.recv())["code"] == "bad-token"
    async with connect(url) as ws:
        token = make_token("s3", "r")
        await ws.send(json.dumps({"type": "join", "room": "r", "name": "a", "token": token}))
        joined = json.loads(await ws.recv())
        assert joined["type"] == "joined" and joined["node"] == "node:web"


def test_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--max-participants", "9"]) == 2
    assert "2, 3 or 4" in capsys.readouterr().err
    assert main(["--print-token", "r"]) == 2
    assert main(["--print-token", "r", "--token-secret", "k"]) == 0
    assert capsys.readouterr().out.strip().count(".") == 1


def test_serve_starts_and_stops_cleanly_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "lpstream.serve", "--port", "0", "--backend", "meshwarp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        banner = ""
        assert process.stdout is not None
        while "Ctrl-C" not in banner and time.monotonic() < deadline:
            banner = process.stdout.readline()
            assert banner or process.poll() is None, "server exited early"
        assert "?room=demo&name=alice&autojoin=1" in banner
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
