"""The rest pose when a sender's face is gone, and the mouth that follows the voice
(lpstream/node/neutral_pose.py, web_client/neutral_pose.js), with the real codec and the real
built-in renderer: real motion of d3.mp4 through MotionEncoder → MotionDecoder, rendered on
the Mona Lisa.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lpstream.backend import Controls
from lpstream.face.ratios import INNER_LIPS, MOUTH_CORNERS
from lpstream.meshwarp.renderer import MeshwarpRenderer
from lpstream.motion import Motion
from lpstream.node.audio_forwarding import AudioSource
from lpstream.node.avatar_track import AvatarTrack
from lpstream.node.neutral_pose import (
    EASE_S,
    SILENCE_S,
    NeutralPose,
    Pose,
    blend_motion,
    dbov_of_rms,
    voice_fraction,
)
from lpstream.node.portrait_image import Portrait
from lpstream.node.receiver_stage import ReceiverStage
from lpstream.node.router import Router
from lpstream.protocol import LANDMARKS, DecodeStatus, MotionDecoder, MotionEncoder
from tests.conftest import shared_file
from tests.node_js import run_module

FPS = 25
DT = 1.0 / FPS
EASE_FRAMES = math.ceil(EASE_S * FPS) + 1
"""Frames within which the picture must have reached its target."""
WEB_CLIENT = Path(__file__).resolve().parents[1] / "web_client"


def _portrait(max_side: int = 320) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(shared_file("media/mona_lisa.jpg"))), cv2.COLOR_BGR2RGB)
    factor = max_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def clip() -> list[Motion]:
    from lpstream.meshwarp.clip_motion import motions_from_video

    motions, _ = motions_from_video(shared_file("media/d3.mp4"), max_frames=60)
    return [m for m in motions if m is not None]


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return _portrait()


@pytest.fixture
def renderer(portrait: np.ndarray) -> Any:
    renderer = MeshwarpRenderer()
    renderer.set_source(portrait)
    yield renderer
    renderer.close()


class Wire:
    """The real codec, feedback straight back."""

    def __init__(self) -> None:
        self.encoder = MotionEncoder(profile=LANDMARKS)
        self.decoder = MotionDecoder()
        self.clock_ms = 0

    def send(self, motion: Motion | None) -> bytes:
        self.clock_ms += round(DT * 1000)
        return self.encoder.encode(motion, self.clock_ms)

    def receive(self, packet: bytes) -> Motion | None:
        motion = self.decoder.decode(packet)
        feedback = self.decoder.feedback()
        if feedback is not None:
            self.encoder.on_feedback(feedback)
        return motion


def _feed(neutral: NeutralPose, wire: Wire, motion: Motion | None, now: float) -> None:
    decoded = wire.receive(wire.send(motion))
    if decoded is not None:
        neutral.on_motion(decoded, now)
    elif wire.decoder.last_status is DecodeStatus.NO_FACE:
        neutral.on_no_face(now)


def _gap(renderer: MeshwarpRenderer, pose: Pose) -> float:
    """The rendered mouth's opening: inner-lip gap / mouth width."""
    points, _ = renderer.target_mesh(pose.motion, pose.controls)
    gap = np.linalg.norm(points[INNER_LIPS[0]] - points[INNER_LIPS[1]])
    return float(gap / np.linalg.norm(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]]))


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _mid_word(clip: list[Motion]) -> int:
    """The frame of the first 40 whose mouth and head are furthest from the first frame's."""
    first = clip[0]
    scores = [
        float(np.abs(m.exp - first.exp).sum()) + abs(m.yaw - first.yaw) / 10 for m in clip[:40]
    ]
    return int(np.argmax(scores[5:])) + 5


