"""One codec, two runtimes: the JS codec (web_client/codec/) against lpstream.protocol.

Python streams real motion through FeedbackLoop (late feedback, loss, reordering, a keyframe
request, no-face frames) and writes every frame's packet, the feedback the encoder received
and what the decoder showed; web_client/codec/tests/cross_runtime.mjs replays that schedule
with the JS encoder (byte-identical packets) and decoder (same statuses, bit-exact motion,
same feedback bytes), runs its own lossy loop, which Python then replays the same way, and
checks tables, golden fixtures, portrait transfers and that hostile bytes only ever raise
ProtocolError.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lpstream.motion import Motion
from lpstream.protocol import (
    KEYPOINTS,
    LANDMARKS,
    FeedbackLoop,
    MotionDecoder,
    MotionEncoder,
    PortraitReceiver,
    PortraitSender,
    ProtocolError,
    export_js,
)
from lpstream.protocol import motion_fields as mf
from lpstream.protocol.portrait import PortraitReply, RejectCode
from lpstream.protocol.probability_tables import KEY_TABLES
from lpstream.protocol.profiles import PROFILES
from lpstream.protocol.table_fit import load_clip
from lpstream.protocol.wire import Kind
from tests.conftest import shared_file
from tests.fixtures.protocol.make_fixtures import known_motion, meshwarp_motion

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "web_client" / "codec" / "tests" / "cross_runtime.mjs"
FIXTURES = ROOT / "tests" / "fixtures" / "protocol"
NODE = shutil.which("node")
KEYPOINTS_CLIPS = ("d5", "wink", "shake_face")


def flat(motion: Motion | None) -> dict | None:
    if motion is None:
        return None
    return {
        "pitch": float(motion.pitch),
        "yaw": float(motion.yaw),
        "roll": float(motion.roll),
        "t": [float(x) for x in motion.t],
        "scale": float(motion.scale),
        "exp": [float(x) for x in np.asarray(motion.exp).reshape(-1)],
        "eyeRatio": None if motion.eye_ratio is None else [float(x) for x in motion.eye_ratio],
        "lipRatio": None if motion.lip_ratio is None else float(motion.lip_ratio),
    }


def unflat(data: dict | None) -> Motion | None:
    if data is None:
        return None
    return Motion(
        data["pitch"], data["yaw"], data["roll"], data["t"], data["scale"],
        np.asarray(data["exp"]).reshape(21, 3), data["eyeRatio"], data["lipRatio"],
    )


def python_schedule(
    motions: list[Motion | None], timestamps: list[int], profile, *, loss: float,
    reorder: float, seed: int, keyframe_at: int,
) -> list[dict]:
    """FeedbackLoop with feedback 3 frames late, recording what crossed each channel."""
    encoder = MotionEncoder(profile=profile)
    decoder = MotionDecoder()
    loop = FeedbackLoop(encoder=encoder, decoder=decoder, loss=loss, reorder=reorder, seed=seed)
    applied: list[list[str]] = []
    sent: list[str | None] = []
    apply_feedback, make_feedback = encoder.on_feedback, decoder.feedback

    def on_feedback(packet: bytes) -> None:
        applied[-1].append(packet.hex())
        apply_feedback(packet)

    def feedback() -> bytes | None:
        packet = make_feedback()
        sent.append(None if packet is None else packet.hex())
        return packet

    encoder.on_feedback = on_feedback  # type: ignore[method-assign]
    decoder.feedback = feedback  # type: ignore[method-assign]
    steps = []
    for i, (motion, t_ms) in enumerate(zip(motions, timestamps, strict=True)):
        applied.append([])
        if i == keyframe_at:
            loop.request_keyframe()
        step = loop.step(motion, t_ms)
        steps.append({
            "feedbackIn": applied[-1],
            "packet": step.packet.hex(),
            "deliveries": [
                {"frame": d.frame, "status": d.status.value, "shown": flat(d.shown)}
                for d in step.deliveries
            ],
            "shown": flat(step.shown),
            "feedbackOut": sent[-1],
        })
    return steps


def replay(scenario: dict) -> list[str]:
    """Python's encoder and decoder on the other runtime's schedule: the differences."""
    profile = PROFILES[scenario["profile"]]
    motions = [unflat(m) for m in scenario["motions"]]
    steps = scenario["steps"]
    encoder = MotionEncoder(profile=profile)
    decoder = MotionDecoder()
    errors: list[str] = []
    for i, step in enumerate(steps):
        for packet in step["feedbackIn"]:
            encoder.on_feedback(bytes.fromhex(packet))
        packet = encoder.encode(motions[i], scenario["timestamps"][i])
        if packet.hex() != step["packet"]:
            errors.append(f"frame {i}: packet {packet.hex()} != {step['packet']}")
        for d in step["deliveries"]:
            shown = decoder.decode(bytes.fromhex(steps[d["frame"]]["packet"]))
            if decoder.last_status.value != d["status"] or flat(shown) != d["shown"]:
                errors.append(f"frame {i}: decoding frame {d['frame']} gave "
                              f"{decoder.last_status.value}, expected {d['status']} / motion")
        if not step["deliveries"]:
            shown = decoder.conceal(scenario["timestamps"][i]) if decoder.sender_has_face else None
            if flat(shown) != step["shown"]:
                errors.append(f"frame {i}: concealment differs")
        reply = decoder.feedback()
        if (None if reply is None else reply.hex()) != step["feedbackOut"]:
            errors.append(f"frame {i}: feedback {reply!r} != {step['feedbackOut']}")
    return errors


def with_gaps(motions: list[Motion]) -> list[Motion | None]:
    """A few no-face frames and a stretch without eye/lip ratios (flag changes in deltas)."""
    out: list[Motion | None] = list(motions)
    for i in range(len(out) // 3, len(out) // 3 + 3):
        out[i] = None
    for i in range(len(out) // 2, len(out) // 2 + 5):
        m = out[i]
        if m is not None:
            out[i] = Motion(m.pitch, m.yaw, m.roll, m.t, m.scale, m.exp, None, None)
    return out


def scenarios() -> list[dict]:
    clips = []
    for name in KEYPOINTS_CLIPS:
        motions, fps = load_clip(shared_file(f"motion/{name}.npz"))
        clips.append((f"keypoints/{name}", KEYPOINTS, motions, fps))
    from lpstream.meshwarp.clip_motion import motions_from_video

    for video in ("d0", "d3"):
        motions, fps = motions_from_video(shared_file(f"media/{video}.mp4"), max_frames=60)
        clips.append((f"landmarks/{video}", LANDMARKS, motions, fps))
    out = []
    for n, (name, profile, motions, fps) in enumerate(clips):
        motions = with_gaps(motions) if n % 2 == 0 else motions
        start = 4_294_960_000 if n == 1 else 1000 * n  # one clip wraps the u32 timestamp
        timestamps = [(start + round(i * 1000 / fps)) % (1 << 32) for i in range(len(motions))]
        loss = (0.1, 0.2, 0.3)[n % 3]
        reorder = 0.1 if n % 2 else 0.0
        options = dict(loss=loss, reorder=reorder, seed=n, keyframe_at=len(motions) // 2)
        out.append({
            "name": name,
            "profile": profile.profile_id,
            "motions": [flat(m) for m in motions],
            "timestamps": timestamps,
            "steps": python_schedule(motions, timestamps, profile, **options),
            # the JS loop's own settings (its own seeded loss, another keyframe request)
            "js": {"loss": loss, "reorder": 0.1, "seed": 100 + n, "keyframeAt": len(motions) // 3},
        })
    return out


def unit_cases() -> list[dict]:
    """Motions with half-unit ties, out-of-range and float32-sensitive values, and their units."""
    rng = np.random.default_rng(3)
    cases = []
    for n in range(300):
        half = lambda unit: (int(rng.integers(-200_000, 200_000)) + 0.5) * unit  # noqa: E731
        motion = Motion(
            half(1e-3), half(1e-3) if n % 2 else float(rng.uniform(-400, 400)), half(1e-3),
            rng.uniform(-5, 5, 3), abs(half(1e-5)) if n % 3 else float(rng.uniform(0, 9)),
            rng.normal(0, 0.3 if n % 4 else 2.0, (21, 3)),
            None if n % 5 == 0 else rng.uniform(-1, 5, 2),
            None if n % 7 == 0 else abs(half(1e-5)),
        )
        units = mf.motion_to_units(motion)
        cases.append({"motion": flat(motion), "values": units.values,
                      "decoded": flat(mf.units_to_motion(units))})
    return cases


def tables() -> dict:
    return {
        "key": [list(t.table.cumulative) for t in KEY_TABLES],
        "delta": {
            str(pid): [list(t.table.cumulative) for t in p.delta_tables]
            for pid, p in PROFILES.items()
        },
    }


def portrait_exchange(image: bytes) -> dict:
    sender = PortraitSender(image)
    need = PortraitReply(Kind.PORTRAIT_NEED, sender.sha256).encode()
    return {
        "image": image.hex(),
        "offer": sender.offer().hex(),
        "chunks": [c.hex() for c in sender.on_reply(need)],
        "need": need.hex(),
        "accepted": PortraitReply(Kind.PORTRAIT_ACCEPTED, sender.sha256).encode().hex(),
        "rejected": PortraitReply(
            Kind.PORTRAIT_REJECTED, sender.sha256, RejectCode.TOO_MANY_PIXELS, "too big here"
        ).encode().hex(),
    }


@pytest.fixture(scope="module")
def exchange(tmp_path_factory) -> dict:
    if NODE is None:
        pytest.skip("node is not installed (the JS codec tests need Node.js ≥ 20)")
    folder = tmp_path_factory.mktemp("cross_runtime")
    data = {
        "tables": tables(),
        "units": unit_cases(),
        "scenarios": scenarios(),
        "fixtures": {p.name: p.read_bytes().hex() for p in sorted(FIXTURES.glob("*.bin"))},
        "portrait": portrait_exchange(shared_file("media/mona_lisa.jpg").read_bytes()),
        "goldenMotions": {
            "0": [flat(known_motion(0)), flat(known_motion(1))],
            "1": [flat(meshwarp_motion(0)), flat(meshwarp_motion(1))],
        },
    }
    (folder / "input.json").write_text(json.dumps(data))
    result = subprocess.run(
        [NODE, str(SCRIPT), str(folder / "input.json"), str(folder / "output.json")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, f"JS side failed:\n{result.stdout}\n{result.stderr}"
    output = json.loads((folder / "output.json").read_text())
    return {"input": data, "output": output, "log": result.stdout}


def test_generated_profiles_are_up_to_date() -> None:
    assert export_js.OUTPUT.read_text(encoding="utf-8") == export_js.render(), (
        "web_client/codec/generated_profiles.js is stale: python -m lpstream.protocol.export_js"
    )


def test_js_checks_pass(exchange: dict) -> None:
    """Tables, golden fixtures, Python → JS replays, portrait, fuzz (all inside the script)."""
    checks = exchange["output"]["checks"]
    failed = {name: errors for name, errors in checks.items() if errors}
    assert not failed, json.dumps(failed, indent=1)[:4000]
    expected = {"tables", "units", "fixtures", "feedback", "portrait", "fuzz"}
    expected |= {f"python→js {s['name']}" for s in exchange["input"]["scenarios"]}
    assert expected <= set(checks)


@pytest.mark.parametrize("index", range(len(KEYPOINTS_CLIPS) + 2))
def test_js_encodes_python_decodes(exchange: dict, index: int) -> None:
    scenario = exchange["output"]["jsRuns"][index]
    statuses = {d["status"] for s in scenario["steps"] for d in s["deliveries"]}
    assert {"decoded"} <= statuses
    assert replay(scenario) == []


def test_scenarios_cover_loss_keyframes_and_reference_loss(exchange: dict) -> None:
    runs = exchange["input"]["scenarios"] + exchange["output"]["jsRuns"]
    statuses = {d["status"] for r in runs for s in r["steps"] for d in s["deliveries"]}
    assert {"decoded", "stale", "no_face"} <= statuses
    packets = [bytes.fromhex(s["packet"]) for r in runs for s in r["steps"]]
    kinds = {p[1] & 0xF0 if p[1] & 0xC0 != 0xC0 else 0xC0 for p in packets}
    assert {0x10, 0x80, 0xC0, 0x20} <= kinds
    requests = [f for r in runs for s in r["steps"] for f in s["feedbackIn"] if f == "0142"]
    assert len(requests) >= len(runs)


def test_fuzzed_packets_decode_alike(exchange: dict) -> None:
    """Hostile bytes: JS and Python agree on every result (error or decoded motion)."""
    cases = exchange["output"]["fuzzCases"]
    assert len(cases) >= 500
    statuses = {case["result"].get("status") for case in cases}
    assert {"concealed", "decoded", "waiting", None} <= statuses, statuses
    for case in cases:
        decoder = MotionDecoder()
        for prefix in case["prefix"]:
            decoder.decode(bytes.fromhex(prefix))
        try:
            result = {"status": None, "shown": flat(decoder.decode(bytes.fromhex(case["packet"])))}
            result["status"] = decoder.last_status.value
        except ProtocolError:
            result = {"error": True}
        assert result == case["result"], case


def test_js_portrait_sender_to_python_receiver(exchange: dict) -> None:
    js = exchange["output"]["portraitFromJs"]
    python = exchange["input"]["portrait"]
    assert js["offer"] == python["offer"] and js["chunks"] == python["chunks"]
    receiver = PortraitReceiver()
    (reply,) = receiver.on_packet(bytes.fromhex(js["offer"]))
    assert reply.hex() == python["need"]
    replies = [r for c in js["chunks"] for r in receiver.on_packet(bytes.fromhex(c))]
    assert [r.hex() for r in replies] == [python["accepted"]]
    assert receiver.image(receiver.latest).shape[2] == 3
    print(exchange["log"])
