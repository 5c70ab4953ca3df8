"""`python -m lpstream animate SOURCE DRIVING -o OUT.mp4`: animate a portrait, file to file.

Like LivePortrait's inference script: every driving frame goes through the sender (frame ->
motion) and the receiver (source + motion -> frame), exactly as in a call, and the result is
written as H.264 with the driving video's audio. The summary says what the motion would
cost on the wire per frame.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from lpstream.backend import AvatarRenderer, BackendOptions, Controls, MotionSender
from lpstream.backend_registry import backend_names, choose_backend
from lpstream.errors import ImageError, LpstreamError, NoFaceError
from lpstream.motion import Motion
from lpstream.protocol import FEEDBACK_DELAY, CodecProfile, FeedbackLoop

logger = logging.getLogger("lpstream.animate")

DEFAULT_MAX_SIZE = 1024


OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
"""Containers that take the H.264 video and AAC audio written here."""


class InputError(LpstreamError):
    """A missing or unreadable input file."""


class OutputError(LpstreamError):
    """The output file cannot be written where or how it was asked for."""


@dataclass
class AnimateSummary:
    """What one run produced."""

    frames: int = 0
    frames_without_face: int = 0
    wire_bytes: list[int] = field(default_factory=list)
    wire_format: str = ""
    audio: str = "none"
    fps: float = 25.0

    def bytes_per_frame(self) -> float:
        return float(np.mean(self.wire_bytes)) if self.wire_bytes else 0.0


MIN_SOURCE_SIZE = 64
"""Smaller sources cannot hold a detectable face."""


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= minimum (so a typo fails at once, not as an empty video)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lpstream animate",
        description="Animate a source portrait with a driving video (file to file).",
    )
    parser.add_argument("source", type=Path, help="source portrait (image file)")
    parser.add_argument("driving", type=Path, help="driving video (any format FFmpeg reads)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .mp4")
    parser.add_argument("--backend", default="auto", choices=backend_names())
    parser.add_argument("--weights", type=Path, default=None, help="LivePortrait weights folder")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (LivePortrait)")
    parser.add_argument(
        "--max-size",
        type=int_at_least(MIN_SOURCE_SIZE),
        default=DEFAULT_MAX_SIZE,
        help=f"downscale a larger source so its longer side is this (default {DEFAULT_MAX_SIZE})",
    )
    parser.add_argument("--eye-open", type=float, default=None, help="fixed eye-open ratio")
    parser.add_argument("--lip-open", type=float, default=None, help="fixed lip-open ratio")
    parser.add_argument("--head-motion", type=float, default=1.0, help="head-motion multiplier")
    parser.add_argument("--no-stitching", action="store_true", help="let the background move")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--max-frames",
        type=int_at_least(1),
        default=None,
        help="stop after this many driving frames",
    )
    return parser.parse_args(list(argv))


def read_source(path: Path, max_size: int) -> np.ndarray:
    """RGB uint8 source with even sides (H.264 needs them), at most `max_size` on its long side."""
    if path.is_dir():
        raise InputError(f"source image {path} is a folder, not an image file")
    if not path.is_file():
        raise InputError(f"source image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageError(f"{path} is not an image OpenCV can read (use JPEG, PNG, WebP ...)")
    height, width = image.shape[:2]
    if max(height, width) > max_size:
        factor = max_size / max(height, width)
        size = (max(2, round(width * factor)), max(2, round(height * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    image = image[: height - height % 2, : width - width % 2]
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ImageError(f"{path} is too small ({width}×{height})")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def open_driving(path: Path) -> av.container.InputContainer:
    if path.is_dir():
        raise InputError(f"driving video {path} is a folder, not a video file")
    if not path.is_file():
        raise InputError(f"driving video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise InputError(f"{path} is not a video FFmpeg can read: {error}") from error
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} has no video stream")
    return container


def check_output_path(path: Path) -> None:
    """Fail before any work if `path` can never hold the output video."""
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name such as {path / 'out.mp4'}")
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(
            f"output {path} must end in {', '.join(OUTPUT_SUFFIXES)} (H.264 + AAC containers)"
        )


def decoded_frames(packet: av.Packet, source: str) -> list[Any]:
    """The frames of one driving packet; a decoding failure is the input's fault, so it
    becomes an InputError naming the file instead of a PyAV traceback."""
    try:
        return list(packet.decode())
    except av.error.FFmpegError as error:
        raise InputError(f"{source} cannot be decoded as video ({error})") from error


class WireCostMeter:
    """Bytes each motion costs on the wire in a call: the real motion encoder with the
    backend's codec profile, the real decoder, and the decoder's acknowledgements fed back
    FEEDBACK_DELAY frames late (`lpstream.protocol.FeedbackLoop`, as bench/bitrate.py
    measures). Without the feedback every frame would be a keyframe and the estimate ~2-3×
    too high."""

    def __init__(self, profile: CodecProfile) -> None:
        self.profile = profile
        self.loop = FeedbackLoop(profile, feedback_delay=FEEDBACK_DELAY)

    @property
    def description(self) -> str:
        return f"lpstream motion codec, {self.profile.name} profile"

    def __call__(self, motion: Motion, timestamp_ms: int) -> int:
        return len(self.loop.step(motion, timestamp_ms).packet)


def _progress(total: int | None, disable: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="animate", disable=disable, file=sys.stderr)


def animate(
    source_rgb: np.ndarray,
    driving: av.container.InputContainer,
    output_path: Path,
    sender: MotionSender,
    renderer: AvatarRenderer,
    controls: Controls,
    codec_profile: CodecProfile,
    show_progress: bool = True,
    max_frames: int | None = None,
) -> AnimateSummary:
    """Drive `renderer` (source already set) from every frame of `driving`; write `output_path`.

    `codec_profile` is the backend's (`Backend.codec_profile`): the summary's wire cost is
    what the sender's motion costs in a call."""
    summary = AnimateSummary()
    wire_size = WireCostMeter(codec_profile)
    summary.wire_format = wire_size.description
    video_in = driving.streams.video[0]
    audio_in = driving.streams.audio[0] if driving.streams.audio else None
    rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
    summary.fps = float(rate)
    height, width = source_rgb.shape[:2]
    total = video_in.frames or None
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames

    driving_name = str(driving.name)
    output = av.open(str(output_path), "w")
    try:
        video_out = output.add_stream("libx264", rate=rate)
        video_out.width, video_out.height = width, height
        video_out.pix_fmt = "yuv420p"
        video_out.options = {"crf": "18", "preset": "veryfast"}
        audio_out, resampler = None, None
        if audio_in is not None:
            if audio_in.codec_context.name == "aac":
                audio_out = output.add_stream_from_template(audio_in)
                summary.audio = "copied (aac)"
            else:
                sample_rate = audio_in.codec_context.sample_rate or 48000
                audio_out = output.add_stream("aac", rate=sample_rate)
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=audio_out.rate)
                summary.audio = f"transcoded {audio_in.codec_context.name} -> aac"

        last_motion: Motion | None = None
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        end_time: float | None = None
        with _progress(total, not show_progress) as bar:
            for packet in driving.demux(*streams):
                if max_frames is not None and summary.frames >= max_frames:
                    if end_time is None:
                        end_time = summary.frames / summary.fps
                    if packet.stream.type == "video":
                        continue  # keep copying audio up to the end of the written video
                    if packet.pts is not None and packet.time_base is not None:
                        if float(packet.pts * packet.time_base) >= end_time:
                            continue
                if packet.stream.type == "audio":
                    if audio_out is None or packet.dts is None:
                        continue
                    if resampler is None:
                        packet.stream = audio_out
                        output.mux(packet)
                    else:
                        for frame in decoded_frames(packet, driving_name):
                            for resampled in resampler.resample(frame):
                                output.mux(audio_out.encode(resampled))
                    continue
                for frame in decoded_frames(packet, driving_name):
                    if max_frames is not None and summary.frames >= max_frames:
                        break
                    rgb = frame.to_ndarray(format="rgb24")
                    timestamp_ms = round(frame.time * 1000) if frame.time is not None else None
                    motion = sender.extract(rgb, timestamp_ms).motion
                    if motion is None:
                        summary.frames_without_face += 1
                        motion = last_motion
                    if motion is None:
                        rendered = source_rgb  # nothing to follow yet: the still portrait
                    else:
                        ms = timestamp_ms if timestamp_ms is not None else summary.frames
                        summary.wire_bytes.append(wire_size(motion, ms))
                        rendered = renderer.render(motion, controls)
                        last_motion = motion
                    out_frame = av.VideoFrame.from_ndarray(rendered, format="rgb24")
                    output.mux(video_out.encode(out_frame))
                    summary.frames += 1
                    bar.update(1)
        output.mux(video_out.encode(None))
        if audio_out is not None and resampler is not None:
            output.mux(audio_out.encode(None))
    finally:
        output.close()
    return summary


