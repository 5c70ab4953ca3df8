"""Fit the trained statistics of a codec profile (its probability tables) to motion clips.

`python -m lpstream.protocol.table_fit` fits KEYPOINTS to the shared LivePortrait motion
(../shared/motion/*.npz) and rewrites keypoints_statistics.py;
`--profile NAME CLIP.npz|DIR ...` fits any profile to other .npz clips and rewrites
`<name>_statistics.py`. Clips of landmark motion are extracted from videos by the built-in
backend's own command (docs/protocol.md §4), which calls `fit_and_write`.

The statistics are 4 numbers per field plus 17 gap factors and a histogram per table level,
so a few clips are plenty; the bitrate benchmark also reports leave-one-clip-out figures
(`refit`) to show they do not overfit. Fitting never changes a profile: `refit` returns a new
one, and a decoder learns it with `MotionDecoder(profiles=(refitted,))`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from lpstream.motion import Motion
from lpstream.protocol import motion_fields as mf
from lpstream.protocol import probability_tables as pt
from lpstream.protocol.feedback_loop import FeedbackLoop
from lpstream.protocol.motion_codec import MotionDecoder, MotionEncoder
from lpstream.protocol.profiles import KEYPOINTS, PROFILES, CodecProfile
from lpstream.shared_data import shared_dir

Clip = tuple[list[Motion], float]
"""A clip's motions and its frame rate."""

FIT_GAP = 3
NUM_GAP_FACTORS = 17
FIT_LOSSES = (0.0, 0.1)
"""The histograms come from the real codec's contexts at these packet losses (loss makes
the reference gaps other than the usual 3-4)."""


def load_clip_motions(path: Path) -> list[Motion]:
    """The motions of a .npz clip (arrays pitch, yaw, roll, t, scale, exp[, eye_ratio,
    lip_ratio], one row per frame)."""
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


def load_clip(path: Path) -> Clip:
    """A .npz clip with its `fps`."""
    return load_clip_motions(path), float(np.load(path)["fps"])


def _closed_loop(
    units: list[mf.FieldValues], gap: int, coded: list[int], profile: CodecProfile
) -> list[list[int]]:
    """Residuals of constant-gap delta coding (what the codec does in steady state)."""
    decoded: list[list[int]] = []
    residuals = []
    for n, frame in enumerate(units):
        if n < gap:
            decoded.append(list(frame.values))
            continue
        ref = decoded[n - gap]
        values = [0] * mf.NUM_FIELDS
        ks = [0] * mf.NUM_FIELDS
        for f in coded:
            step = profile.step(f, values[mf.SCALE])
            k = mf.quantise_residual(frame.values[f], ref[f], step)
            if abs(k) == 1 and abs(frame.values[f] - ref[f]) < profile.dead_zone * step:
                k = 0  # the encoder's hysteresis (never true for dead_zone 0.5)
            values[f] = mf.clamp(ref[f] + k * step, f)
            ks[f] = k
        decoded.append(values)
        residuals.append(ks)
    return residuals


def fit_field_statistics(clips: list[Clip], profile: CodecProfile) -> pt.ResidualStatistics:
    """Every per-field statistic and the gap factors; no magnitude histograms yet."""
    units = [[mf.motion_to_units(m) for m in motions] for motions, _ in clips]
    everything = [u for clip in units for u in clip]
    neutral = [0] * mf.NUM_FIELDS
    key_abs = [1.0] * mf.NUM_FIELDS
    for f in range(mf.NUM_FIELDS):
        values = [u.values[f] for u in everything if f in u.coded_fields()]
        if not values:
            continue
        neutral[f] = int(np.median(values))
        steps = [
            profile.step(f, u.values[mf.SCALE])
            for u in everything
            if f in u.coded_fields()
        ]
        key_abs[f] = max(0.5, float(np.mean(np.abs(np.subtract(values, neutral[f])) / steps)))
    per_gap = {}
    for gap in range(1, NUM_GAP_FACTORS):
        sums = np.zeros(mf.NUM_FIELDS)
        counts = np.zeros(mf.NUM_FIELDS)
        for clip in units:
            if not clip:
                continue
            coded = clip[0].coded_fields()
            res = _closed_loop(clip, gap, coded, profile)
            if res:
                arr = np.abs(np.array(res, dtype=float))
                sums[coded] += arr[:, coded].sum(0)
                counts[coded] += len(res)
        per_gap[gap] = sums / np.maximum(counts, 1)
    mean_abs = tuple(max(0.01, float(x)) for x in per_gap[FIT_GAP])
    reference = sum(mean_abs)
    gap_factor = [1.0] * NUM_GAP_FACTORS
    for gap in range(1, NUM_GAP_FACTORS):
        gap_factor[gap] = float(np.sum(np.maximum(per_gap[gap], 0.01)) / reference)
    gap_factor[0] = gap_factor[1]
    return pt.ResidualStatistics(
        neutral=tuple(neutral),
        mean_abs=mean_abs,
        mean_speed=mean_abs,
        key_mean_abs=tuple(key_abs),
        gap_factor=tuple(gap_factor),
        delta_magnitude_counts=(),
    )