def test_no_face_eases_to_the_rest_pose_and_back(renderer: MeshwarpRenderer, clip) -> None:
    controls = Controls(voice_mouth=False)
    neutral, wire = NeutralPose(), Wire()
    now = 0.0
    stop = _mid_word(clip)
    frames = []
    for motion in clip[: stop + 1]:
        _feed(neutral, wire, motion, now)
        pose = neutral.pose(now, controls, None)
        assert pose is not None and pose.neutral == 0.0  # a face: the live motion, as sent
        frames.append(renderer.render(pose.motion, pose.controls))
        now += DT
    rest, frozen = frames[0], frames[-1]  # frame 0 is the renderer's reference: the portrait
    assert _diff(frozen, rest) > 1.0, "the test needs a mid-word frame unlike the rest pose"

    lost = []
    for _ in range(EASE_FRAMES + 4):
        _feed(neutral, wire, None, now)  # NO_FACE
        pose = neutral.pose(now, controls, None)
        assert pose is not None
        lost.append(renderer.render(pose.motion, pose.controls))
        now += DT
    distances = [_diff(frame, rest) for frame in lost]
    print("to rest:", [round(d, 2) for d in distances], "frozen was", round(_diff(frozen, rest), 2))
    assert 0.0 < distances[0] < _diff(frozen, rest), "eases, neither freezes nor jumps"
    assert all(b <= a + 0.05 for a, b in itertools.pairwise(distances))
    assert distances[EASE_FRAMES - 1] == 0.0, "the rest pose itself within the ease time"
    assert all(d == 0.0 for d in distances[EASE_FRAMES - 1 :])

    # The face comes back: the avatar eases back and then follows the motion as sent.
    shadow = MeshwarpRenderer()
    shadow.set_source(renderer.prepared_source.image)
    try:
        shadow.render(neutral.rest, Controls())  # the same reference
        back = []
        for motion in clip[stop + 1 : stop + 1 + EASE_FRAMES + 4]:
            _feed(neutral, wire, motion, now)
            pose = neutral.pose(now, controls, None)
            assert pose is not None and neutral.live is not None
            expected = shadow.render(neutral.live, Controls(voice_mouth=False))
            back.append((renderer.render(pose.motion, pose.controls), expected))
            now += DT
    finally:
        shadow.close()
    first, first_expected = back[0]
    assert _diff(first, rest) < _diff(first_expected, rest), "eases back, does not jump"
    for frame, expected in back[EASE_FRAMES - 1 :]:
        assert np.array_equal(frame, expected), "follows the sender again"


def test_motion_silence_is_a_lost_face_after_a_short_timeout(clip) -> None:
    neutral, wire = NeutralPose(), Wire()
    controls = Controls(voice_mouth=False)
    now = 0.0
    for motion in clip[:20]:
        _feed(neutral, wire, motion, now)
        assert neutral.pose(now, controls, None) is not None
        now += DT
    last = now - DT
    # A camera that ends sends nothing at all: no NO_FACE, just silence.
    tick = neutral.next_tick(now, controls)
    assert tick is not None and abs(last + SILENCE_S - now - tick) < 2e-3
    while now < last + SILENCE_S - 0.01:
        pose = neutral.pose(now, controls, None)
        assert pose is not None and pose.neutral == 0.0, "a short gap holds the live pose"
        now += DT
    weights = []
    while now < last + SILENCE_S + EASE_S + 2 * DT:
        pose = neutral.pose(now, controls, None)
        assert pose is not None
        weights.append(pose.neutral)
        now += DT
    assert weights[-1] == 1.0 and pose.motion is neutral.rest
    assert 0.0 < weights[1] < 1.0 and weights == sorted(weights)
    assert neutral.next_tick(now, controls) is None, "at rest with no voice: nothing to redo"


def _settle(neutral: NeutralPose, now: float, controls: Controls, level: float | None) -> Pose:
    pose = None
    for k in range(15):  # 0.6 s at a constant level: the smoothing has settled
        pose = neutral.pose(now + k * DT, controls, level)
    assert pose is not None
    return pose


def test_the_voice_opens_the_mouth_monotonically_only_while_the_face_is_gone(
    renderer: MeshwarpRenderer, clip
) -> None:
    neutral, wire = NeutralPose(), Wire()
    on, off = Controls(voice_mouth=True), Controls(voice_mouth=False)
    now = 0.0
    for motion in clip[:10]:
        _feed(neutral, wire, motion, now)
        pose = neutral.pose(now, on, 10.0)
        assert pose is not None
        assert pose.controls.lip_open is None and not pose.voice, "a face: its own mouth"
        renderer.render(pose.motion, pose.controls)
        now += DT
    for _ in range(EASE_FRAMES):
        _feed(neutral, wire, None, now)
        neutral.pose(now, off, None)
        now += DT
    rest_pose = _settle(neutral, now, off, None)
    rest_gap = _gap(renderer, rest_pose)
    rest = renderer.render(rest_pose.motion, rest_pose.controls)

    levels = [127.0, 60.0, 48.0, 42.0, 36.0, 30.0, 25.0, 20.0, 5.0]  # −dBov: louder →
    gaps, frames = [], []
    for level in levels:
        now += 1.0
        pose = _settle(neutral, now, on, level)
        gaps.append(_gap(renderer, pose))
        frames.append(renderer.render(pose.motion, pose.controls))
        if voice_fraction(level) > 0.1:
            assert pose.voice, "the tile says the mouth follows the voice"
    print("rest opening", round(rest_gap, 3), "voice openings", [round(g, 3) for g in gaps])
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(gaps)), gaps
    assert gaps[-1] > rest_gap + 0.25 and gaps[-1] > gaps[3] + 0.15, gaps
    assert np.array_equal(frames[0], rest), "silence leaves the rest pose"
    assert _diff(frames[-1], rest) > 0.1, "a loud voice shows on the picture"  # silence: 0

    # Switched off: the same voice leaves the rest pose alone.
    for level in levels:
        now += 1.0
        pose = _settle(neutral, now, off, level)
        assert pose.controls.lip_open is None and not pose.voice
        assert np.array_equal(renderer.render(pose.motion, pose.controls), rest)


