"""A microphone for the aiortc pages of `loopback.py` and `loopback_keypoints.py`: real speech,
encoded once as a browser tuned by `opus_sdp.py` would (16 kbit/s, 60 ms packets), played as
pre-encoded Opus packets in real time (aiortc sends a packet as is); and what a page hears.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

RATE = 48000
FRAME_MS = 60
BITRATE = 16000
TIME_BASE = fractions.Fraction(1, RATE)


def _encoder() -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = BITRATE
    codec.options = {"application": "voip", "frame_duration": str(FRAME_MS)}
    return codec  # type: ignore[return-value]


def _encode(samples: np.ndarray) -> list[bytes]:
    codec = _encoder()
    step = RATE * FRAME_MS // 1000
    packets: list[bytes] = []
    for start in range(0, len(samples) - step + 1, step):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + step], "s16", "mono")
        frame.sample_rate = RATE
        frame.pts = start
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets


def load_speech(path: Path, seconds: float = 8.0) -> np.ndarray:
    """The first `seconds` of a file's sound, mono 48 kHz s16."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
            if sum(len(c) for c in chunks) >= seconds * RATE:
                break
    return np.concatenate(chunks)[: int(seconds * RATE)].astype(np.int16)


class OpusMicrophone(MediaStreamTrack):
    """Speech as Opus packets at 60 ms, looped; `muted` sends encoded silence instead."""

    kind = "audio"

    def __init__(self, speech: np.ndarray) -> None:
        super().__init__()
        self.packets = _encode(speech)
        self.silence = _encode(np.zeros(RATE * FRAME_MS // 1000 * 4, np.int16))[1]
        self.muted = False
        self.index = 0
        self.start = time.monotonic()

    async def recv(self) -> av.Packet:  # type: ignore[override]
        self.index += 1
        await asyncio.sleep(max(0.0, self.start + self.index * FRAME_MS / 1000 - time.monotonic()))
        payload = self.silence if self.muted else self.packets[self.index % len(self.packets)]
        packet = av.Packet(payload)
        packet.pts = self.index * RATE * FRAME_MS // 1000
        packet.time_base = TIME_BASE
        return packet


async def heard_rms(track: MediaStreamTrack, seconds: float) -> tuple[int, float]:
    """(frames, RMS of the samples) that `track` decodes in `seconds`; an absent stream is
    (0, 0.0)."""
    frames = 0
    squares = 0.0
    count = 0
    deadline = asyncio.get_running_loop().time() + seconds
    while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            frame = await asyncio.wait_for(track.recv(), remaining)
        except TimeoutError:
            break
        samples = frame.to_ndarray().astype(np.float64)
        frames += 1
        squares += float(np.square(samples).sum())
        count += samples.size
    return frames, (squares / count) ** 0.5 if count else 0.0
