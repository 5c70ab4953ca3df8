"""The pages of the soak (bench/soak.py, tests/test_soak.py), each kind in its own process.

`python -m tests.soak_peers prepare CLIP` extracts the clip's motion once;
`python -m tests.soak_peers honest URL OUT --rooms r1:0,r1:1,r2:0 --clip CLIP` joins keypoint pages
(`KeypointBrowser`, real aiortc peers playing d0.mp4's meshwarp motion at 25 fps, each
uploading a portrait), prints `joined N`, and records, until a line on stdin, every frame
each page shows of every other honest page: its wall-clock time and how far the shown
motion is from what was sent, in quantiser steps. It also records anything that should
never reach a page: a motion packet that does not decode, a text frame that is not one JSON
object with a known `type`, a data channel or peer connection that closes. One JSON report
is written to OUT.

`python -m tests.soak_peers hostile URL OUT --rooms evil,same --start S --until T` joins one
hostile page per room and, from `S` until `T`, sends malformed, oversized and flooding
messages on every channel (control JSON, binary control, non-UTF-8 text, motion-up,
motion-down feedback, portraits replies, portrait uploads) and on extra signaling websockets.
It counts what it sent.

Wall-clock time is the common clock of the processes; each page stamps frames with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import pickle
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection
from websockets.asyncio.client import connect

from lpstream.backend import SenderOutput
from lpstream.motion import Motion
from lpstream.node import ice_consent, sctp_acks
from lpstream.node.framing import frame_packet, unframe_packet
from lpstream.node.loopback import jpeg, load_face_frames
from lpstream.node.loopback_keypoints import FPS, KeypointBrowser
from lpstream.protocol import DecodeStatus, ProtocolError
from lpstream.shared_data import shared_dir
from tests.netlab_peer import error_steps

NODE_MESSAGES = {"hello", "slots", "stats", "portrait-ok", "error", "pong", "source", "face"}
"""Every `type` the node sends a page on `control` (docs/protocol.md §9)."""


def peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))  # loopback only


@dataclass
class SoakPage(KeypointBrowser):
    """A keypoint page that stamps every frame it shows and checks what it receives."""

    order: list[Motion] = field(default_factory=list)
    shown: dict[str, list[float]] = field(default_factory=dict)
    """Wall-clock times of DECODED frames, by the source's name."""
    worst_steps: float = 0.0
    undecodable: dict[str, int] = field(default_factory=dict)
    bad_text: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    """Channels or the connection closed before the end (by the node or the network)."""
    ending: bool = False

    def names(self) -> dict[str, str]:
        """Source id → participant name, from the latest `slots` message."""
        for message in reversed(self.messages):
            if message.get("type") == "slots":
                return {t["id"]: t["name"] for t in message["slots"] if t}
        return {}

    def watch_connection(self) -> None:
        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState in ("failed", "closed") and not self.ending:
                self.closed.append(f"{time.time():.1f} pc {self.pc.connectionState}")

        for label, channel in self.channels.items():
            channel.on("close", lambda label=label: self._closed(label))

    def _closed(self, what: str) -> None:
        if not self.ending:
            self.closed.append(f"{time.time():.1f} {what}")

    def _on_motion(self, message: bytes) -> None:
        try:
            source_id, _ = unframe_packet(message)
        except (ProtocolError, ValueError) as exc:
            self._undecodable(f"{type(exc).__name__}, no source")
            return
        try:
            super()._on_motion(message)
        except (ProtocolError, ValueError) as exc:
            # the node relays motion without decoding it: a roommate's packet whose header
            # parses but whose body is noise reaches this page, whose decoder refuses it
            self._undecodable(f"{type(exc).__name__} from {self.names().get(source_id, '?')}")
            return
        decoder = self.seen[source_id].decoder
        if decoder.last_status is not DecodeStatus.DECODED:
            return
        name = self.names().get(source_id, source_id)
        if not name.startswith("p"):
            return  # only honest pages ("p<room>-<i>") play the known clip
        assert decoder.last_timestamp_ms is not None and decoder.last_motion is not None
        index = round(decoder.last_timestamp_ms * FPS / 1000)
        sent = self.order[index % len(self.order)]
        self.worst_steps = max(self.worst_steps, error_steps(sent, decoder.last_motion))
        self.shown.setdefault(name, []).append(time.time())

    def _undecodable(self, key: str) -> None:
        self.undecodable[key] = self.undecodable.get(key, 0) + 1

    def _on_control(self, message: str) -> None:
        try:
            parsed = json.loads(message)
            ok = isinstance(parsed, dict) and parsed.get("type") in NODE_MESSAGES
        except (ValueError, TypeError):
            ok = False
        if not ok:
            self.bad_text.append(repr(message)[:120])
            return
        if parsed["type"] in ("stats", "pong"):
            return  # not kept: a long soak would pile them up
        super()._on_control(message)


