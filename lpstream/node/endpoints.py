"""The two ends of a participant's connection to this node: the interfaces of their kinds.

An *uplink* brings a participant's motion to the router (today: `camera`, the camera track
with motion extracted here). A *downlink* takes the other participants' motion to the
participant (today: `video`, rendered here and sent as a video track per tile). A browser
session only talks to these interfaces; a new kind is one new module plus one line in
`endpoint_kinds.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lpstream.backend import Backend, Controls
from lpstream.node.config import NodeConfig
from lpstream.node.media_clock import VoiceArrival
from lpstream.node.router import Router, SourceRoute
from lpstream.node.stage_pool import StagePool
from lpstream.protocol import CodecProfile, MotionEncoder


@dataclass
class EndpointContext:
    """What an uplink or downlink may use; nothing else of the node."""

    participant_id: str
    config: NodeConfig
    backend: Backend
    stages: StagePool
    router: Router
    route: SourceRoute
    """The participant's own stream (what an uplink publishes to)."""
    report_render_error: Callable[[str, Exception], None]
    """(source id, error): a tile could not render that source."""
    send_control: Callable[[dict[str, Any]], None]
    """A JSON message to this participant's page (`control` channel; dropped until open)."""
    motion_encoder: Callable[[CodecProfile], MotionEncoder]
    """The participant's motion encoder, one for as long as it is in the room: an uplink that
    replaces a stalled connection's continues the stream (sequence numbers, acknowledged
    references), so the others' decoders go on as if nothing happened."""
    voice_level: Callable[[str], float | None] = lambda source_id: None
    """(source id) → that participant's voice level now, −dBov (RFC 6464), None if unknown
    (`audio_forwarding.AudioSource.level`)."""
    voice_arrival: Callable[[str], VoiceArrival | None] = lambda source_id: None
    """(source id) → when that participant's voice of each moment reached this node, None if
    unheard (lip sync of node-rendered tiles, `media_clock.VoiceArrival`)."""


class Uplink(Protocol):
    kind: str

    def adopt_track(self, track: Any, receiver: Any) -> bool:
        """A media track the browser sent; True if this uplink takes it."""
        ...

    def adopt_channel(self, channel: Any) -> bool:
        """A data channel the browser opened; True if this uplink takes it."""
        ...

    def handle_control(self, message: dict[str, Any]) -> bool:
        """A JSON control message the session does not know; True if this uplink took it."""
        ...

    def figures(self) -> dict[str, float]:
        """What the participant's own overlay shows about its uplink."""
        ...

    async def close(self) -> None: ...


class Downlink(Protocol):
    kind: str

    def prepare(self, pc: Any) -> None:
        """Before the answer: add the tracks or channels this downlink sends on."""
        ...

    def adopt_channel(self, channel: Any) -> bool: ...

    def audio_delay(self, slot: int) -> float:
        """How long (s) the node holds tile `slot`'s voice to keep it with the picture."""
        ...

    def show(self, slots: list[str | None]) -> None:
        """Which source each tile shows now (None: an empty tile)."""
        ...

    def set_controls(self, controls: Controls) -> None:
        """The viewer's sliders."""
        ...

    def handle_control(self, message: dict[str, Any]) -> bool:
        """A JSON control message the session does not know; True if this downlink took it."""
        ...

    def tile_figures(self, source_id: str) -> dict[str, float] | None:
        """What the viewer's overlay shows about the tile of `source_id` (None: no tile)."""
        ...

    async def close(self) -> None: ...
