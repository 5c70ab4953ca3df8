"""Shared helpers of the protocol tests: LivePortrait keypoints (lpstream.liveportrait.keypoints)
and a lossy channel run."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpstream.liveportrait.keypoints import transform_keypoints
from lpstream.motion import Motion
from lpstream.protocol import DecodeStatus, FeedbackLoop

KEYPOINT_TOLERANCE = 2e-3
ANGLE_TOLERANCE = 0.1


def keypoints(motion: Motion, canonical: np.ndarray) -> np.ndarray:
    """x = scale·(x_c·R + exp) + t, t_z ignored (docs/protocol.md §2, error budget), via the
    project's keypoint math."""
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
    """Send every frame through a FeedbackLoop (`loss` dropped, `reorder` held back 1-3
    frames, feedback `feedback_delay` frames late) and check every DECODED frame against the
    float motion it came from."""
    canonicals = canonicals or canonical_sets()
    loop = FeedbackLoop(feedback_delay=feedback_delay, loss=loss, reorder=reorder, seed=seed)
    result = loop.run(motions, fps)
    run = ChannelRun(result.sizes, result.statuses)
    for source, shown in result.decoded():
        run.shown += 1
        run.max_keypoint_error = max(
            run.max_keypoint_error, keypoint_error(shown, motions[source], canonicals)
        )
        run.max_angle_error = max(run.max_angle_error, angle_error(shown, motions[source]))
    return run