def test_levels_and_blending() -> None:
    assert dbov_of_rms(1.0) == 0.0 and dbov_of_rms(0.0) == 127.0
    assert abs(dbov_of_rms(0.1) - 20.0) < 1e-9
    assert voice_fraction(None) == 0.0 and voice_fraction(127) == 0.0 and voice_fraction(0) == 1.0
    a = Motion(170.0, 10.0, 0.0, np.zeros(3), 1.0, np.zeros((21, 3)))
    b = Motion(-170.0, 30.0, 0.0, np.ones(3), 2.0, np.ones((21, 3)))
    half = blend_motion(a, b, 0.5)
    assert abs(half.pitch - 180.0) < 1e-9, "angles blend the short way round"
    assert half.yaw == 20.0 and half.scale == 1.5 and np.allclose(half.exp, 0.5)


async def test_a_tile_on_the_node_rests_and_speaks(portrait: np.ndarray, clip) -> None:
    """ReceiverStage: NO_FACE, then silence, then a voice level from the RTP extension, with
    the real router, codec, renderer and avatar track; the tile renders on its own clock."""
    encoder = MotionEncoder(profile=LANDMARKS)
    route = Router().add_source("p1", "ann")
    route.attach_sender(encoder.on_feedback)
    route.set_portrait(Portrait(b"", "sha", portrait))
    audio = AudioSource("p1")
    controls = Controls()
    executor = ThreadPoolExecutor(1)
    track = AvatarTrack()
    tile = ReceiverStage(
        "viewer#0",
        "p1",
        track,
        MeshwarpRenderer(),
        lambda: controls,
        executor,
        lambda source, error: None,
        lambda renderer: renderer.close(),
        audio.level,
    )
    route.connect(tile)
    clock = iter(range(0, 10**6, 40))
    shadow = MeshwarpRenderer()
    shadow.set_source(portrait)

    async def settled(limit_s: float = 3.0) -> np.ndarray:
        """The tile's picture once it stopped changing (nothing sent meanwhile)."""
        await asyncio.sleep(SILENCE_S + EASE_S)  # a silence takes this long to show
        deadline = time.monotonic() + limit_s
        seen = -1
        while time.monotonic() < deadline:
            if track.published == seen:
                break
            seen = track.published
            await asyncio.sleep(0.3)
        return track._frame.to_ndarray(format="rgb24")

    async def live(motions: list[Motion]) -> None:
        for motion in motions:
            route.publish(encoder.encode(motion, next(clock)), None)
            await asyncio.sleep(DT)

    try:
        stop = _mid_word(clip)
        await live(clip[: stop + 1])
        rest = shadow.render(clip[0], Controls())  # the renderer's reference, as the tile's
        frozen = shadow.render(clip[stop], Controls())
        assert _diff(frozen, rest) > 1.0
        published = track.published
        for _ in range(3):  # the sender lost the face
            route.publish(encoder.encode(None, next(clock)), None)
            await asyncio.sleep(DT)
        shown = await settled()
        # Rendered on the tile's own clock, no packet needed (the easing itself, frame by
        # frame, is checked on a simulated clock above: a loaded machine skips ticks here).
        assert track.published > published
        assert _diff(shown, rest) < 0.05 * _diff(frozen, rest), "rests, does not freeze"

        await live(clip[stop - 5 : stop + 1])  # back; then the camera ends: silence
        assert _diff(track._frame.to_ndarray(format="rgb24"), rest) > 0.5
        shown = await settled()
        assert _diff(shown, rest) < 0.05 * _diff(frozen, rest), "silence rests the face too"
        assert not tile.voice_mouth

        for k in range(20):  # speech, as a browser's packets carry it (RFC 6464 levels)
            audio.publish(b"\x00", k * 2880, level_dbov=18 if k % 4 else 40)
            await asyncio.sleep(0.06)
        speaking = track._frame.to_ndarray(format="rgb24")
        assert tile.voice_mouth, "the overlay's label: the mouth follows the voice"
        assert _diff(speaking, rest) > 0.1, "the mouth moves with the voice"
        controls = Controls(voice_mouth=False)
        tile.controls_changed()  # as VideoDownlink.set_controls does
        for k in range(10):
            audio.publish(b"\x00", k * 2880, level_dbov=18)
            await asyncio.sleep(0.06)
        shown = await settled()
        assert _diff(shown, rest) < 0.05 * _diff(frozen, rest), "switched off: at rest"
        assert not tile.voice_mouth
    finally:
        shadow.close()
        await tile.close()
        executor.shutdown()


