"""A network lab: a `client` and a `node` network namespace joined through an impaired link.

    client ns                       middle ns (the forwarder)                      node ns
    10.89.N.1 ── tun ══ fd ── loss, delay ± jitter, blackout ── fd ══ tun ── 10.89.N.2
    tbf on egress (uplink cap)      (reordering comes from jitter)      tbf on egress (downlink cap)

The forwarder (`python -m tests.netlab forward ...`, run in the middle namespace) opens two
tun devices there, moves one into each side namespace (a tun device keeps its file
descriptor across a move) and addresses them point-to-point, so every IP packet between the
sides is read by it and written on after its impairment: a user-space netem. Rate caps are
the kernel's `tbf` on each side's tun egress. Loss applies to UDP only (media: ICE, DTLS,
SCTP, RTP); delay, jitter, blackouts and caps apply to everything. Loss, delay and jitter
start on SIGUSR2 (`Lab.impair()`), so a call is set up on a clean link and then degrades (at
30 % loss each way aiortc's DTLS handshake would not finish in its 15 s); caps hold from the
start. SIGUSR1 starts a blackout of `--blackout-s` seconds;
the forwarder prints it as a JSON line in CLOCK_MONOTONIC seconds (one clock across
namespaces). Nothing here knows lpstream; addresses are 10.89.x.y only inside namespaces
this module creates and always deletes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
UDP = 17


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the network lab creates network namespaces: run as root (CI does)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "the network lab needs `ip` and `tc` (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "the network lab needs /dev/net/tun"
    return None


@dataclass
class Impairment:
    """What the link does to packets, each direction alike."""

    loss: float = 0.0
    """Probability that a UDP packet is dropped."""
    delay_ms: float = 0.0
    """One-way delay (the RTT is twice this)."""
    jitter_ms: float = 0.0
    """Each packet's delay is uniform in delay ± jitter: packets overtake each other."""
    rate_kbit: int | None = None
    """A `tbf` cap on each direction, or None."""
    blackout_s: float = 0.0
    """Length of the blackout `Lab.blackout()` starts (nothing passes either way)."""
    seed: int = 1


