"""Which kinds of uplink and downlink this node offers, by the name a browser asks for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lpstream.backend import Backend
from lpstream.node.camera_uplink import CameraUplink
from lpstream.node.endpoints import Downlink, EndpointContext, Uplink
from lpstream.node.keypoint_downlink import KeypointDownlink
from lpstream.node.keypoint_uplink import KeypointUplink
from lpstream.node.video_downlink import VideoDownlink

T = TypeVar("T")


@dataclass(frozen=True)
class EndpointKind(Generic[T]):
    create: Callable[[EndpointContext], T]
    in_browser: bool
    """The page itself extracts or renders: only for a backend that runs in a browser."""

    def available(self, backend: Backend) -> bool:
        return backend.runs_in_browser or not self.in_browser


UPLINKS: dict[str, EndpointKind[Uplink]] = {
    CameraUplink.kind: EndpointKind(CameraUplink, in_browser=False),
    KeypointUplink.kind: EndpointKind(KeypointUplink, in_browser=True),
}
DOWNLINKS: dict[str, EndpointKind[Downlink]] = {
    VideoDownlink.kind: EndpointKind(VideoDownlink, in_browser=False),
    KeypointDownlink.kind: EndpointKind(KeypointDownlink, in_browser=True),
}
FALLBACK_UPLINK = CameraUplink.kind
"""What a browser gets that names no uplink (and what every backend can serve)."""
FALLBACK_DOWNLINK = VideoDownlink.kind


def offered(kinds: dict[str, EndpointKind[T]], backend: Backend) -> list[str]:
    """The kinds this backend can serve, browser-side ones first (the cheaper link)."""
    names = [name for name, kind in kinds.items() if kind.available(backend)]
    return sorted(names, key=lambda name: not kinds[name].in_browser)


def _create(kinds: dict[str, EndpointKind[T]], what: str, name: str, context: EndpointContext) -> T:
    kind = kinds.get(name)
    if kind is None or not kind.available(context.backend):
        choices = ", ".join(offered(kinds, context.backend))
        raise ValueError(f"this node offers no {what} {name!r:.40}; it offers {choices}")
    return kind.create(context)


def create_uplink(name: str, context: EndpointContext) -> Uplink:
    return _create(UPLINKS, "uplink", name, context)


def create_downlink(name: str, context: EndpointContext) -> Downlink:
    return _create(DOWNLINKS, "downlink", name, context)
