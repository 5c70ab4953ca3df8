"""Receiver stage: one decoder per incoming motion stream, one renderer per viewer of it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from lpstream.backend import AvatarRenderer, Controls
from lpstream.errors import LpstreamError
from lpstream.motion import Motion
from lpstream.node.meters import LatencyMeter, RateMeter
from lpstream.node.portrait import Portrait
from lpstream.node.shutdown import bounded
from lpstream.node.stages import StageTiming, close_stage, run_timed
from lpstream.node.tracks import AvatarTrack
from lpstream.protocol import MotionDecoder, Stats

log = logging.getLogger("lpstream.node")


class SourceStream:
    """Everything this node knows about one sending participant (local or on another node).

    Motion arrives as encoded packets (even in-process: the codec is what is measured),
    is decoded once, and the newest motion is offered to every view of this source.
    """

    def __init__(self, participant_id: str, name: str, feedback: Callable[[bytes], None]) -> None:
        self.id = participant_id
        self.name = name
        self.portrait: Portrait | None = None
        self.decoder = MotionDecoder()
        self._feedback = feedback
        self.motion: Motion | None = None
        self.stamp: float | None = None
        """Monotonic arrival time of the camera frame behind `motion` (local senders only)."""
        self.version = 0
        self.motion_bytes = RateMeter()
        self.packets = 0
        self.decode_errors = 0
        self.no_face = 0
        self.camera_kbps = 0.0
        """Bitrate of the sender's camera video as it reached its node (what video would cost)."""
        self.backend = ""
        self.remote_stats: Stats | None = None
        """The sender node's protocol Stats, for sources on another node."""
        self.views: set[AvatarView] = set()
        self.last_error = ""
        """Last rendering error reported to the sender (cleared by a new portrait)."""
        self.face_lost_at: float | None = None
        """Monotonic time since which the sender has sent "no face", None while it sees one."""
        self.track_id: int | None = None
        """The sender's face-tracker id: it changes when a different face is acquired."""
        self.identity = 0
        """Bumped with each new tracked face: every view then takes a new driver reference."""

    def receive(self, packet: bytes, stamp: float | None) -> None:
        self.packets += 1
        self.motion_bytes.add(len(packet))
        try:
            motion = self.decoder.decode(packet)
        except LpstreamError as exc:
            self.decode_errors += 1
            log.warning("bad motion packet from %s: %s", self.id, exc)
            return
        feedback = self.decoder.feedback()
        if feedback:
            self._feedback(feedback)
        if motion is None:  # the sender sees no face: keep showing the last pose
            self.no_face += 1
            if self.face_lost_at is None:
                self.face_lost_at = time.monotonic()
            return
        self.face_lost_at = None
        self.motion, self.stamp = motion, stamp
        self.version += 1
        for view in self.views:
            view.wake.set()

    def face_hidden_for(self) -> float:
        """Seconds the sender has been reporting no face (0 while its face is visible)."""
        return 0.0 if self.face_lost_at is None else time.monotonic() - self.face_lost_at

    def set_track(self, track_id: int) -> None:
        """The sender's tracker id; a different one means a different face (or a re-entry):
        its motion relative to the old face's reference would distort the avatar."""
        if track_id != self.track_id:
            self.track_id = track_id
            self.identity += 1

    def set_portrait(self, portrait: Portrait) -> None:
        self.portrait = portrait
        self.last_error = ""
        for view in self.views:
            view.wake.set()


class AvatarView:
    """One viewer's tile of one source: its own renderer (its own sliders), its own track."""

    def __init__(
        self,
        source: SourceStream,
        track: AvatarTrack,
        renderer: AvatarRenderer,
        controls: Callable[[], Controls],
        executor: Executor,
        on_error: Callable[[SourceStream, Exception], None],
        release: Callable[[object], None] = close_stage,
    ) -> None:
        self.source = source
        self.track = track
        self.renderer = renderer
        self._controls = controls
        self._executor = executor
        self._on_error = on_error
        self._release = release
        self.wake = asyncio.Event()
        self.render_timing = StageTiming()
        self.latency = LatencyMeter()
        self.fps = RateMeter()
        self._portrait_sha = ""
        self._lock = threading.Lock()
        """Held by the worker thread using the renderer, so closing never races a render."""
        self._rendered_version = 0
        self._identity = source.identity
        track.on_sent.append(self._sent)
        self.task = asyncio.create_task(self._run(), name=f"view-{source.id}")
        source.views.add(self)
        self.wake.set()

    def _sent(self, stamp: float | None) -> None:
        self.fps.add()
        if stamp is not None:  # only senders on this node have a comparable clock
            self.latency.add((time.monotonic() - stamp) * 1000.0)

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            source = self.source
            if source.portrait is None or source.motion is None:
                continue
            try:
                if source.portrait.sha256 != self._portrait_sha:
                    self._rendered_version = 0  # re-render the held pose on the new portrait
                    await run_timed(
                        self._executor,
                        StageTiming(),
                        self._locked,
                        self.renderer.set_source,
                        source.portrait.rgb,
                    )
                    self._portrait_sha = source.portrait.sha256  # only once it worked
                if source.version == self._rendered_version:
                    continue
                self._rendered_version = source.version
                motion, stamp = source.motion, source.stamp
                if source.identity != self._identity:  # a new face: its first pose is neutral
                    self._identity = source.identity
                    await run_timed(
                        self._executor, StageTiming(), self._locked, self.renderer.reset_reference
                    )
                controls = self._controls()
                frame = await run_timed(
                    self._executor,
                    self.render_timing,
                    self._locked,
                    self.renderer.render,
                    motion,
                    controls,
                )
                self.track.publish(frame, stamp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad portrait or frame must not end the call
                self.render_timing.errors += 1
                self._on_error(source, exc)
                await asyncio.sleep(0.5)
                self.wake.set()  # try again with the newest motion

    def _locked(self, function: Callable[..., Any], *args: object) -> Any:
        with self._lock:
            return function(*args)

    async def close(self) -> None:
        self.source.views.discard(self)
        self.task.cancel()
        await bounded(self.task, "an avatar view's render task")
        self.track.clear()
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._locked, self._release, self.renderer)
        except RuntimeError:  # the node is stopping and its executor is gone
            self._locked(self._release, self.renderer)
