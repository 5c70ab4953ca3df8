"""aiortc peers that behave like web_client/: for the node's tests and the call benchmark.

`LoopbackBrowser` joins through real signaling, offers its camera plus receive slots,
opens `control`, uploads a portrait; `FileCamera` plays a real face video as a webcam.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect

from lpstream.node.avatar_track import placeholder_frame
from lpstream.node.shutdown import bounded


def bundled_peer_connection() -> RTCPeerConnection:
    """As a browser does: every transceiver on one transport (see `peer_connection.py`)."""
    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def load_face_frames(path: Path, count: int = 50) -> list[np.ndarray]:
    """The first `count` frames of a face video, letterboxed to a 320×240 webcam frame."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            square = cv2.resize(frame.to_ndarray(format="rgb24"), (240, 240))
            canvas = np.zeros((240, 320, 3), np.uint8)
            canvas[:, 40:280] = square
            frames.append(canvas)
            if len(frames) == count:
                break
    return frames


class FileCamera(MediaStreamTrack):
    """A webcam that plays face frames back and forth at 25 fps."""

    kind = "video"

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__()
        self.frames = frames + frames[::-1]
        self.index = 0
        self.start = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        self.index += 1
        await asyncio.sleep(max(0.0, self.start + self.index / 25 - time.monotonic()))
        frame = av.VideoFrame.from_ndarray(self.frames[self.index % len(self.frames)], "rgb24")
        frame.pts = self.index * 3600
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


@dataclass
class LoopbackBrowser:
    """What web_client/ does, in Python: join, offer camera + 3 receive slots, `control`."""

    url: str
    room: str
    name: str
    node: str | None = None
    resume: str | None = None
    """The secret of this name's last join: set, the join is a reconnect (as a reloaded tab)."""
    ws: ClientConnection | None = None
    pc: RTCPeerConnection = field(default_factory=lambda: bundled_peer_connection())
    control: Any = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[int, MediaStreamTrack] = field(default_factory=dict)
    audio: dict[int, MediaStreamTrack] = field(default_factory=dict)
    """The voice of each tile, by slot (audio transceiver i is tile i)."""

    async def join(
        self, camera: MediaStreamTrack, microphone: MediaStreamTrack | None = None
    ) -> None:
        self.ws = await connect(self.url)
        await self.ws.send(
            json.dumps(
                {
                    "type": "join",
                    "room": self.room,
                    "name": self.name,
                    "node": self.node,
                    "resume": self.resume,
                }
            )
        )
        joined = await self._next("joined")
        self.resume = joined["resume"]
        self.pc.addTransceiver(camera, direction="sendrecv")
        for _ in range(2):
            self.pc.addTransceiver("video", direction="recvonly")
        audio = add_audio_slots(self.pc, 3, microphone)
        self.control = self.pc.createDataChannel("control")
        opened = asyncio.Event()
        self.control.on("open", opened.set)
        self.control.on("message", lambda m: self.messages.append(json.loads(m)))

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                slot = next(i for i, t in enumerate(audio) if t.receiver.track is track)
                self.audio[slot] = track
                return
            slot = next(
                i for i, t in enumerate(self.pc.getTransceivers()) if t.receiver.track is track
            )
            self.tracks[slot] = track

        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.ws.send(
            json.dumps(
                {
                    "type": "signal",
                    "to": joined["node"],
                    "data": {"kind": "offer", "sdp": self.pc.localDescription.sdp},
                }
            )
        )
        answer = await self._next("signal")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["data"]["sdp"], "answer"))
        await asyncio.wait_for(opened.wait(), 15)

    async def _next(self, kind: str) -> dict[str, Any]:
        assert self.ws is not None
        return await next_signaling_message(self.ws, kind)

    def upload(self, encoded: bytes, sha256: str | None = None) -> None:
        upload_portrait(self.control, encoded, sha256)

    async def wait_message(self, kind: str, limit_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            found = [m for m in self.messages if m["type"] == kind]
            if found:
                self.messages.remove(found[0])
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}: no {kind!r} message; got {self.messages[-5:]}")

    async def close(self) -> None:
        await bounded(self.pc.close(), "closing a loopback browser's peer connection")
        if self.ws is not None:
            await bounded(self.ws.close(), "closing a loopback browser's websocket")


def add_audio_slots(
    pc: RTCPeerConnection, slots: int, microphone: MediaStreamTrack | None
) -> list[Any]:
    """What web_client/call.js offers: one audio transceiver per tile, the first also
    sending the microphone."""
    return [
        pc.addTransceiver(microphone, direction="sendrecv")
        if slot == 0 and microphone is not None
        else pc.addTransceiver("audio", direction="recvonly")
        for slot in range(slots)
    ]


async def next_signaling_message(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next signaling message of `kind` (an `error` one fails the test at once)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert message["type"] != "error", message
        if message["type"] == kind:
            return message


def upload_portrait(control: Any, encoded: bytes, sha256: str | None = None) -> None:
    """What the page does: a `portrait` header, the bytes in 16 KiB chunks, `portrait-end`."""
    sha = sha256 or hashlib.sha256(encoded).hexdigest()
    control.send(json.dumps({"type": "portrait", "bytes": len(encoded), "sha256": sha}))
    for start in range(0, len(encoded), 16384):
        control.send(encoded[start : start + 16384])
    control.send(json.dumps({"type": "portrait-end"}))


def jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return data.tobytes()


async def avatar_frames(
    track: MediaStreamTrack, wanted: int, limit_s: float = 40
) -> list[np.ndarray]:
    """Avatar frames that are not the 'nobody here' placeholder."""
    placeholder = placeholder_frame().astype(np.int16)
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + limit_s
    while len(frames) < wanted:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(frames)} avatar frames before timeout"
        frame = (await asyncio.wait_for(track.recv(), remaining)).to_ndarray(format="rgb24")
        if (
            frame.shape != placeholder.shape
            or np.abs(frame.astype(np.int16) - placeholder).mean() > 8
        ):
            frames.append(frame)
    return frames
