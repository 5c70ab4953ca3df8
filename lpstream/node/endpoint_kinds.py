"""Which kinds of uplink and downlink this node offers, by the name a browser asks for."""

from __future__ import annotations

from collections.abc import Callable

from lpstream.node.camera_uplink import CameraUplink
from lpstream.node.endpoints import Downlink, EndpointContext, Uplink
from lpstream.node.video_downlink import VideoDownlink

UPLINKS: dict[str, Callable[[EndpointContext], Uplink]] = {CameraUplink.kind: CameraUplink}
DOWNLINKS: dict[str, Callable[[EndpointContext], Downlink]] = {VideoDownlink.kind: VideoDownlink}
DEFAULT_UPLINK = CameraUplink.kind
DEFAULT_DOWNLINK = VideoDownlink.kind


def create_uplink(kind: str, context: EndpointContext) -> Uplink:
    if kind not in UPLINKS:
        raise ValueError(f"unknown uplink {kind!r}; this node offers {', '.join(UPLINKS)}")
    return UPLINKS[kind](context)


def create_downlink(kind: str, context: EndpointContext) -> Downlink:
    if kind not in DOWNLINKS:
        raise ValueError(f"unknown downlink {kind!r}; this node offers {', '.join(DOWNLINKS)}")
    return DOWNLINKS[kind](context)