def fit_delta_magnitudes(clips: list[Clip], profile: CodecProfile) -> list[list[int]]:
    """Histogram of |delta residual| per table level, from the real codec's own contexts
    (feedback three frames late, at each of FIT_LOSSES)."""
    level_of_table = {id(table): level for level, table in enumerate(profile.delta_tables)}
    counts: list[list[int]] = [[] for _ in pt.THRESHOLDS]

    def observe(index: int, table: pt.MagnitudeTable, k: int) -> None:
        level = level_of_table.get(id(table))
        if level is None:
            return  # a keyframe table
        magnitude = abs(k)
        if magnitude > pt.TRAINED_MAGNITUDE_MAX:
            return
        row = counts[level]
        row.extend([0] * (magnitude + 1 - len(row)))
        row[magnitude] += 1

    rng = np.random.default_rng(0)
    for loss in FIT_LOSSES:
        for motions, fps in clips:
            # Both ends observe (a received packet counts twice): the tables in the
            # repository were fitted so.
            loop = FeedbackLoop(
                loss=loss,
                rng=rng,
                encoder=MotionEncoder(profile=profile, observer=observe),
                decoder=MotionDecoder(profiles=(profile,), observer=observe),
            )
            loop.run(motions, fps)
    return counts


def fit_statistics(clips: list[Clip], profile: CodecProfile) -> pt.ResidualStatistics:
    """All the statistics of `profile`'s quantisers on `clips` (full precision)."""
    statistics = fit_field_statistics(clips, profile)
    counts = fit_delta_magnitudes(clips, replace(profile, statistics=statistics))
    counts = [
        row if pt.level_centre(level) <= pt.TRAINED_LEVEL_MAX_MEAN else []
        for level, row in enumerate(counts)
    ]
    while counts and not counts[-1]:
        counts.pop()
    return replace(statistics, delta_magnitude_counts=tuple(tuple(row) for row in counts))


def refit(profile: CodecProfile, clips: list[Clip]) -> CodecProfile:
    """A copy of `profile` with statistics fitted to `clips` (same id, name and steps)."""
    return replace(profile, statistics=fit_statistics(clips, profile))


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


def statistics_path(profile: CodecProfile) -> Path:
    """The generated file profiles.py reads `profile`'s statistics from."""
    return Path(__file__).with_name(f"{profile.name}_statistics.py")


def write_statistics(statistics: pt.ResidualStatistics, path: Path, title: str) -> None:
    """`title`: what the file holds and the command that fitted it (first docstring line)."""
    text = (
        f'"""{title}.\n\n'
        "Read by profiles.py as a probability_tables.ResidualStatistics. Per field (order of\n"
        "motion_fields: scale, pitch, yaw, roll, tx, ty, exp[63], eye[2], lip), in quantiser\n"
        "steps: NEUTRAL = keyframe prediction (base units), KEY_MEAN_ABS = mean |keyframe\n"
        "residual|, MEAN_ABS = mean |delta residual| at reference gap 3, MEAN_SPEED = typical\n"
        "|residual| of the reference (speed context); GAP_FACTOR[g] = residual growth at gap g\n"
        "relative to gap 3; DELTA_MAGNITUDE_COUNTS[level] = histogram of |delta residual| per\n"
        "table level. Changing them changes the wire format.\n"
        '"""\n\n'
    )
    for item in fields(statistics):
        value = getattr(statistics, item.name)
        rows = [list(v) if isinstance(v, tuple) else v for v in value]
        text += _format(item.name.upper(), rows) + "\n"
    path.write_text(text.rstrip() + "\n")


def fit_and_write(profile: CodecProfile, clips: list[Clip], command: str) -> Path:
    """Fit `profile` to `clips` and rewrite its statistics file, naming `command` in it."""
    path = statistics_path(profile)
    title = f"Trained statistics of the {profile.name.upper()} codec profile, fitted by"
    title += f"\n`{command}`"
    write_statistics(fit_statistics(clips, profile), path, title)
    return path


def _clip_paths(arguments: list[str]) -> list[Path]:
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        paths += sorted(path.glob("*.npz")) if path.is_dir() else [path]
    return paths


def main(argv: list[str] | None = None) -> int:
    names = {profile.name: profile for profile in PROFILES.values()}
    parser = argparse.ArgumentParser(
        prog="python -m lpstream.protocol.table_fit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--profile", choices=sorted(names), default=KEYPOINTS.name)
    parser.add_argument(
        "clips", nargs="*", help=".npz motion clips or folders of them "
        "(default for keypoints: the shared motion/ folder)"
    )
    args = parser.parse_args(argv)
    profile = names[args.profile]
    command = "python -m lpstream.protocol.table_fit"
    if profile is not KEYPOINTS:
        command += f" --profile {profile.name}"
    if args.clips:
        paths = _clip_paths(args.clips)
    elif profile is KEYPOINTS:
        paths = _clip_paths([str(shared_dir() / "motion")])
    else:
        parser.error(f"profile {profile.name} has no default clips: pass .npz motion clips")
    if not paths:
        print("no .npz motion clips found", file=sys.stderr)
        return 1
    path = fit_and_write(profile, [load_clip(p) for p in paths], command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
