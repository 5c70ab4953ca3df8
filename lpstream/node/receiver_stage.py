"""Receiver stage: one viewer's tile of one source — motion decoder, renderer, video track.

It is a sink of the router: packets in (decoded here, feedback returned), frames out on the
tile's `AvatarTrack`. Rendering runs in the executor, newest motion wins: a slow renderer
skips motion, it never queues it. When the sender's face is gone (NO_FACE, or no packet for a
while) the tile eases to the portrait's rest pose and may move its mouth with the sender's
voice (`neutral_pose.py`), rendering on its own clock while that changes the picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from lpstream.backend import AvatarRenderer, Controls
from lpstream.errors import LpstreamError
from lpstream.motion import Motion
from lpstream.node.avatar_track import AvatarTrack
from lpstream.node.media_clock import ArrivalMapping, VoiceArrival
from lpstream.node.meters import LatencyMeter, RateMeter
from lpstream.node.neutral_pose import NeutralPose, Pose
from lpstream.node.portrait_image import Portrait
from lpstream.node.shutdown import bounded
from lpstream.node.stage_timing import StageTiming, run_timed
from lpstream.protocol import DecodeStatus, FeedbackPacer, MotionDecoder
from lpstream.rate_limit import LogLimiter

log = logging.getLogger("lpstream.node")
quiet = LogLimiter(log)
"""Per-message complaints: one line per peer per interval."""


class ReceiverStage:
    """Decodes one source's stream and renders it on one viewer's track."""

    def __init__(
        self,
        key: str,
        source_id: str,
        track: AvatarTrack,
        renderer: AvatarRenderer,
        controls: Callable[[], Controls],
        executor: Executor,
        on_error: Callable[[str, Exception], None],
        release: Callable[[AvatarRenderer], None],
        voice_level: Callable[[], float | None] = lambda: None,
        voice_arrival: Callable[[], VoiceArrival | None] = lambda: None,
    ) -> None:
        """`voice_level`: the sender's voice now, −dBov (RFC 6464), or None if unknown."""
        self.key = key
        self.source_id = source_id
        self.track = track
        self.renderer = renderer
        self._controls = controls
        self._executor = executor
        self._on_error = on_error
        self._release = release
        self._voice_level = voice_level
        self._voice_arrival = voice_arrival
        self.neutral = NeutralPose()
        self.pose: Pose | None = None
        """What the tile showed last (live motion or rest pose, voice mouth or not)."""
        self._rendered_key: tuple[float, Controls] | None = None
        self.decoder = MotionDecoder()
        self._feedback = FeedbackPacer(self.decoder)
        self.render_timing = StageTiming()
        self.latency = LatencyMeter()
        self.fps = RateMeter()
        self.decode_errors = 0
        self.wake = asyncio.Event()
        self._motion: Motion | None = None
        self._stamp: float | None = None
        self._content: float | None = None
        self.clock = ArrivalMapping()
        """The sender's motion timestamps on this node's clock (lip sync, `media_clock.py`)."""
        self._version = 0
        self._rendered_version = 0
        self._portrait: Portrait | None = None
        self._portrait_sha = ""
        self._face_id: int | None = None
        self._new_face = False
        self._lock = threading.Lock()
        """Held by the worker thread using the renderer, so closing never races a render."""
        track.on_sent.append(self._sent)
        self.task = asyncio.create_task(self._run(), name=f"render-{key}")

    # -- sink of the router ------------------------------------------------------------------

    def on_motion(self, packet: bytes, stamp: float | None) -> bytes | None:
        try:
            motion = self.decoder.decode(packet)
        except LpstreamError as exc:
            self.decode_errors += 1
            quiet.warning(self.source_id, "bad motion packet from %s: %s", self.source_id, exc)
            return None
        if motion is not None:
            self._motion, self._stamp = motion, stamp
            decoded = self.decoder.last_status is DecodeStatus.DECODED
            timestamp = self.decoder.last_timestamp_ms
            self._content = (
                self._content_time(timestamp, time.monotonic())
                if decoded and timestamp is not None
                else None
            )
            self._version += 1
            self.neutral.on_motion(motion, time.monotonic())
            self.wake.set()
        elif self.decoder.last_status is DecodeStatus.NO_FACE:
            self.neutral.on_no_face(time.monotonic())
            self.wake.set()
        return self._feedback.poll()

    def _content_time(self, timestamp_ms: int, now: float) -> float:
        """When the moment of this motion reached the node: the arrival of its voice if the
        sender stamps motion on its voice clock, else its own arrival by the fastest trip."""
        by_motion = self.clock.add(timestamp_ms, now)
        voices = self._voice_arrival()
        by_voice = voices.arrival_of(timestamp_ms, now) if voices is not None else None
        return by_motion if by_voice is None else by_voice

    def on_portrait(self, portrait: Portrait) -> None:
        self._portrait = portrait
        self.wake.set()

    def controls_changed(self) -> None:
        """The viewer moved a slider or the voice switch: redraw even a held pose."""
        self.wake.set()

    def on_face(self, face_id: int) -> None:
        if face_id != self._face_id:
            # A different face (or a re-entry): its motion relative to the old face's
            # reference would distort the avatar, so its first pose becomes the reference.
            self._face_id = face_id
            self._new_face = True

    @property
    def voice_mouth(self) -> bool:
        """The mouth follows the voice now (the viewer's overlay says so)."""
        return self.pose is not None and self.pose.voice

    # -- rendering ---------------------------------------------------------------------------

    def _sent(self, stamp: float | None) -> None:
        self.fps.add()
        if stamp is not None:  # only senders on this node have a comparable clock
            self.latency.add((time.monotonic() - stamp) * 1000.0)

    async def _run(self) -> None:
        while True:
            tick = self.neutral.next_tick(time.monotonic(), self._controls())
            if tick is None:
                await self.wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), tick)
            self.wake.clear()
            portrait = self._portrait
            if portrait is None or self._motion is None:
                continue
            try:
                if portrait.sha256 != self._portrait_sha:
                    self._rendered_version = 0  # re-render the held pose on the new portrait
                    self._rendered_key = None
                    await run_timed(
                        self._executor, None, self._locked, self.renderer.set_source, portrait.rgb
                    )
                    self.neutral.reset_reference()
                    self._portrait_sha = portrait.sha256  # only once it worked
                fresh = self._version != self._rendered_version
                # Only a frame of new motion has a camera time to measure latency from.
                stamp = self._stamp if fresh else None
                content = self._content if fresh else None
                if fresh:
                    self._rendered_version = self._version
                    if self._new_face:  # at the new face's first motion, not on a tick before
                        self._new_face = False
                        await run_timed(
                            self._executor, None, self._locked, self.renderer.reset_reference
                        )
                        self.neutral.reset_reference()
                pose = self.neutral.pose(time.monotonic(), self._controls(), self._voice_level())
                self.pose = pose
                if pose is None or (not fresh and pose.key() == self._rendered_key):
                    continue
                self._rendered_key = pose.key()
                frame = await run_timed(
                    self._executor,
                    self.render_timing,
                    self._locked,
                    self.renderer.render,
                    pose.motion,
                    pose.controls,
                )
                self.track.publish(frame, stamp, content)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad portrait or frame must not end the call
                self.render_timing.errors += 1
                self._on_error(self.source_id, exc)
                await asyncio.sleep(0.5)
                self.wake.set()  # try again with the newest motion

    def _locked(self, function: Callable[..., Any], *args: object) -> Any:
        with self._lock:
            return function(*args)

    async def close(self) -> None:
        self.task.cancel()
        await bounded(self.task, "a receiver stage's render task")
        self.track.on_sent.remove(self._sent)
        self.track.clear()
        try:  # in the executor, after a render still running there (the lock waits for it)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._locked, self._release, self.renderer)
        except RuntimeError:  # the node is stopping and its executor is gone
            self._locked(self._release, self.renderer)
