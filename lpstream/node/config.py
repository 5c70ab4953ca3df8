"""Node settings, chosen once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from lpstream.ice import IceServer


@dataclass
class NodeConfig:
    """Everything the node needs to know before the first call arrives."""

    node_id: str = "local"
    """Unique id among the nodes sharing a signaling server."""
    signaling_url: str = "ws://127.0.0.1:8080/ws"
    """Websocket of the signaling server this node registers with."""
    node_token: str | None = None
    """HMAC token for room `node:<id>` when the signaling server requires tokens."""
    backend: str = "auto"
    """Backend name or alias, or `auto` (`lpstream.backend_registry.choose_backend`)."""
    weights: str | None = None
    """LivePortrait weights folder (only the LivePortrait backend needs it)."""
    device: str = "auto"
    """Torch/ONNX device for backends that use one."""
    ice_servers: list[IceServer] = field(default_factory=list)
    """STUN/TURN servers with their credentials (none on a LAN or loopback)."""
    fps: float = 25.0
    """Avatar output frame rate, and the most camera frames per second the sender stage takes."""
    portrait_max_side: int = 256
    """Source portraits are scaled down to this longest side before rendering."""
    portrait_max_bytes: int = 4 * 1024 * 1024
    """Largest accepted encoded portrait upload."""
    avatar_slots: int = 3
    """Avatar tracks per browser connection (room size − 1)."""
    workers: int = 2
    """Threads running the CPU-heavy stages (extraction, rendering, decoding)."""
    lip_sync: bool = True
    """Node-rendered tiles: one stream per tile's video and voice, the voice held as long as
    the video is late (`media_clock.py`). Off only to measure what it does."""
