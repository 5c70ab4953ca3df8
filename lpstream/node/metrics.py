"""Prometheus text exposition of the node's per-session numbers (`/metrics`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lpstream.node.node import Node


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}" if inner else ""


class Exposition:
    """Collects samples grouped by metric so each HELP/TYPE header appears once."""

    def __init__(self) -> None:
        self._metrics: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, **labels: str) -> None:
        entry = self._metrics.setdefault(name, (kind, help_text, []))
        entry[2].append(f"{name}{_labels(**labels)} {value:.6g}")

    def lines(self) -> Iterable[str]:
        for name, (kind, help_text, samples) in self._metrics.items():
            yield f"# HELP {name} {help_text}"
            yield f"# TYPE {name} {kind}"
            yield from samples

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def node_metrics(node: Node, signaling: dict[str, int] | None = None) -> str:
    out = Exposition()
    out.add("lpstream_sessions", "gauge", "Browser sessions on this node.", len(node.sessions))
    out.add("lpstream_node_links", "gauge", "Links to other nodes.", len(node.links))
    out.add("lpstream_node_errors_total", "counter", "Errors handled by the node.", node.errors)
    for session in node.sessions.values():
        who = {"participant": session.name, "room": session.room}
        out.add(
            "lpstream_camera_fps",
            "gauge",
            "Camera frames received per second.",
            session.camera_fps.rate(),
            **who,
        )
        out.add(
            "lpstream_camera_kbps",
            "gauge",
            "Inbound camera RTP bitrate (kbit/s).",
            session.camera_kbps(),
            **who,
        )
        out.add(
            "lpstream_sender_fps",
            "gauge",
            "Motion packets produced per second.",
            session.sender_fps.rate(),
            **who,
        )
        out.add(
            "lpstream_motion_bytes_total",
            "counter",
            "Motion packet bytes produced.",
            session.motion_sent.total,
            **who,
        )
        out.add(
            "lpstream_motion_kbps",
            "gauge",
            "Motion bitrate produced (kbit/s).",
            session.motion_sent.rate() * 8 / 1000,
            **who,
        )
        out.add(
            "lpstream_extract_ms",
            "gauge",
            "Last motion extraction time (ms).",
            session.extract_timing.last_ms,
            **who,
        )
        out.add(
            "lpstream_session_errors_total",
            "counter",
            "Errors in this session.",
            session.errors + session.extract_timing.errors,
            **who,
        )
    for (viewer_id, _source_id), view in node.views.items():
        viewer = node.sessions.get(viewer_id)
        labels = {
            "viewer": viewer.name if viewer else viewer_id,
            "source": view.source.name,
            "room": viewer.room if viewer else "",
        }
        out.add(
            "lpstream_avatar_fps",
            "gauge",
            "Avatar frames sent per second.",
            view.fps.rate(),
            **labels,
        )
        out.add(
            "lpstream_render_ms",
            "gauge",
            "Last render time (ms).",
            view.render_timing.last_ms,
            **labels,
        )
        out.add(
            "lpstream_latency_ms",
            "gauge",
            "Median camera-frame-in to avatar-frame-out time on this node (ms).",
            view.latency.median(),
            **labels,
        )
        out.add(
            "lpstream_render_errors_total",
            "counter",
            "Failed renders.",
            view.render_timing.errors,
            **labels,
        )
    for source in node.sources.values():
        out.add(
            "lpstream_motion_received_bytes_total",
            "counter",
            "Motion packet bytes decoded for this source.",
            source.motion_bytes.total,
            source=source.name,
        )
        out.add(
            "lpstream_decode_errors_total",
            "counter",
            "Motion packets that failed to decode.",
            source.decode_errors,
            source=source.name,
        )
    for key, value in (signaling or {}).items():
        out.add(f"lpstream_signaling_{key}", "gauge", f"Signaling server: {key}.", value)
    return out.text()
