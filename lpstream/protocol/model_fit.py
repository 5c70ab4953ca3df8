"""Fit the static motion-model constants of a codec profile.

LivePortrait profile: `python -m lpstream.protocol.model_fit [motion_dir]` fits the shared
LivePortrait motion (motion/*.npz) and rewrites motion_tables.py.
Meshwarp profile: `python -m lpstream.protocol.model_fit --profile meshwarp` extracts the
built-in backend's motion from the shared driving videos (media/d0, d3, d6.mp4) and rewrites
motion_tables_meshwarp.py.
The model has 4 numbers per field plus 17 gap factors, so a few clips are plenty; the
bitrate benchmark also reports leave-one-clip-out figures to show it does not overfit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lpstream.motion import Motion
from lpstream.protocol import motion_model as mm
from lpstream.protocol.profiles import KEYPOINTS, CodecProfile, profile_for_backend
from lpstream.shared_data import shared_dir

FIT_GAP = 3
NUM_GAP_FACTORS = 17


def load_clip_motions(path: Path) -> list[Motion]:
    data = np.load(path)
    eye = data["eye_ratio"] if "eye_ratio" in data.files else None
    lip = data["lip_ratio"] if "lip_ratio" in data.files else None
    return [
        Motion(
            data["pitch"][i], data["yaw"][i], data["roll"][i], data["t"][i], data["scale"][i],
            data["exp"][i],
            None if eye is None else eye[i],
            None if lip is None else float(lip[i]),
        )
        for i in range(len(data["scale"]))
    ]


def _closed_loop(
    units: list[mm.FieldValues], gap: int, fields: list[int], profile: CodecProfile
):
    """Residuals of constant-gap delta coding (what the codec does in steady state)."""
    decoded: list[list[int]] = []
    residuals = []
    for n, frame in enumerate(units):
        if n < gap:
            decoded.append(list(frame.values))
            continue
        ref = decoded[n - gap]
        values = [0] * mm.NUM_FIELDS
        ks = [0] * mm.NUM_FIELDS
        for f in fields:
            step = profile.step(f, values[mm.SCALE])
            k = mm.quantise_residual(frame.values[f], ref[f], step)
            if abs(k) == 1 and abs(frame.values[f] - ref[f]) < profile.dead_zone * step:
                k = 0  # the encoder's hysteresis (never true for dead_zone 0.5)
            values[f] = mm.clamp(ref[f] + k * step, f)
            ks[f] = k
        decoded.append(values)
        residuals.append(ks)
    return residuals


def fit(
    clips: list[list[Motion]], profile: CodecProfile = KEYPOINTS
) -> dict[str, list[float] | list[int]]:
    units = [[mm.motion_to_units(m) for m in clip] for clip in clips]
    everything = [u for clip in units for u in clip]
    neutral = [0] * mm.NUM_FIELDS
    key_abs = [1.0] * mm.NUM_FIELDS
    mean_abs = [0.01] * mm.NUM_FIELDS
    for f in range(mm.NUM_FIELDS):
        values = [u.values[f] for u in everything if f in u.coded_fields()]
        if not values:
            continue
        neutral[f] = int(np.median(values))
        steps = [
            profile.step(f, u.values[mm.SCALE])
            for u in everything
            if f in u.coded_fields()
        ]
        key_abs[f] = max(0.5, float(np.mean(np.abs(np.subtract(values, neutral[f])) / steps)))
    per_gap = {}
    for gap in range(1, NUM_GAP_FACTORS):
        sums = np.zeros(mm.NUM_FIELDS)
        counts = np.zeros(mm.NUM_FIELDS)
        for clip in units:
            if not clip:
                continue
            fields = clip[0].coded_fields()
            res = _closed_loop(clip, gap, fields, profile)
            if res:
                arr = np.abs(np.array(res, dtype=float))
                sums[fields] += arr[:, fields].sum(0)
                counts[fields] += len(res)
        per_gap[gap] = sums / np.maximum(counts, 1)
    mean_abs = [max(0.01, float(x)) for x in per_gap[FIT_GAP]]
    reference = sum(mean_abs)
    gap_factor = [1.0] * NUM_GAP_FACTORS
    for gap in range(1, NUM_GAP_FACTORS):
        gap_factor[gap] = float(np.sum(np.maximum(per_gap[gap], 0.01)) / reference)
    gap_factor[0] = gap_factor[1]
    return {
        "NEUTRAL": neutral,
        "MEAN_ABS": mean_abs,
        "MEAN_SPEED": mean_abs,
        "KEY_MEAN_ABS": key_abs,
        "GAP_FACTOR": gap_factor,
    }


def fit_delta_magnitudes(
    clips: list[tuple[list[Motion], float]], profile: CodecProfile = KEYPOINTS
) -> list[list[int]]:
    """Histogram of |delta residual| per model level, from the real codec's own contexts
    (feedback three frames late, plus a 10 %-loss run for other reference gaps)."""
    from lpstream.protocol import motion_codec

    level_of_model = {id(model): level for level, model in enumerate(profile.delta_models)}
    counts: list[list[int]] = [[] for _ in mm.THRESHOLDS]

    def observe(index: int, model: mm.MagnitudeModel, k: int) -> None:
        level = level_of_model.get(id(model))
        if level is None:
            return
        magnitude = abs(k)
        if magnitude > mm.TRAINED_MAGNITUDE_MAX:
            return
        row = counts[level]
        row.extend([0] * (magnitude + 1 - len(row)))
        row[magnitude] += 1

    rng = np.random.default_rng(0)
    motion_codec._FIELD_OBSERVER = observe
    try:
        for loss in (0.0, 0.1):
            for motions, fps in clips:
                encoder = motion_codec.MotionEncoder(profile=profile)
                decoder = motion_codec.MotionDecoder()
                pending: list[tuple[int, bytes]] = []
                for i, motion in enumerate(motions):
                    while pending and pending[0][0] <= i:
                        encoder.on_feedback(pending.pop(0)[1])
                    packet = encoder.encode(motion, round(i * 1000 / fps))
                    if rng.random() < loss:
                        continue
                    decoder.decode(packet)
                    feedback = decoder.feedback()
                    if feedback is not None:
                        pending.append((i + 3, feedback))
    finally:
        motion_codec._FIELD_OBSERVER = None
    return counts


def fit_all(
    clips: list[tuple[list[Motion], float]],
    constants: dict,
    profile: CodecProfile = KEYPOINTS,
) -> list[list[int]]:
    """Install the per-field constants, then histogram residuals under their contexts."""
    for name, values in constants.items():
        setattr(profile.tables, name, values)
    profile.tables.DELTA_MAGNITUDE_COUNTS = []
    profile.rebuild_delta_models()
    counts = fit_delta_magnitudes(clips, profile)
    counts = [
        row if mm.level_centre(level) <= mm.TRAINED_LEVEL_MAX_MEAN else []
        for level, row in enumerate(counts)
    ]
    while counts and not counts[-1]:
        counts.pop()
    profile.tables.DELTA_MAGNITUDE_COUNTS = counts
    profile.rebuild_delta_models()
    return counts


def _format(name: str, values: list) -> str:
    if values and isinstance(values[0], list):
        rows = []
        for row in values:
            body = _format("x", row).split("\n")[1:-2]
            rows.append("    [\n" + "\n".join("    " + line for line in body) + "\n    ],")
        return f"{name} = [\n" + "\n".join(rows) + "\n]\n"
    items = [str(v) if isinstance(v, int) else f"{v:.4g}" for v in values]
    lines, line = [], "    "
    for item in items:
        if len(line) + len(item) + 2 > 96:
            lines.append(line.rstrip())
            line = "    "
        line += item + ", "
    lines.append(line.rstrip())
    return f"{name} = [\n" + "\n".join(lines) + "\n]\n"


MESHWARP_FIT_VIDEOS = ("d0.mp4", "d3.mp4", "d6.mp4")
"""Shared driving videos the meshwarp profile is fitted on (carphone stays out of sample)."""


def write_tables(constants: dict, path: Path, command: str = "") -> None:
    text = (
        '"""Static motion-model constants, fitted by'
        + ("\n" if command else " ")
        + f'`python -m lpstream.protocol.model_fit{command}`.\n\n'
        "Per field (order in motion_model: scale, pitch, yaw, roll, tx, ty, exp[63], eye[2],\n"
        "lip), in quantiser steps: NEUTRAL = keyframe prediction (base units), KEY_MEAN_ABS =\n"
        "mean |keyframe residual|, MEAN_ABS = mean |delta residual| at reference gap 3,\n"
        "MEAN_SPEED = typical |residual| of the reference (speed context); GAP_FACTOR[g] =\n"
        "residual growth at gap g relative to gap 3; DELTA_MAGNITUDE_COUNTS[level] = histogram\n"
        "of |delta residual| per model level. Changing them changes the wire format.\n"
        '"""\n\n'
    )
    for name, values in constants.items():
        text += _format(name, values) + "\n"
    path.write_text(text.rstrip() + "\n")


def meshwarp_clips(media_dir: Path | None = None) -> list[tuple[list[Motion], float]]:
    """The meshwarp sender's motion of the shared driving videos (MediaPipe, ~15 s)."""
    from lpstream.meshwarp.clip_motion import motions_from_video

    folder = media_dir or shared_dir() / "media"
    return [motions_from_video(folder / name) for name in MESHWARP_FIT_VIDEOS]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    profile = KEYPOINTS
    command = ""
    if args[:1] == ["--profile"] and len(args) > 1:
        profile = profile_for_backend(args[1])
        command = f" --profile {profile.name}"
        args = args[2:]
    if profile is KEYPOINTS:
        folder = Path(args[0]) if args else shared_dir() / "motion"
        paths = sorted(folder.glob("*.npz"))
        with_fps = [(load_clip_motions(p), float(np.load(p)["fps"])) for p in paths]
    else:
        with_fps = meshwarp_clips(Path(args[0]) if args else None)
    target = Path(profile.tables.__file__)
    constants = fit([clip for clip, _ in with_fps], profile)
    constants["DELTA_MAGNITUDE_COUNTS"] = []
    constants["DELTA_MAGNITUDE_COUNTS"] = fit_all(with_fps, constants, profile)
    write_tables(constants, target, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
