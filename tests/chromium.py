"""Debian's Chromium as the browser tests and benchmarks drive it (Playwright cannot download
its own browsers here): where it is, the flags every headless run needs, fake camera and
microphone, and the .y4m the fake camera plays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
HEADLESS_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",  # this machine refuses outside connections
    "--disable-component-update",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--enable-unsafe-swiftshader",  # WebGL2 on the CPU
]


def fake_media_args(camera: Path, microphone: Path | None = None) -> list[str]:
    """Flags for a fake camera playing `camera` (.y4m) and, if given, a fake microphone
    playing `microphone` (.wav; else Chromium's own test tone)."""
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    if microphone is not None:
        args += [
            f"--use-file-for-fake-audio-capture={microphone}",
            "--autoplay-policy=no-user-gesture-required",
        ]
    return args


def write_y4m(
    video: Path,
    out: Path,
    size: tuple[int, int] = (320, 240),
    seconds: float = 3.0,
    blank_s: float = 0.0,
) -> None:
    """A webcam-sized 25 fps .y4m of a face video (the face letterboxed, as a laptop sees it),
    then `blank_s` seconds of an empty grey scene (the fake camera loops the file)."""
    width, height = size

    def write(sink: Any, canvas: np.ndarray) -> None:
        yuv = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")
        sink.write(b"FRAME\n" + yuv.to_ndarray().tobytes())

    with av.open(str(video)) as container, out.open("wb") as sink:
        sink.write(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode())
        for index, frame in enumerate(container.decode(video=0)):
            if index >= seconds * 25:
                break
            square = cv2.resize(frame.to_ndarray(format="rgb24"), (height, height))
            canvas = np.zeros((height, width, 3), np.uint8)
            left = (width - height) // 2
            canvas[:, left : left + height] = square
            write(sink, canvas)
        for _ in range(round(blank_s * 25)):
            write(sink, np.full((height, width, 3), 96, np.uint8))


def write_speech_wav(out: Path, seconds: float = 20.0) -> Path:
    """Real speech (d6's sound track) as the 16-bit mono wav Chromium's fake microphone plays."""
    import wave

    from lpstream.node.loopback_audio import RATE, load_speech
    from tests.conftest import shared_file

    with wave.open(str(out), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(RATE)
        file.writeframes(load_speech(shared_file("media/d6.mp4"), seconds).tobytes())
    return out
