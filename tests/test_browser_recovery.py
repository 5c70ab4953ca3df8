"""Recovery in headless Chromium against a real `python -m lpstream.serve` process.

1. A page whose media connection stalls gets it back without leaving the room: the page is in
   the network lab's `client` namespace, the node and the other page in the `node` namespace
   (tests/netlab.py). A 12 s blackout of everything between them (the signaling websocket
   too, which outlives it: 12 s is the longest a websocket ping sent as it starts survives,
   with Linux's TCP retransmission back-off and websockets' 20 s ping timeout) makes the
   page's connection `disconnected`; after DISCONNECTED_GRACE_MS (call.js) the page opens a
   new one over the same signaling session.
   Asserted: the page restarted (its counter, the "reconnecting…" banner, the node's
   `media-restart` log event), it never rejoined, the other page never lost its tile and the
   signaling server logged no leave, and motion flows again both ways afterwards.
2. A node killed (SIGKILL) and started again on the same port is rejoined by both pages on
   their own, by the page's rejoin back-off (no reload), and each sees the other's avatar
   again: the pages upload their portraits to the new node.

Both use the camera uplink and video downlink (the node extracts and renders, meshwarp).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.chromium import CHROMIUM, HEADLESS_ARGS, fake_media_args, write_y4m
from tests.conftest import shared_file
from tests.netlab import REPO, Impairment, Lab, unavailable

pytestmark = pytest.mark.slow

PORT = 8080
BLACKOUT_S = 12.0
CALL = "uplink=camera&downlink=video"

# The visible remote tile showing participant `name`: playback time and a grey thumbnail.
SAMPLE_TILE = """(name) => {
  const tile = [...document.querySelectorAll('.tile.remote')]
    .find((t) => !t.hidden && t.dataset.name === name);
  const video = tile && tile.querySelector('video');
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(video, 0, 0, 64, 64);
  const rgba = context.getImageData(0, 0, 64, 64).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) grey.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
  return { time: video.currentTime, grey };
}"""

# Counts, every 100 ms, the samples in which this page's tiles lack participant `id`.
WATCH_TILE = """(id) => {
  window.missing = 0;
  setInterval(() => {
    if (!window.lpstream.slots.some((s) => s.id === id)) window.missing += 1;
  }, 100);
}"""


# The page's state a test looks at (not the whole object: it holds the call and the models).
SUMMARY = """() => { const s = window.lpstream;
  return { id: s.id, phase: s.phase, restarts: s.restarts, rejoins: s.rejoins,
           portraitOk: s.portraitOk }; }"""

# When (Date.now()) this page's connection first left `connected`.
WATCH_ICE = """() => {
  window.disconnectedAt = null;
  const pc = window.lpstream.call.pc;
  pc.addEventListener('iceconnectionstatechange', () => {
    if (window.disconnectedAt === null && pc.iceConnectionState !== 'connected') {
      window.disconnectedAt = Date.now();
    }
  });
}"""


@pytest.fixture
def fake_camera(tmp_path: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure_chromium.sh (as root)")
    out = tmp_path / "face.y4m"
    write_y4m(shared_file("media/d0.mp4"), out)
    return out


async def state_of(page: Any) -> str:
    keys = "['phase','id','slots','errors','restarts','rejoins','portraitOk','mode','stats']"
    return str(await page.evaluate(f"() => JSON.stringify(window.lpstream, {keys})"))[:1500]


async def avatar_moving(page: Any, name: str, limit_s: float = 45) -> None:
    """Wait until `name`'s tile plays a non-blank avatar whose pixels change (motion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    series: list[dict[str, Any]] = []
    while loop.time() < deadline:
        sample = await page.evaluate(SAMPLE_TILE, name)
        if sample is None or np.std(sample["grey"]) <= 15:
            series = []  # no tile, no frame yet, or a blank one
        else:
            series = [*series, sample][-6:]
            moved = max(
                (
                    float(np.mean(np.abs(np.subtract(b["grey"], a["grey"])) > 8))
                    for a, b in itertools.pairwise(series)
                ),
                default=0.0,
            )
            if series[-1]["time"] > series[0]["time"] + 1.0 and moved > 0.005:
                return
        await asyncio.sleep(0.4)
    raise AssertionError(f"no moving avatar of {name}; page state: {await state_of(page)}")


def log_events(log: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("{") and '"level"' in line
    ]


def wrapper(tmp_path: Path, namespace: str) -> Path:
    """A Chromium that runs inside `namespace` (Playwright talks to it over pipes)."""
    script = tmp_path / f"chromium-{namespace}"
    script.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
    script.chmod(0o755)
    return script


