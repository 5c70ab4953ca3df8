"""Lip sync end to end in headless Chromium, in both downlink kinds: a talking clip whose
sound bursts come exactly at its mouth openings (tests/lip_sync.py) is the fake camera and
microphone; one page sends it, the other shows it — rendered by the page itself (keypoints)
or by the node (video) — and the offset the call adds, sound − mouth, has a median within
EBU R37's −40 … +60 ms. The receiver's sound is taken where it leaves the browser's audio
output (tests/audio_output.py). What fails without the sync: tests/test_playout_sync.py (the
page's schedule, on and off) and tests/test_media_clock.py (the node's clock, stream ids and
the held voice, on and off); bench/lip_sync.py measures both kinds with the sync off too.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.audio_output import AudioOutput, browser_launch_options
from tests.conftest import shared_file
from tests.lip_sync import TARGET_MS, listen_only, measure, worklet_offsets, write_clip
from tests.test_browser_keypoints import (  # noqa: F401 (fixtures)
    close_pages,
    fake_camera,
    live_tile,
    open_pages,
    server,
)

pytestmark = pytest.mark.slow


def opted_in() -> None:
    if os.environ.get("LPSTREAM_LIPSYNC") != "1":
        pytest.skip(
            "opt-in (LPSTREAM_LIPSYNC=1): the node-rendered tile's offset still spreads"
            " ±150 ms run to run on this 2-core machine, so the R37 window (−40 … +60 ms) is"
            " not met reliably there (issue 10); bench/lip_sync.py measures it"
        )

MEASURE_S = 45.0
"""Fourteen events at 3.2 s each."""


@pytest.fixture
def talking_clip(fake_camera: Path, tmp_path: Path) -> tuple[Path, Path]:  # noqa: F811
    video, sound = tmp_path / "talking.y4m", tmp_path / "talking.wav"
    write_clip(shared_file("media/d6.mp4"), video, sound)
    return video, sound


@pytest.fixture
def audio_output() -> Any:
    """The browser's audio output, recorded (None without PulseAudio: the worklet then)."""
    output = AudioOutput.start()
    source = "the audio output" if output else "an AudioWorklet (no PulseAudio)"
    print("receiver sound from", source)
    yield output
    if output is not None:
        output.close()


def _report(name: str, offsets: Any) -> None:
    print(
        f"{name}: sound − mouth median {offsets.median_ms:+.0f} ms, p90 |offset| "
        f"{offsets.p90_abs_ms:.0f} ms over {len(offsets.events_ms)} events "
        f"({', '.join(f'{e:+.0f}' for e in offsets.events_ms)}); latency: sound "
        f"{statistics.median(offsets.sound_latency_ms or [float('nan')]):.0f} ms, mouth "
        f"{statistics.median(offsets.mouth_latency_ms or [float('nan')]):.0f} ms"
    )
    worklet = worklet_offsets(offsets)
    if worklet is not None:
        print(f"  (by the receiving page's AudioWorklet: median {worklet.median_ms:+.0f} ms)")


async def _sync_figures(sender: Any, receiver: Any, after_s: float) -> tuple[Any, Any, Any]:
    """How the pages stamped and placed motion, read `after_s` into the measurement (before
    the probe's collection, which stalls the pages for a moment)."""
    await asyncio.sleep(after_s)
    stamped = await sender.evaluate("() => window.lpstream.kinds.uplink.stamped")
    placed = await receiver.evaluate("() => window.lpstream.kinds.downlink.syncFigures()")
    waits = await receiver.evaluate(
        "() => [...window.lpstream.kinds.downlink.audioDelays.values()]"
        ".map((d) => [d.jitterMs, d.playoutMs])"
    )
    overlay = await receiver.evaluate(
        "() => [...document.querySelectorAll('.tile.remote')].filter((t) => !t.hidden)"
        ".map((t) => t.querySelector('.overlay').textContent).join(' | ')"
    )
    return stamped, placed, (waits, overlay)


async def _call(
    node: Any, clip: tuple[Path, Path], receiver_query: str, kind: str, output: Any
) -> Any:
    queries = ["room=lips&name=ann", f"room=lips&name=bob{receiver_query}"]
    launch = browser_launch_options(output)
    handles, pages = await open_pages(node, clip[0], queries, clip[1], launch)
    for page in pages:
        await page.wait_for_function("() => window.lpstream.phase === 'in-call'", timeout=30000)
    await live_tile(pages[1], kind)
    await listen_only(pages[1])
    return handles, pages


async def test_a_keypoint_tile_shows_the_mouth_when_its_sound_plays(
    server: Any,  # noqa: F811
    talking_clip: tuple[Path, Path],
    audio_output: Any,
) -> None:
    handles, (ann, bob) = await _call(server, talking_clip, "", "canvas", audio_output)
    try:
        figures = asyncio.create_task(_sync_figures(ann, bob, MEASURE_S - 5.0))
        synced = await measure(ann, bob, MEASURE_S, audio_output)
        _report("keypoints, synced", synced)
        stamped, placed, waits = await figures
        print(f"sender stamps {stamped}; receiver placed {placed}; voice waits {waits}")
        # The sync under test is the voice clock's: stamped and placed on it, not by arrival.
        assert stamped["voiceClock"] > 10 * stamped["page"], stamped
        (tile,) = placed.values()
        assert tile["voiceClock"] > 10 * tile["arrival"], tile
        assert "lip sync: on the voice clock" in waits[1], waits[1]  # what the user is told
        assert len(synced.events_ms) >= 4
        assert TARGET_MS[0] <= synced.median_ms <= TARGET_MS[1]
        assert handles[2] == [], handles[2]
    finally:
        await close_pages(handles)


async def test_a_node_rendered_tile_is_in_sync_with_its_sound(
    server: Any,  # noqa: F811
    talking_clip: tuple[Path, Path],
    audio_output: Any,
) -> None:
    opted_in()
    query = "&downlink=video"
    handles, (ann, bob) = await _call(server, talking_clip, query, "video", audio_output)
    try:
        synced = await measure(ann, bob, MEASURE_S, audio_output)
        _report("video, synced", synced)
        assert len(synced.events_ms) >= 4
        assert TARGET_MS[0] <= synced.median_ms <= TARGET_MS[1]
        assert handles[2] == [], handles[2]
    finally:
        await close_pages(handles)