@dataclass
class Clip:
    """What every honest page plays: d0.mp4's meshwarp motion, and portraits to upload."""

    motions: list[SenderOutput]
    portraits: list[bytes]


def prepare_clip(path: Path) -> None:
    """Extract the clip's motion once (face tracking is slow to start on a busy machine),
    pickled to `path` for the page processes."""
    from lpstream.meshwarp.sender import MeshwarpSender

    frames = load_face_frames(shared_dir() / "media/d0.mp4")
    sender = MeshwarpSender()
    try:
        motions = [sender.extract(f, i * 40) for i, f in enumerate(frames)]
    finally:
        sender.close()
    portraits = [jpeg(f[:, 40:280]) for f in frames[::7]]
    path.write_bytes(pickle.dumps(Clip(motions, portraits)))


async def honest(url: str, rooms: list[tuple[str, int]], clip: Clip) -> dict[str, Any]:
    motions = clip.motions
    order = [m.motion for m in [*motions, *reversed(motions)]]
    pages = [
        SoakPage(url, room, f"p{room}-{i}", pc=peer_connection(), order=order) for room, i in rooms
    ]
    joined = 0
    try:
        for index, page in enumerate(pages):
            await page.join(motions)
            page.watch_connection()
            # by index in this process: pages of different processes in one room upload the
            # same picture, as two people who picked the same stock portrait would
            page.upload(clip.portraits[index % len(clip.portraits)])
            joined += 1
        print(f"joined {joined}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "stop"
        for page in pages:
            page.ending = True
        return {
            "joined": joined,
            "pages": {
                p.name: {
                    "room": p.room,
                    "shown": p.shown,
                    "worst_steps": p.worst_steps,
                    "undecodable": p.undecodable,
                    "bad_text": p.bad_text[:20],
                    "bad_text_count": len(p.bad_text),
                    "closed": p.closed,
                    "state": p.pc.connectionState,
                    "portraits": sum(s.portrait_sha256 is not None for s in p.seen.values()),
                    "portrait_errors": p.portrait_errors[:20],
                }
                for p in pages
            },
        }
    finally:
        for page in pages:
            await page.close()


# -- the hostile page ---------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


def hostile_texts(rng: random.Random) -> list[str]:
    """Control-channel text no page sends."""
    return [
        "not json",
        DEEP,
        '{"type":"ping","t":' + DEEP[:3000] + "}",
        "x" * 70_000,  # oversized
        '{"type":"controls","head":' + "9" * 4000 + "}",
        '{"type":"controls","eye":"inf","lip":NaN}',
        '{"type":"controls","voice":"yes"}',
        '{"type":"face","track":-1}',
        '{"type":"face","track":1e999}',
        '{"type":"portrait","bytes":999999999999,"sha256":"00"}',
        '{"type":"portrait-end"}',
        '{"type":"nonsense"}',
        "[]",
        '{"type":["ping"]}',
        json.dumps({"type": "ping", "t": "\u0000" * 100}),
        "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(200)),
    ]


def hostile_signaling(rng: random.Random) -> list[str | bytes]:
    return [
        "not json",
        DEEP,
        "x" * 70_000,
        bytes(rng.randbytes(300)),
        '{"type":"join","room":"' + "r" * 500 + '","name":"e"}',
        '{"type":"join","room":"same","name":"\\u0000<script>"}',
        '{"type":"signal","to":"node:S","data":{"kind":"link-offer","sdp":"v=0"}}',
        '{"type":"signal","to":"node:S","data":{"kind":"offer","sdp":"garbage"}}',
        '{"type":"signal","to":"psame-0","data":{"kind":"offer","sdp":"garbage"}}',
        '{"type":"signal","to":"node:S","data":' + DEEP[:2000] + "}",
        '{"type":"nonsense"}',
    ]


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    refused_ws: int = 0

    def add(self, kind: str) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1


async def send_raw_text(page: KeypointBrowser, label: str, payload: bytes) -> None:
    """A WebRTC string message (PPID 51) whose bytes are not UTF-8: no browser sends it."""
    transport = page.pc.sctp
    transport._data_channel_queue.append((page.channels[label], 51, payload))
    await transport._data_channel_flush()


def send(tally: Tally, kind: str, channel: Any, data: str | bytes) -> None:
    if channel.readyState == "open":
        channel.send(data)
        tally.add(kind)


async def attack_page(page: KeypointBrowser, until: float, tally: Tally, seed: int) -> None:
    """Every ~20 ms a burst on every channel of `page`."""
    rng = random.Random(seed)
    texts = hostile_texts(rng)
    await page.wait_for(
        lambda: all(c.readyState == "open" for c in page.channels.values()), 15, "channels"
    )
    control, up = page.channels["control"], page.channels["motion-up"]
    down, portraits = page.channels["motion-down"], page.channels["portraits"]
    bomb = bytearray(jpeg(np.zeros((16, 16, 3), np.uint8)))
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (12000).to_bytes(2, "big") * 2
    while time.time() < until and page.pc.connectionState == "connected":
        send(tally, "control-json", control, rng.choice(texts))
        # binary outside an upload, up to oversized
        send(tally, "control-binary", control, rng.randbytes(rng.choice((1, 50, 16384, 70_000))))
        if rng.random() < 0.2:
            await send_raw_text(page, "control", b'{"type":"ping","t":\xff\xfe}')
            tally.add("control-non-utf8")
        if rng.random() < 0.1:  # an upload that lies: wrong hash, a decompression bomb
            payload = bytes(bomb) if rng.random() < 0.5 else rng.randbytes(3000)
            header = {"type": "portrait", "bytes": len(payload), "sha256": "ab" * 32}
            send(tally, "portrait-upload", control, json.dumps(header))
            send(tally, "portrait-upload", control, payload)
            send(tally, "portrait-upload", control, '{"type":"portrait-end"}')
        for _ in range(10):  # a motion flood: garbage, oversized, a valid header on noise
            choice = rng.random()
            if choice < 0.3:
                send(tally, "motion-up", up, rng.randbytes(rng.randrange(0, 200)))
            elif choice < 0.5:
                send(tally, "motion-up", up, rng.randbytes(5000))
            else:
                first = rng.choice((0x10, 0x80, 0xC0)) | rng.randrange(16)
                send(
                    tally,
                    "motion-up",
                    up,
                    bytes([first, rng.randrange(256), 1]) + rng.randbytes(60),
                )
        send(tally, "motion-down", down, rng.randbytes(rng.randrange(0, 100)))
        send(tally, "motion-down", down, frame_packet("psame-0", rng.randbytes(20)))
        send(tally, "portraits", portraits, rng.randbytes(rng.randrange(0, 100)))
        send(tally, "portraits", portraits, frame_packet("psame-1", rng.randbytes(40)))
        if rng.random() < 0.1:
            await send_raw_text(page, "portraits", b"\xff\xfe\xfd")
            tally.add("portraits-non-utf8")
        await asyncio.sleep(0.02)
    tally.add(f"ended {page.room} {page.pc.connectionState} at {time.time():.1f}")


async def attack_signaling(url: str, until: float, tally: Tally, seed: int) -> None:
    """One extra websocket at a time, fed garbage until the server closes it."""
    rng = random.Random(seed)
    messages = hostile_signaling(rng)
    while time.time() < until:
        try:
            async with connect(url, max_size=None) as ws:
                while time.time() < until:
                    await ws.send(rng.choice(messages))
                    tally.add("signaling")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ws.recv(), 0.01)
        except Exception:  # closed or refused by the server: expected
            tally.refused_ws += 1
            await asyncio.sleep(0.2)