async def test_a_stalled_connection_is_rebuilt_without_leaving_the_room(
    fake_camera: Path, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with Lab(Impairment(blackout_s=BLACKOUT_S), logs=tmp_path) as lab:
        node = lab.start(
            "node", sys.executable, "-m", "lpstream.serve", "--host", lab.node_ip,
            "--port", str(PORT), "--backend", "meshwarp", "--node-id", "lab",
            "--log-format", "json",
            log="node",
        )  # fmt: skip
        lab.wait_for("node", "Ctrl-C", node, 60)
        base = f"http://{lab.node_ip}:{PORT}"
        args = [
            *HEADLESS_ARGS,
            *fake_media_args(fake_camera),
            f"--unsafely-treat-insecure-origin-as-secure={base}",  # the camera needs it
        ]
        async with async_playwright() as playwright:
            pages = {}
            for name, side in (("ann", "client"), ("bob", "node")):
                browser = await playwright.chromium.launch(
                    executable_path=str(wrapper(tmp_path, lab.ns(side))), headless=True, args=args
                )
                pages[name] = await (await browser.new_context()).new_page()
                await pages[name].goto(f"{base}/?room=lab&name={name}&autojoin=1&{CALL}")
            ann, bob = pages["ann"], pages["bob"]
            await avatar_moving(ann, "bob")
            await avatar_moving(bob, "ann")
            ann_id = await ann.evaluate("() => window.lpstream.id")
            await bob.evaluate(WATCH_TILE, ann_id)
            await ann.evaluate(WATCH_ICE)

            lab.blackout()
            blackout_wall = time.time()
            # The restart starts during the blackout, its offer waits in the websocket's TCP.
            await ann.wait_for_function("() => window.lpstream.restarts >= 1", timeout=15000)
            restarted = time.monotonic()
            disconnected = await ann.evaluate("() => window.disconnectedAt") / 1000 - blackout_wall
            banner = await ann.inner_text("#banner")
            assert "reconnecting" in banner, banner
            started, ended = lab.blackouts()[0]
            assert restarted < ended, "the page restarted only after the blackout"
            await ann.wait_for_function(
                "() => window.lpstream.phase === 'in-call'", timeout=40000
            )
            recovered_s = time.monotonic() - ended
            await avatar_moving(ann, "bob", limit_s=20)
            await avatar_moving(bob, "ann", limit_s=20)

            ann_state = await ann.evaluate(SUMMARY)
            assert ann_state["id"] == ann_id, "the page kept its participant id"
            assert ann_state["rejoins"] == 0, await state_of(ann)
            assert ann_state["restarts"] >= 1
            assert await bob.evaluate("() => window.missing") == 0, "bob lost ann's tile"
            assert await bob.evaluate("() => window.lpstream.rejoins") == 0
            # (read before the browsers close: closing them is a leave)
            mine = [e for e in log_events(lab.log("node")) if e.get("participant") == ann_id]
            kinds = [e["event"] for e in mine if "event" in e]
            assert kinds.count("media-restart") == ann_state["restarts"], mine
            assert "leave" not in kinds and kinds.count("join") == 1, mine
        print(
            f"Chromium said disconnected {disconnected:.1f} s into the {BLACKOUT_S:.0f} s blackout,"
            f" ann restarted ≤ {restarted - started:.1f} s into it,"
            f" in call again {recovered_s:.1f} s after it ended",
            flush=True,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "lpstream.serve", "--host", "127.0.0.1", "--port", str(port),
        "--backend", "meshwarp", "--log-format", "json",  # a random node id each time
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "Ctrl-C" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    return process


async def test_a_restarted_node_is_rejoined_by_its_pages(
    fake_camera: Path, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    processes = [start_serve(port, tmp_path / "first.log")]
    base = f"http://127.0.0.1:{port}"
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*HEADLESS_ARGS, *fake_media_args(fake_camera)],
            )
            pages = {}
            for name in ("ann", "bob"):
                pages[name] = await (await browser.new_context()).new_page()
                await pages[name].goto(f"{base}/?room=again&name={name}&autojoin=1&{CALL}")
            await avatar_moving(pages["ann"], "bob")
            await avatar_moving(pages["bob"], "ann")
            before = {n: await p.evaluate("() => window.lpstream.id") for n, p in pages.items()}
            for page in pages.values():
                await page.evaluate("() => { window.notReloaded = true; }")

            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait(timeout=10)
            for page in pages.values():  # both notice, and keep trying with back-off
                await page.wait_for_function("() => window.lpstream.rejoins >= 2", timeout=15000)
            processes.append(start_serve(port, tmp_path / "second.log"))
            up = time.monotonic()
            await avatar_moving(pages["ann"], "bob", limit_s=40)
            await avatar_moving(pages["bob"], "ann", limit_s=40)
            rejoined_s = time.monotonic() - up

            for name, page in pages.items():
                state = await page.evaluate(SUMMARY)
                assert await page.evaluate("() => window.notReloaded === true"), "reloaded"
                assert state["id"] != before[name], "a new participant id from the new node"
                assert state["phase"] == "in-call" and state["portraitOk"], await state_of(page)
        events = log_events(tmp_path / "second.log")
        joined = {e.get("display_name") for e in events if e.get("event") == "join"}
        assert joined == {"ann", "bob"}, events
        print(f"both pages show each other {rejoined_s:.1f} s after the new node was up")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


async def test_the_node_answers_a_restart_offer_keeping_tiles_portrait_and_motion_stream() -> None:
    """The node's side of a media restart, with aiortc peers: a second offer from a participant
    over its signaling session gets a fresh peer connection that keeps the participant's tile
    map, portrait and motion encoder (the stream's sequence numbers go on), and the other
    participant is never told its tile is gone."""
    from aiortc import RTCSessionDescription

    from lpstream.node import NodeConfig
    from lpstream.node.loopback import (
        FileCamera,
        LoopbackBrowser,
        add_audio_slots,
        avatar_frames,
        bundled_peer_connection,
        jpeg,
        load_face_frames,
    )
    from lpstream.serve import CallServer, ServeConfig
    from signaling import Limits

    frames = load_face_frames(shared_file("media/d0.mp4"))
    server = CallServer(
        ServeConfig(port=0), NodeConfig(node_id="R", backend="meshwarp"), Limits()
    )
    await server.start()
    node = server.node
    assert node is not None
    url = f"ws://127.0.0.1:{server.port}/ws"
    ann, bob = LoopbackBrowser(url, "r", "ann"), LoopbackBrowser(url, "r", "bob")
    fresh = bundled_peer_connection()
    try:
        await ann.join(FileCamera(frames))
        await bob.join(FileCamera(frames[10:]))
        ann.upload(jpeg(frames[0][:, 40:280]))
        bob.upload(jpeg(frames[20][:, 40:280]))
        await ann.wait_message("portrait-ok")
        await bob.wait_message("portrait-ok")
        await avatar_frames(bob.tracks[0], 5)
        ann_id = next(s.id for s in node.sessions.values() if s.name == "ann")
        old = node.sessions[ann_id]
        encoder, portrait = old.uplink.encoder, node.router.sources[ann_id].portrait
        seq_before = encoder.next_seq
        assert seq_before > 0 and portrait is not None

        # what the page does: a new peer connection, offered over the same websocket
        fresh.addTransceiver(FileCamera(frames[5:]), direction="sendrecv")
        for _ in range(2):
            fresh.addTransceiver("video", direction="recvonly")
        add_audio_slots(fresh, 3, None)
        control = fresh.createDataChannel("control")
        opened = asyncio.Event()
        control.on("open", opened.set)
        await fresh.setLocalDescription(await fresh.createOffer())
        offer = {"kind": "offer", "sdp": fresh.localDescription.sdp, "restart": True}
        assert ann.ws is not None
        bob.messages.clear()
        await ann.ws.send(json.dumps({"type": "signal", "to": node.member_id, "data": offer}))
        answer = await ann._next("signal")
        await fresh.setRemoteDescription(RTCSessionDescription(answer["data"]["sdp"], "answer"))
        await asyncio.wait_for(opened.wait(), 20)
        await ann.pc.close()

        new = node.sessions[ann_id]
        assert new is not old and old.closed
        assert new.uplink.encoder is encoder, "the motion stream goes on"
        assert new.slots == old.slots
        assert node.router.sources[ann_id].portrait is portrait
        deadline = time.monotonic() + 30
        while encoder.next_seq < seq_before + 10:  # motion from the new connection
            assert time.monotonic() < deadline, (seq_before, encoder.next_seq)
            await asyncio.sleep(0.2)
        await avatar_frames(bob.tracks[0], 5)
        told = [m["slots"] for m in bob.messages if m["type"] == "slots"]
        assert all(any(s["id"] == ann_id for s in slots) for slots in told), told
    finally:
        await fresh.close()
        await ann.close()
        await bob.close()
        await server.stop()
