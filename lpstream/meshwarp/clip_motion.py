"""Meshwarp motion of a whole video file (codec table fitting, wire-cost benchmark and tests)."""

from __future__ import annotations

from pathlib import Path

import av

from lpstream.meshwarp.sender import MeshwarpSender
from lpstream.motion import Motion


def motions_from_video(
    path: str | Path, max_frames: int | None = None
) -> tuple[list[Motion], float]:
    """(motion of every frame with a face, frames per second) as the live sender sees them:
    one MeshwarpSender, frame timestamps from the file's average rate. Frames without a
    trackable face are left out."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        sender = MeshwarpSender(fps=fps)
        motions: list[Motion] = []
        try:
            for index, frame in enumerate(container.decode(stream)):
                if max_frames is not None and index >= max_frames:
                    break
                rgb = frame.to_ndarray(format="rgb24")
                motion = sender.extract(rgb, round(index * 1000 / fps)).motion
                if motion is not None:
                    motion.extra.clear()  # diagnostics only; never crosses the wire
                    motions.append(motion)
        finally:
            sender.close()
    return motions, fps
