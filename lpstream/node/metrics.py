"""Prometheus text exposition of the node's per-session numbers (`/metrics`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from lpstream.node import wire_meter
from lpstream.node.browser_session import BrowserSession
from lpstream.node.node_links import NodeLinks
from lpstream.node.router import Router


class Node(Protocol):
    """What /metrics reads of the node (the node module imports nothing from here)."""

    sessions: dict[str, BrowserSession]
    links: NodeLinks
    router: Router

    @property
    def errors(self) -> int: ...


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}" if inner else ""


class Exposition:
    """Collects samples grouped by metric so each HELP/TYPE header appears once."""

    def __init__(self) -> None:
        self._metrics: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, /, **labels: str) -> None:
        entry = self._metrics.setdefault(name, (kind, help_text, []))
        entry[2].append(f"{name}{_labels(**labels)} {value:.6g}")

    def lines(self) -> Iterable[str]:
        for name, (kind, help_text, samples) in self._metrics.items():
            yield f"# HELP {name} {help_text}"
            yield f"# TYPE {name} {kind}"
            yield from samples

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def _wire(out: Exposition, pc: object, **labels: str) -> None:
    """What one peer connection cost at its UDP sockets, by direction and RFC 7983 kind."""
    tally = wire_meter.tally(pc)
    for direction, counted in (("sent", tally.sent), ("received", tally.received)):
        for kind in wire_meter.KINDS:
            out.add(
                "lpstream_wire_bytes_total",
                "counter",
                "Bytes at the UDP socket (IP + UDP headers included) per peer connection.",
                counted.bytes[kind],
                **labels,
                direction=direction,
                kind=kind,
            )
            out.add(
                "lpstream_wire_packets_total",
                "counter",
                "Datagrams at the UDP socket per peer connection.",
                counted.packets[kind],
                **labels,
                direction=direction,
                kind=kind,
            )


def node_metrics(node: Node, signaling: dict[str, int] | None = None) -> str:
    out = Exposition()
    out.add("lpstream_sessions", "gauge", "Browser sessions on this node.", len(node.sessions))
    out.add("lpstream_node_links", "gauge", "Links to other nodes.", len(node.links.links))
    out.add("lpstream_node_errors_total", "counter", "Errors handled by the node.", node.errors)
    out.add(
        "lpstream_node_link_failures_total",
        "counter",
        "Node links that failed or did not open in time (each is rebuilt).",
        node.links.failures,
    )
    out.add(
        "lpstream_node_link_offers_refused_total",
        "counter",
        "Link offers refused: from a participant, or a node of no shared room.",
        node.links.refused,
    )
    uplink_metrics = {
        "camera_fps": ("gauge", "Camera frames received per second."),
        "camera_kbps": ("gauge", "Inbound camera RTP bitrate (kbit/s)."),
        "sender_fps": ("gauge", "Motion packets produced per second."),
        "motion_kbps": ("gauge", "Motion bitrate produced (kbit/s)."),
        "extract_ms": ("gauge", "Last motion extraction time (ms)."),
    }
    tile_metrics = {
        "fps": ("lpstream_avatar_fps", "gauge", "Avatar frames sent per second."),
        "render_ms": ("lpstream_render_ms", "gauge", "Last render time (ms)."),
        "node_latency_ms": (
            "lpstream_latency_ms",
            "gauge",
            "Median camera-frame-in to avatar-frame-out time on this node (ms).",
        ),
        "render_errors": ("lpstream_render_errors_total", "counter", "Failed renders."),
        "voice_mouth": (
            "lpstream_voice_mouth",
            "gauge",
            "1 while the avatar's mouth follows the sender's voice (no face motion).",
        ),
        "decode_errors": (
            "lpstream_decode_errors_total",
            "counter",
            "Motion packets that failed to decode.",
        ),
    }
    for session in node.sessions.values():
        who = {"participant": session.name, "room": session.room}
        for key, value in session.uplink.figures().items():
            kind, help_text = uplink_metrics.get(key, ("gauge", f"Uplink {key}."))
            out.add(f"lpstream_{key}", kind, help_text, value, **who)
        route = node.router.get(session.id)
        if route is not None:
            out.add(
                "lpstream_motion_bytes_total",
                "counter",
                "Motion packet bytes produced.",
                route.motion_bytes.total,
                **who,
            )
        _wire(out, session.pc, connection="session", **who)
        out.add(
            "lpstream_control_dropped_total",
            "counter",
            "JSON control messages dropped over the session's rate limit.",
            session.dropped_control,
            **who,
        )
        out.add(
            "lpstream_session_errors_total",
            "counter",
            "Errors in this session.",
            session.errors,
            **who,
        )
        for source_id in session.slots:
            source = node.router.get(source_id) if source_id else None
            figures = session.downlink.tile_figures(source_id) if source_id else None
            if source is None or figures is None:
                continue
            labels = {"viewer": session.name, "source": source.name, "room": session.room}
            for key, value in figures.items():
                name, kind, help_text = tile_metrics.get(
                    key, (f"lpstream_tile_{key}", "gauge", f"Tile {key}.")
                )
                out.add(name, kind, help_text, value, **labels)
    for remote, link in node.links.links.items():
        _wire(out, link.pc, connection="link", node=remote)
    for source in node.router.sources.values():
        out.add(
            "lpstream_motion_routed_bytes_total",
            "counter",
            "Motion packet bytes routed for this source.",
            source.motion_bytes.total,
            source=source.name,
        )
        out.add(
            "lpstream_feedback_errors_total",
            "counter",
            "Malformed feedback packets for this source.",
            source.bad_feedback,
            source=source.name,
        )
    for key, value in (signaling or {}).items():
        out.add(f"lpstream_signaling_{key}", "gauge", f"Signaling server: {key}.", value)
    return out.text()