async def hostile(url: str, rooms: list[str], start: float, until: float) -> dict[str, Any]:
    """Join at once (it takes a while on a busy machine), attack from `start` to `until`."""
    tally = Tally()
    pages = [KeypointBrowser(url, room, "eve", pc=peer_connection()) for room in rooms]
    try:
        for page in pages:
            await page.join()
        await asyncio.sleep(max(0.0, start - time.time()))
        attack_from = time.time()
        tasks = [attack_page(p, until, tally, seed) for seed, p in enumerate(pages)]
        await asyncio.gather(*tasks, attack_signaling(url, until, tally, 99))
        return {"sent": tally.sent, "refused_ws": tally.refused_ws, "attack_from": attack_from}
    finally:
        for page in pages:
            await page.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("prepare", "honest", "hostile"))
    parser.add_argument("url", nargs="?", default="")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rooms", default="")
    parser.add_argument("--clip", type=Path, help="honest: the prepared clip")
    parser.add_argument("--start", type=float, default=0.0, help="hostile: attack from")
    parser.add_argument("--until", type=float, default=0.0, help="hostile: attack until")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.kind == "prepare":
        prepare_clip(args.out)
        return
    # The pages stand in for browsers, whose consent checks wait for late answers (RFC 7675);
    # stock aioice would drop them from this side when this process is busy.
    ice_consent.install()
    # ... and whose SCTP (usrsctp) acknowledges every second packet, not each one (a page
    # receiving three streams sent a SACK for each of its 75 packets/s).
    sctp_acks.install()
    if os.environ.get("SOAK_DEBUG"):  # diagnosis: ICE events and consent on this side too
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("aioice").setLevel(logging.INFO)
    if args.kind == "honest":
        rooms = [(r.split(":")[0], int(r.split(":")[1])) for r in args.rooms.split(",")]
        report = asyncio.run(honest(args.url, rooms, pickle.loads(args.clip.read_bytes())))
    else:
        report = asyncio.run(hostile(args.url, args.rooms.split(","), args.start, args.until))
    args.out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
