"""Shared helpers of the protocol tests: SPEC §3 keypoints and a lossy feedback loop."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from lpstream.liveportrait.keypoints import transform_keypoints
from lpstream.motion import Motion
from lpstream.protocol import DecodeStatus, MotionDecoder, MotionEncoder

KEYPOINT_TOLERANCE = 2e-3
ANGLE_TOLERANCE = 0.1


def keypoints(motion: Motion, canonical: np.ndarray) -> np.ndarray:
    """x = scale·(x_c·R + exp) + t, t_z ignored (SPEC §3), via the project's keypoint math."""
    return transform_keypoints(
        canonical, motion.pitch, motion.yaw, motion.roll, motion.exp, motion.scale, motion.t
    )[0]


def canonical_sets(count: int = 4, seed: int = 7) -> list[np.ndarray]:
    """Canonical keypoints of the usual LivePortrait scale: |x|,|y| ≤ 0.45, |z| ≤ 0.25."""
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([rng.uniform(-0.45, 0.45, (21, 2)), rng.uniform(-0.25, 0.25, (21, 1))], 1)
        for _ in range(count)
    ]


def keypoint_error(decoded: Motion, original: Motion, canonicals: list[np.ndarray]) -> float:
    return max(
        float(np.abs(keypoints(decoded, c) - keypoints(original, c)).max()) for c in canonicals
    )


def angle_error(decoded: Motion, original: Motion) -> float:
    return max(
        abs(decoded.pitch - original.pitch),
        abs(decoded.yaw - original.yaw),
        abs(decoded.roll - original.roll),
    )


def load_npz_motions(path) -> tuple[list[Motion], float]:
    from lpstream.protocol.model_fit import load_clip_motions

    return load_clip_motions(path), float(np.load(path)["fps"])


@dataclass
class ChannelRun:
    """Result of streaming a clip through a lossy, reordering channel."""

    packet_sizes: list[int] = field(default_factory=list)
    statuses: list[DecodeStatus] = field(default_factory=list)
    max_keypoint_error: float = 0.0
    max_angle_error: float = 0.0
    shown: int = 0


def stream(
    motions: list[Motion],
    fps: float,
    loss: float = 0.0,
    reorder: float = 0.0,
    feedback_delay: int = 3,
    seed: int = 0,
    canonicals: list[np.ndarray] | None = None,
) -> ChannelRun:
    """Send every frame; drop `loss` of packets, hold back `reorder` of them by 1-3 frames.

    Feedback travels the reliable channel and reaches the sender `feedback_delay` frames
    later. Every DECODED frame is checked against the float motion it came from.
    """
    rng = random.Random(seed)
    canonicals = canonicals or canonical_sets()
    encoder, decoder = MotionEncoder(), MotionDecoder()
    in_flight: list[tuple[int, bytes, int]] = []  # (deliver at frame, packet, source index)
    feedback: list[tuple[int, bytes]] = []
    run = ChannelRun()
    for i, motion in enumerate(motions):
        while feedback and feedback[0][0] <= i:
            encoder.on_feedback(feedback.pop(0)[1])
        packet = encoder.encode(motion, round(i * 1000 / fps))
        run.packet_sizes.append(len(packet))
        if rng.random() >= loss:
            delay = rng.randint(1, 3) if rng.random() < reorder else 0
            in_flight.append((i + delay, packet, i))
        due = sorted((p for p in in_flight if p[0] <= i), key=lambda p: p[0])
        in_flight = [p for p in in_flight if p[0] > i]
        for _, data, source in due:
            shown = decoder.decode(data)
            run.statuses.append(decoder.last_status)
            if decoder.last_status is DecodeStatus.DECODED:
                assert shown is not None
                run.shown += 1
                run.max_keypoint_error = max(
                    run.max_keypoint_error, keypoint_error(shown, motions[source], canonicals)
                )
                run.max_angle_error = max(run.max_angle_error, angle_error(shown, motions[source]))
        reply = decoder.feedback()
        if reply is not None:
            feedback.append((i + feedback_delay, reply))
    return run
