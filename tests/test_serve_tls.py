"""`serve` over TLS with the generated certificate: https, wss, TURN credentials in the page
config, draining with a notice, and JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.error import HTTPError

import pytest
from cryptography import x509
from websockets.asyncio.client import connect

from lpstream.ice import ice_servers_from_urls
from lpstream.log_format import JsonFormatter
from lpstream.node import NodeConfig
from lpstream.serve import CallServer, ServeConfig
from lpstream.tls import main as cert_main
from signaling import Limits


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("tls")
    assert cert_main(["--out", str(out), "--name", "call.lan.example"]) == 0
    return out / "cert.pem", out / "key.pem"


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[CallServer]:
    cert, key = certificate
    server = CallServer(
        ServeConfig(port=0, tls_cert=cert, tls_key=key),
        NodeConfig(
            node_id="tls",
            backend="meshwarp",
            ice_servers=ice_servers_from_urls(
                ["stun:10.0.0.1:3478", "turn:10.0.0.1:3478"], auth_secret="k", ttl_s=600
            ),
        ),
        Limits(),
    )
    await server.start()
    for _ in range(100):
        if server.health()[0] == "ready":
            break
        await asyncio.sleep(0.05)
    yield server
    await server.stop()


async def get(server: CallServer, path: str, cert: Path) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        url = f"https://localhost:{server.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5, context=client_context(cert)) as answer:
                return answer.status, answer.read().decode()
        except HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(fetch)


def test_certificate_names_this_machine(certificate: tuple[Path, Path]) -> None:
    cert = x509.load_pem_x509_certificate(certificate[0].read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    assert "localhost" in dns and "call.lan.example" in dns
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert (certificate[1].stat().st_mode & 0o077) == 0, "the key is readable by others"


async def test_https_wss_and_minted_turn_credentials(
    tls_server: CallServer, certificate: tuple[Path, Path]
) -> None:
    cert = certificate[0]
    assert tls_server.node_config.signaling_url.startswith("ws://127.0.0.1:")  # internal
    status, body = await get(tls_server, "/", cert)
    assert status == 200 and "app.js" in body
    status, body = await get(tls_server, "/healthz", cert)
    assert status == 200 and json.loads(body)["state"] == "ready"
    first = json.loads((await get(tls_server, "/config.json", cert))[1])["iceServers"]
    second = json.loads((await get(tls_server, "/config.json", cert))[1])["iceServers"]
    assert first[0] == {"urls": ["stun:10.0.0.1:3478"]}
    assert first[1]["urls"] == ["turn:10.0.0.1:3478"]
    assert first[1]["username"].endswith(":" + first[1]["username"].split(":", 1)[1])
    assert first[1]["username"] != second[1]["username"], "one username per page"
    # plain http on the TLS port is refused; the internal path serves only /ws, on loopback
    with pytest.raises(OSError):
        await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{tls_server.port}/healthz", timeout=5
        )
    async with connect(
        f"wss://localhost:{tls_server.port}/ws",
        ssl=client_context(cert),
        origin=f"https://localhost:{tls_server.port}",
    ) as ws:
        await ws.send(json.dumps({"type": "join", "room": "r", "name": "a"}))
        joined = json.loads(await ws.recv())
        assert joined["type"] == "joined" and joined["node"] == "node:tls"


async def test_drain_tells_browsers_and_health_says_draining(
    tls_server: CallServer, certificate: tuple[Path, Path]
) -> None:
    cert = certificate[0]
    url = f"wss://localhost:{tls_server.port}/ws"
    async with connect(url, ssl=client_context(cert)) as ws:
        await ws.send(json.dumps({"type": "join", "room": "r", "name": "a"}))
        assert json.loads(await ws.recv())["type"] == "joined"
        drain = asyncio.create_task(tls_server.drain(5.0))
        messages = [json.loads(await ws.recv()) for _ in range(2)]
        notice = next(m for m in messages if m["type"] == "notice")
        assert notice["code"] == "draining" and notice["seconds"] == 5.0
        status, body = await get(tls_server, "/healthz", cert)
        assert status == 503 and json.loads(body)["state"] == "draining"
        async with connect(url, ssl=client_context(cert)) as late:
            await late.send(json.dumps({"type": "join", "room": "r2", "name": "b"}))
            assert json.loads(await late.recv())["code"] == "draining"
        assert not drain.done(), "a call still in progress is given its time"
        await ws.send(json.dumps({"type": "leave"}))
        await asyncio.wait_for(drain, 3.0)  # the last participant left: drained early


def test_json_log_lines_carry_room_and_participant() -> None:
    record = logging.LogRecord("signaling", logging.INFO, __file__, 1, "p1 joined %s", ("r",), None)
    record.event, record.room, record.participant = "join", "r", "p1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "p1 joined r" and entry["level"] == "info"
    assert (entry["event"], entry["room"], entry["participant"]) == ("join", "r", "p1")


async def test_sigterm_drains_with_a_notice_then_exits_0(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lpstream.serve", "--port", "0", "--backend", "meshwarp",
        "--tls-cert", str(cert), "--tls-key", str(key), "--drain-seconds", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = ""
        while "Ctrl-C" not in banner:
            banner = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert banner, "serve exited early"
        assert banner.split()[3].startswith("https://127.0.0.1:")
        port = int(banner.split()[3].split(":")[2].split("/")[0])
        url = f"wss://localhost:{port}/ws"
        for _ in range(100):
            async with connect(url, ssl=client_context(cert)) as ws:
                await ws.send(json.dumps({"type": "join", "room": "r", "name": "a"}))
                if json.loads(await ws.recv())["type"] != "joined":
                    await asyncio.sleep(0.1)  # the node has not registered yet
                    continue
                process.send_signal(signal.SIGTERM)
                while (message := json.loads(await ws.recv()))["type"] != "notice":
                    pass
                assert message["code"] == "draining" and message["seconds"] == 20
                await ws.send(json.dumps({"type": "leave"}))  # the last call ends: exit early
                break
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