@dataclass
class Lab:
    """Namespaces, the forwarder and the processes run in them; all removed on exit."""

    impairment: Impairment = field(default_factory=Impairment)
    logs: Path = field(default_factory=lambda: Path("/tmp"))
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def subnet(self) -> int:
        return int(self.tag) % 250 + 1

    @property
    def client_ip(self) -> str:
        return f"10.89.{self.subnet}.1"

    @property
    def node_ip(self) -> str:
        return f"10.89.{self.subnet}.2"

    def ns(self, side: str) -> str:
        return f"lpn{self.tag}{side[0]}"

    def __enter__(self) -> Lab:
        try:
            for side in ("client", "middle", "node"):
                sh("ip", "netns", "add", self.ns(side))
                self.created.append(self.ns(side))
                sh("ip", "-n", self.ns(side), "link", "set", "lo", "up")
            i = self.impairment
            self.forwarder = self.start(
                "middle", sys.executable, "-m", "tests.netlab", "forward",
                "--tag", self.tag, "--client-ns", self.ns("client"), "--node-ns", self.ns("node"),
                "--client-ip", self.client_ip, "--node-ip", self.node_ip,
                "--loss", str(i.loss), "--delay-ms", str(i.delay_ms),
                "--jitter-ms", str(i.jitter_ms), "--blackout-s", str(i.blackout_s),
                "--rate-kbit", str(i.rate_kbit or 0), "--seed", str(i.seed),
                log="forwarder",
            )  # fmt: skip
            self.wait_for("forwarder", "forwarding", self.forwarder, 20)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        for name in reversed(self.created):  # deleting a namespace deletes its devices too
            subprocess.run(["ip", "netns", "delete", name], check=False)
        self.created.clear()

    def log(self, name: str) -> Path:
        return self.logs / f"netlab-{self.tag}-{name}.log"

    def start(self, side: str, *command: str | Path, log: str) -> subprocess.Popen[bytes]:
        """Run `command` inside the `side` namespace, output to the log named `log`."""
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(side), *map(str, command)],
            cwd=REPO,
            env=env,
            stdout=self.log(log).open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def wait_for(
        self, log: str, text: str, process: subprocess.Popen[bytes], limit_s: float = 60
    ) -> None:
        deadline = time.monotonic() + limit_s
        while text not in self.log(log).read_text(errors="replace"):
            tail = self.log(log).read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"{log} exited early:\n{tail}"
            assert time.monotonic() < deadline, f"no {text!r} from {log}:\n{tail}"
            time.sleep(0.1)

    def impair(self) -> None:
        """Start loss, delay and jitter (caps hold from the start)."""
        self.forwarder.send_signal(signal.SIGUSR2)

    def blackout(self) -> None:
        self.forwarder.send_signal(signal.SIGUSR1)

    def blackouts(self) -> list[tuple[float, float]]:
        """(start, end) of every blackout so far, CLOCK_MONOTONIC seconds."""
        found = []
        for line in self.log("forwarder").read_text(errors="replace").splitlines():
            if line.startswith('{"blackout"'):
                start, end = json.loads(line)["blackout"]
                found.append((start, end))
        return found


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def sockets_in(namespace: str) -> Iterator[None]:
    """Sockets this thread opens meanwhile belong to network namespace `namespace` (one made
    by `Lab`); they keep it afterwards. One process can so put one page behind the impaired
    link and another beside the node, and time both on one clock."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        yield
    finally:
        if libc.setns(own, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(own)
        os.close(target)


# -- the forwarder (runs in the middle namespace) ----------------------------------------------


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def cap(namespace: str, device: str, rate_kbit: int) -> None:
    burst = max(1600, rate_kbit * 1000 // 8 // 20)  # ≥ one full packet, ~50 ms of rate
    sh(
        "ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", device, "root",
        "tbf", "rate", f"{rate_kbit}kbit", "burst", str(burst), "latency", "400ms",
    )  # fmt: skip


async def forward(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    sides = {"c": (args.client_ns, args.client_ip, args.node_ip)}
    sides["n"] = (args.node_ns, args.node_ip, args.client_ip)
    fds: dict[str, int] = {}
    for key, (namespace, local, peer) in sides.items():
        device = f"lpt{args.tag}{key}"
        fds[key] = open_tun(device)
        sh("ip", "link", "set", device, "netns", namespace)
        sh("ip", "-n", namespace, "addr", "add", local, "peer", f"{peer}/32", "dev", device)
        sh("ip", "-n", namespace, "link", "set", device, "up")
        if args.rate_kbit:
            cap(namespace, device, args.rate_kbit)
    loop = asyncio.get_running_loop()
    blackout_until = 0.0
    impaired = False  # loss, delay and jitter start on SIGUSR2: calls are set up on a clean link
    counts = {"c>n": [0, 0], "n>c": [0, 0]}  # [forwarded, dropped]

    def on_usr1() -> None:
        nonlocal blackout_until
        now = time.monotonic()
        blackout_until = now + args.blackout_s
        print(json.dumps({"blackout": [now, blackout_until]}), flush=True)

    def on_usr2() -> None:
        nonlocal impaired
        impaired = True
        print(json.dumps({"impaired": time.monotonic()}), flush=True)

    def write(fd: int, packet: bytes) -> None:
        try:
            os.write(fd, packet)
        except OSError:
            pass  # the far side's queue is full: a drop, as a router would

    def readable(source: str, target: str) -> None:
        direction = f"{source}>{target}"
        while True:
            try:
                packet = os.read(fds[source], 65536)
            except BlockingIOError:
                return
            udp = len(packet) > 9 and packet[0] >> 4 == 4 and packet[9] == UDP
            lost = impaired and udp and rng.random() < args.loss
            if time.monotonic() < blackout_until or lost:
                counts[direction][1] += 1
                continue
            counts[direction][0] += 1
            delay = args.delay_ms + rng.uniform(-args.jitter_ms, args.jitter_ms) if impaired else 0
            if delay <= 0:
                write(fds[target], packet)
            else:
                loop.call_later(delay / 1000, write, fds[target], packet)

    loop.add_reader(fds["c"], readable, "c", "n")
    loop.add_reader(fds["n"], readable, "n", "c")
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    loop.add_signal_handler(signal.SIGUSR2, on_usr2)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("forwarding", flush=True)
    await stop.wait()
    print(json.dumps({"counts": counts}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["forward"])
    for name in ("--tag", "--client-ns", "--node-ns", "--client-ip", "--node-ip"):
        parser.add_argument(name, required=True)
    for name in ("--loss", "--delay-ms", "--jitter-ms", "--blackout-s"):
        parser.add_argument(name, type=float, default=0.0)
    parser.add_argument("--rate-kbit", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(forward(parser.parse_args()))


if __name__ == "__main__":
    main()
