"""A call through Debian's coturn, in network namespaces where client and node cannot reach
each other: ICE succeeds only over TURN relay candidates, with credentials minted from
coturn's `static-auth-secret` (TURN REST), for the page and for the node.

    client ns                 relay ns (coturn, TCP proxy)               node ns
    10.77.1.2 ── veth ── 10.77.1.1 | 10.77.0.1 (lo) | 10.77.2.1 ── veth ── 10.77.2.2
    route to 10.77.0.1 only         no IP forwarding                     route to 10.77.0.1 only

The relay namespace forwards nothing; the page and the signaling websocket reach the node
through a TCP proxy there (as a reverse proxy would), media only through coturn.
Needs root, `ip netns` and `turnserver` (`scripts/ensure_test_tools.sh` installs coturn).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
RELAY_IP = "10.77.0.1"
NODE_IP = "10.77.2.2"
PORT = 8080


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@dataclass
class Namespaces:
    client: str
    relay: str
    node: str


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if os.geteuid() != 0:
        pytest.skip("the TURN test creates network namespaces: run as root (CI does)")
    if shutil.which("ip") is None or shutil.which("turnserver") is None:
        pytest.skip("needs `ip` (iproute2) and `turnserver` (coturn): scripts/ensure_test_tools.sh")
    tag = f"{os.getpid() % 100000}"
    names = Namespaces(f"lpt{tag}c", f"lpt{tag}r", f"lpt{tag}n")
    created: list[str] = []
    try:
        for name in (names.client, names.relay, names.node):
            sh("ip", "netns", "add", name)
            created.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", names.relay, "addr", "add", f"{RELAY_IP}/32", "dev", "lo")
        for side, subnet in ((names.client, 1), (names.node, 2)):
            outer, inner = f"{side}o", f"{side}i"  # both ends born in the relay namespace
            sh("ip", "-n", names.relay, "link", "add", outer, "type", "veth", "peer", inner)
            sh("ip", "-n", names.relay, "link", "set", inner, "netns", side)
            sh("ip", "-n", names.relay, "addr", "add", f"10.77.{subnet}.1/24", "dev", outer)
            sh("ip", "-n", names.relay, "link", "set", outer, "up")
            sh("ip", "-n", side, "addr", "add", f"10.77.{subnet}.2/24", "dev", inner)
            sh("ip", "-n", side, "link", "set", inner, "up")
            sh("ip", "-n", side, "route", "add", f"{RELAY_IP}/32", "via", f"10.77.{subnet}.1")
        sh("ip", "netns", "exec", names.relay, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        for name in created:
            subprocess.run(["ip", "netns", "delete", name], check=False)
        stderr = getattr(error, "stderr", b"") or b""
        pytest.skip(f"cannot create network namespaces here: {stderr.decode().strip()}")
    try:
        yield names
    finally:
        for name in created:  # deleting a namespace deletes its veth ends too
            subprocess.run(["ip", "netns", "delete", name], check=False)


def start(namespace: str, *command: str | Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        ["ip", "netns", "exec", namespace, *map(str, command)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_for(log: Path, text: str, process: subprocess.Popen[bytes], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"exited early:\n{log.read_text(errors='replace')[-2000:]}"
        assert time.monotonic() < deadline, f"no {text!r}:\n{log.read_text()[-2000:]}"
        time.sleep(0.2)


def test_call_connects_through_the_turn_relay(namespaces: Namespaces, tmp_path: Path) -> None:
    secret = secrets.token_hex(16)
    processes: list[subprocess.Popen[bytes]] = []
    logs = {name: tmp_path / f"{name}.log" for name in ("turn", "proxy", "node", "client")}
    try:
        turn = start(
            namespaces.relay,
            "turnserver", "-n", "--listening-ip", RELAY_IP, "--relay-ip", RELAY_IP,
            "--listening-port", "3478", "--use-auth-secret", "--static-auth-secret", secret,
            "--realm", "lpstream.test", "--no-tls", "--no-dtls", "--no-cli",
            "--min-port", "49152", "--max-port", "49400", "--log-file", "stdout", "--verbose",
            "--pidfile", tmp_path / "turn.pid",
            log=logs["turn"],
        )  # fmt: skip
        processes.append(turn)
        proxy = start(
            namespaces.relay, sys.executable, "-m", "tests.turn_peer", "proxy",
            RELAY_IP, str(PORT), NODE_IP,
            log=logs["proxy"],
        )  # fmt: skip
        processes.append(proxy)
        node = start(
            namespaces.node, sys.executable, "-m", "lpstream.serve", "--host", NODE_IP,
            "--port", str(PORT), "--backend", "meshwarp", "--node-id", "turn",
            "--ice-server", f"turn:{RELAY_IP}:3478", "--turn-secret", secret,
            "--turn-ttl", "600", "--log-format", "json",
            log=logs["node"],
        )  # fmt: skip
        processes.append(node)
        wait_for(logs["proxy"], "proxy ready", proxy)
        wait_for(logs["node"], "Ctrl-C", node)
        wait_for(logs["turn"], "listener opened on", turn, limit_s=20)
        client = start(
            namespaces.client, sys.executable, "-m", "tests.turn_peer", "browser",
            f"http://{RELAY_IP}:{PORT}",
            log=logs["client"],
        )  # fmt: skip
        processes.append(client)
        code = client.wait(timeout=120)
        output = logs["client"].read_text(errors="replace")
        assert code == 0, (
            f"client failed:\n{output[-3000:]}\nnode:\n{logs['node'].read_text()[-3000:]}"
        )
        report = json.loads(output.strip().splitlines()[-1])

        turn_entry = next(s for s in report["ice_servers"] if s["urls"][0].startswith("turn:"))
        expiry, name = turn_entry["username"].split(":", 1)
        assert int(expiry) > time.time() and name.startswith("web-"), turn_entry
        assert "relay" in report["local_candidates"], report
        pair = report["pair"]
        assert "relay" in (pair["local_type"], pair["remote_type"]), pair
        assert pair["remote"].startswith(RELAY_IP) or pair["local"].startswith(RELAY_IP), pair
        turn_log = logs["turn"].read_text(errors="replace")
        # coturn accepted the minted credentials of both ends: the page's and the node's
        for user in (turn_entry["username"], ":node>"):
            allocated = [line for line in turn_log.splitlines() if user in line]
            assert any("ALLOCATE processed, success" in line for line in allocated), turn_log
        assert "processed, error 403" not in turn_log, turn_log
        node_events = [
            json.loads(line)
            for line in logs["node"].read_text().splitlines()
            if line.startswith("{")
        ]
        joins = [e for e in node_events if e.get("event") == "join"]
        assert joins and joins[0]["room"] == "turn-room" and joins[0]["participant"]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