def remove_partial(path: Path) -> None:
    """Delete a half-written output so a failed run leaves no playable-looking stub."""
    if path.is_file():
        path.unlink(missing_ok=True)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with ExitStack() as opened:
            check_output_path(args.output)
            source = read_source(args.source, args.max_size)
            driving = open_driving(args.driving)
            opened.callback(driving.close)
            options = BackendOptions(weights=args.weights, device=args.device)
            choice = choose_backend(args.backend, options)  # logs "backend: NAME (REASON)"
            sender = choice.backend.create_sender(options)
            opened.callback(sender.close)
            renderer = choice.backend.create_renderer(options)
            opened.callback(renderer.close)
            renderer.set_source(source)
            controls = Controls(
                eye_open=args.eye_open,
                lip_open=args.lip_open,
                head_motion=args.head_motion,
                stitching=not args.no_stitching,
            )
            try:
                args.output.parent.mkdir(parents=True, exist_ok=True)
                summary = animate(
                    source,
                    driving,
                    args.output,
                    sender,
                    renderer,
                    controls,
                    choice.backend.codec_profile,
                    show_progress=not args.no_progress,
                    max_frames=args.max_frames,
                )
                if summary.frames == 0:
                    raise InputError(f"{args.driving} has no decodable video frames")
            except (av.error.FFmpegError, OSError) as error:
                # Reading errors were turned into InputError above; what is left is the output.
                remove_partial(args.output)
                raise OutputError(f"cannot write {args.output} ({error})") from error
            except LpstreamError:
                remove_partial(args.output)
                raise
    except NoFaceError as error:
        print(f"error: {args.source}: {error}", file=sys.stderr)
        return 1
    except LpstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    fps = summary.fps
    per_frame = summary.bytes_per_frame()
    print(
        f"wrote {args.output}: {summary.frames} frames, {source.shape[1]}×{source.shape[0]}, "
        f"audio {summary.audio}; {summary.frames_without_face} frames without a face"
    )
    print(
        f"motion on the wire ({summary.wire_format}): {per_frame:.1f} bytes/frame "
        f"= {per_frame * 8 * fps / 1000:.1f} kbit/s at {fps:g} fps"
    )
    return 0
