"""A call's motion channel in one process: encoder → (lossy) channel → decoder, with the
decoder's feedback reaching the encoder some frames late over the reliable channel.

Everything that needs realistic packet sizes or decoded motion without a network uses this
loop: the bitrate benchmark, the table fitter, the tests, a wire-cost estimate. Without the
feedback every packet would be a keyframe (2-3× larger).

    loop = FeedbackLoop(LANDMARKS)
    packet = loop.step(motion, timestamp_ms).packet   # per frame, or
    run = loop.run(motions, fps)                       # a whole clip
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lpstream.motion import Motion
from lpstream.protocol.control import encode_keyframe_request
from lpstream.protocol.motion_codec import DecodeStatus, MotionDecoder, MotionEncoder
from lpstream.protocol.profiles import KEYPOINTS, CodecProfile

FEEDBACK_DELAY = 3
"""Frames until feedback reaches the encoder in a typical call (~100 ms round trip at
30 fps): the reference gap is then usually 3-4 frames."""


class RandomSource(Protocol):
    """`random.Random` or `numpy.random.Generator`."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class Delivery:
    """One packet reaching the decoder."""

    frame: int
    """Index of the frame (step) that sent it: not the current one if it was held back."""
    status: DecodeStatus
    shown: Motion | None
    """What `MotionDecoder.decode` returned."""


@dataclass(frozen=True)
class LoopStep:
    """What happened during one frame."""

    frame: int
    packet: bytes
    """The packet the encoder sent (counted whether or not it arrived)."""
    lost: bool
    deliveries: tuple[Delivery, ...]
    """Packets decoded during this frame, in arrival order (none if lost or held back;
    several when held-back packets arrive together)."""
    shown: Motion | None
    """What the receiver shows for this frame: the last delivery's motion or, when nothing
    arrived, the decoder's concealment at this frame's timestamp (None while it waits for a
    keyframe or the sender sees no face)."""


@dataclass(frozen=True)
class LoopRun:
    """A whole clip through the loop."""

    steps: tuple[LoopStep, ...]

    @property
    def packets(self) -> list[bytes]:
        return [step.packet for step in self.steps]

    @property
    def sizes(self) -> list[int]:
        return [len(step.packet) for step in self.steps]

    @property
    def deliveries(self) -> list[Delivery]:
        return [delivery for step in self.steps for delivery in step.deliveries]

    @property
    def statuses(self) -> list[DecodeStatus]:
        return [delivery.status for delivery in self.deliveries]

    def decoded(self) -> list[tuple[int, Motion]]:
        """(source frame, decoded motion) of every DECODED delivery."""
        return [
            (d.frame, d.shown)
            for d in self.deliveries
            if d.status is DecodeStatus.DECODED and d.shown is not None
        ]


class FeedbackLoop:
    """Encoder and decoder joined as in a call.

    Each `step` applies the feedback due by now, encodes, drops the packet with probability
    `loss` or holds it back 1-3 frames with probability `reorder`, decodes what arrives,
    and queues the decoder's feedback to reach the encoder `feedback_delay` frames later
    (0 and 1 both mean "before the next frame"). The reliable channel keeps its order.
    """

    def __init__(
        self,
        profile: CodecProfile = KEYPOINTS,
        *,
        feedback_delay: int = FEEDBACK_DELAY,
        loss: float = 0.0,
        reorder: float = 0.0,
        seed: int = 0,
        rng: RandomSource | None = None,
        encoder: MotionEncoder | None = None,
        decoder: MotionDecoder | None = None,
    ) -> None:
        """`profile` builds the encoder and a decoder that knows it (so a refitted profile
        decodes too); pass `encoder`/`decoder` instead to configure them (e.g. observers).
        `rng` (default `random.Random(seed)`) decides losses (one draw per frame) and, with
        `reorder`, which arriving packets are held back and for how long."""
        if feedback_delay < 0:
            raise ValueError("feedback_delay must be >= 0")
        if not 0.0 <= loss <= 1.0 or not 0.0 <= reorder <= 1.0:
            raise ValueError("loss and reorder are probabilities in [0, 1]")
        self.encoder = encoder if encoder is not None else MotionEncoder(profile=profile)
        self.decoder = (
            decoder if decoder is not None else MotionDecoder(profiles=(self.encoder.profile,))
        )
        self.feedback_delay = feedback_delay
        self.loss = loss
        self.reorder = reorder
        self.rng: RandomSource = rng if rng is not None else random.Random(seed)
        self.frame = 0
        """Frames sent so far (the index of the next step)."""
        self._replies: deque[tuple[int, bytes]] = deque()
        self._in_flight: list[tuple[int, bytes, int]] = []
        """(arrives at frame, packet, source frame) of held-back packets."""

    def request_keyframe(self) -> None:
        """The receiver sends KEYFRAME_REQUEST now; it arrives like feedback."""
        self._send_reply(encode_keyframe_request())

    def step(self, motion: Motion | None, timestamp_ms: int) -> LoopStep:
        frame = self.frame
        self.frame += 1
        while self._replies and self._replies[0][0] <= frame:
            self.encoder.on_feedback(self._replies.popleft()[1])
        packet = self.encoder.encode(motion, timestamp_ms)
        lost = self.rng.random() < self.loss
        if not lost:
            delay = 0
            if self.reorder > 0.0 and self.rng.random() < self.reorder:
                delay = 1 + min(2, int(self.rng.random() * 3))
            self._in_flight.append((frame + delay, packet, frame))
        due = sorted((p for p in self._in_flight if p[0] <= frame), key=lambda p: p[0])
        self._in_flight = [p for p in self._in_flight if p[0] > frame]
        deliveries = []
        for _, data, source in due:
            shown = self.decoder.decode(data)
            deliveries.append(Delivery(source, self.decoder.last_status, shown))
        if deliveries:
            shown = deliveries[-1].shown
        else:
            shown = self.decoder.conceal(timestamp_ms) if self.decoder.sender_has_face else None
        reply = self.decoder.feedback()
        if reply is not None:
            self._send_reply(reply)
        return LoopStep(frame, packet, lost, tuple(deliveries), shown)

    def run(self, motions: Sequence[Motion | None], fps: float, start_ms: int = 0) -> LoopRun:
        """Stream a clip at `fps` (timestamps start_ms + round(i·1000/fps))."""
        return LoopRun(
            tuple(
                self.step(motion, start_ms + round(i * 1000 / fps))
                for i, motion in enumerate(motions)
            )
        )

    def _send_reply(self, packet: bytes) -> None:
        self._replies.append((self.frame - 1 + self.feedback_delay, packet))