def _script(clip: list[Motion]) -> list[dict[str, Any]]:
    """Events for both runtimes: motion, NO_FACE, silence, voice on and off, a reset."""
    events: list[dict[str, Any]] = []
    t = 0.0

    def pose(level: float | None, voice: bool, lip: float | None = None) -> None:
        events.append({"t": t, "do": "pose", "level": level, "voice": voice, "lip": lip})

    for motion in clip[:12]:
        events.append({"t": t, "do": "motion", "motion": _motion_json(motion)})
        pose(20.0, True)
        t += DT
    for k in range(12):
        events.append({"t": t, "do": "no_face"})
        pose([127.0, 30.0, 18.0, 45.0][k % 4], True, 0.1 if k > 8 else None)
        t += DT
    events.append({"t": t, "do": "reset"})
    for motion in clip[12:18]:
        events.append({"t": t, "do": "motion", "motion": _motion_json(motion)})
        pose(None, True)
        t += DT
    for k in range(30):  # silence
        pose(25.0 + k, k % 3 != 0)
        t += 0.033
    return events


def _motion_json(motion: Motion) -> dict[str, Any]:
    return {
        "pitch": motion.pitch,
        "yaw": motion.yaw,
        "roll": motion.roll,
        "scale": motion.scale,
        "t": [float(v) for v in motion.t],
        "exp": [float(v) for v in motion.exp.flat],
    }


def _python_run(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    neutral = NeutralPose()
    out = []
    for event in events:
        if event["do"] == "motion":
            m = event["motion"]
            motion = Motion(m["pitch"], m["yaw"], m["roll"], m["t"], m["scale"], m["exp"])
            neutral.on_motion(motion, event["t"])
        elif event["do"] == "no_face":
            neutral.on_no_face(event["t"])
        elif event["do"] == "reset":
            neutral.reset_reference()
        else:
            controls = Controls(lip_open=event["lip"], voice_mouth=event["voice"])
            pose = neutral.pose(event["t"], controls, event["level"])
            assert pose is not None
            out.append(
                {
                    "motion": [
                        pose.motion.pitch,
                        pose.motion.yaw,
                        pose.motion.roll,
                        pose.motion.scale,
                        *pose.motion.t.tolist(),
                        *pose.motion.exp.flat,
                    ],
                    "lip": pose.controls.lip_open,
                    "neutral": pose.neutral,
                    "voice": pose.voice,
                    "tick": neutral.next_tick(event["t"], controls),
                }
            )
    return out


def test_the_page_and_the_node_pose_alike(clip) -> None:
    events = _script(clip)
    module = (WEB_CLIENT / "neutral_pose.js").as_uri()
    runner = f"""
import {{ NeutralPose }} from "{module}";
import {{ readFileSync }} from "node:fs";
const events = JSON.parse(readFileSync(0, "utf8"));
const neutral = new NeutralPose();
const out = [];
for (const e of events) {{
  if (e.do === "motion") neutral.onMotion({{ ...e.motion, t: Float64Array.from(e.motion.t),
    exp: Float64Array.from(e.motion.exp), eyeRatio: null, lipRatio: null }}, e.t);
  else if (e.do === "no_face") neutral.onNoFace(e.t);
  else if (e.do === "reset") neutral.resetReference();
  else {{
    const controls = {{ lipOpen: e.lip, voiceMouth: e.voice }};
    const p = neutral.pose(e.t, controls, e.level);
    const m = p.motion;
    out.push({{ motion: [m.pitch, m.yaw, m.roll, m.scale, ...m.t, ...m.exp],
      lip: p.controls.lipOpen ?? null, neutral: p.neutral, voice: p.voice,
      tick: neutral.nextTick(e.t, controls) }});
  }}
}}
console.log(JSON.stringify(out));
"""
    js = run_module(runner, events)
    py = _python_run(events)
    assert len(js) == len(py)
    assert {p["voice"] for p in py} == {True, False}, "the script covers both label states"
    assert {p["neutral"] for p in py} >= {0.0, 1.0} and len({p["neutral"] for p in py}) > 4
    for a, b in zip(py, js, strict=True):
        assert np.allclose(a["motion"], b["motion"], atol=1e-5), (a, b)
        assert (a["lip"] is None) == (b["lip"] is None)
        assert abs((a["lip"] or 0.0) - (b["lip"] or 0.0)) < 1e-9
        assert abs(a["neutral"] - b["neutral"]) < 1e-12 and a["voice"] == b["voice"]
        assert (a["tick"] is None) == (b["tick"] is None)
