"""`python -m lpstream.serve`: the web client, the signaling server and the media node.

One port serves everything: static files of `web_client/`, `/config.json` for the page,
`/healthz`, `/metrics` (Prometheus text) and the signaling websocket at `/ws`.
HTTP is answered from websockets' `process_request` hook: the pages are a handful of
small static files, so an HTTP framework (aiohttp) would be a dependency for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import secrets
import signal
import ssl
import sys
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from lpstream.log_format import configure_logging
from lpstream.node import Node, NodeConfig
from lpstream.node.metrics import node_metrics
from lpstream.node.shutdown import bounded
from lpstream.serve_options import Settings, SettingsError, build_parser, load_settings
from lpstream.tls import server_context
from signaling import Limits, SignalingServer, make_token
from signaling.origins import OriginPolicy
from signaling.server import WS_PATH

log = logging.getLogger("lpstream.serve")


def _web_client() -> Path:
    """The checkout's web_client/ (editable installs, tests), else the copy in the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "web_client"
    return checkout if (checkout / "index.html").is_file() else Path(__file__).parent / "web_client"


WEB_CLIENT = _web_client()
CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    web_root: Path = WEB_CLIENT
    peer_node: str | None = None
    """Signaling websocket of another node to share calls with, instead of our own."""
    token_secret: str | None = None
    allow_origins: tuple[str, ...] = ()
    tls_cert: Path | None = None
    """PEM certificate (chain): the port serves https:// and wss:// instead of http/ws."""
    tls_key: Path | None = None
    """PEM private key of `tls_cert`."""
    drain_s: float = 10.0
    """On shutdown: how long calls may go on after the browsers were told."""

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    return Response(status.value, status.phrase, headers, body)


class CallServer:
    """Glue: one websockets server in front of the signaling server, the node and the files."""

    def __init__(self, serve_config: ServeConfig, node_config: NodeConfig, limits: Limits) -> None:
        self.config = serve_config
        self.node_config = node_config
        self.signaling = SignalingServer(
            limits, serve_config.token_secret, OriginPolicy(list(serve_config.allow_origins))
        )
        self.node: Node | None = None
        self.server: Server | None = None
        self.internal: Server | None = None
        """Plain-websocket twin of /ws on 127.0.0.1 for our own node when the port is TLS."""
        self.draining = False

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(next(iter(self.server.sockets)).getsockname()[1])

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return None
        return server_context(self.config.tls_cert, self.config.tls_key)

    async def start(self, node_factory: Any = Node) -> None:
        context = self.ssl_context()
        self.server = await serve(
            self.signaling.handler,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=self.signaling.limits.max_message_bytes,
            close_timeout=2,
            ssl=context,
        )
        if self.config.peer_node:
            self.node_config.signaling_url = self.config.peer_node
        elif context is None:
            self.node_config.signaling_url = f"ws://{self._own_host()}:{self.port}{WS_PATH}"
        else:
            # Our own node stays on plain loopback: the certificate may name only the LAN
            # address (or be self-signed), and loopback traffic never leaves this machine.
            self.internal = await serve(
                self.signaling.handler,
                "127.0.0.1",
                0,
                process_request=self._internal_request,
                max_size=self.signaling.limits.max_message_bytes,
                close_timeout=2,
            )
            internal_port = next(iter(self.internal.sockets)).getsockname()[1]
            self.node_config.signaling_url = f"ws://127.0.0.1:{internal_port}{WS_PATH}"
        if self.config.token_secret:
            self.node_config.node_token = make_token(
                self.config.token_secret, f"node:{self.node_config.node_id}"
            )
        self.node = node_factory(self.node_config)
        await self.node.start()

    def _own_host(self) -> str:
        """Where our node reaches this server: loopback unless we listen on one address."""
        host = self.config.host
        if host in ("", "0.0.0.0", "::", "localhost"):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    async def drain(self, seconds: float) -> None:
        """Tell browsers the server stops, take no new joins, wait for calls to end (≤ seconds).

        `/healthz` answers 503 `draining` from now on, so a load balancer sends new calls
        elsewhere while the current ones finish.
        """
        self.draining = True
        self.signaling.drain(seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        # Participants leave through many paths of the signaling server; polling a count
        # ten times a second for a few seconds is simpler than an event on each of them.
        while self.signaling.participants() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        log.info(
            "drained: %d participants still in calls",
            self.signaling.participants(),
            extra={"event": "drained", "participants": self.signaling.participants()},
        )

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop()
        for server in (self.server, self.internal):
            if server is not None:
                server.close()
                await bounded(server.wait_closed(), "closing the HTTP/websocket server")

    def health(self) -> tuple[str, bool]:
        """('starting' | 'ready' | 'draining', whether new calls are welcome)."""
        if self.draining:
            return "draining", False
        if self.node is not None and self.node.registered.is_set():
            return "ready", True
        return "starting", False

    # -- HTTP --------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == WS_PATH:
            return self.signaling.check_request(connection, request)
        if path == "/healthz":
            state, healthy = self.health()
            body = json.dumps({"ok": healthy, "state": state, **self.signaling.snapshot()})
            body = body.encode()
            status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            return _response(status, body, "application/json")
        if path == "/metrics":
            text = node_metrics(self.node, self.signaling.snapshot()) if self.node else ""
            return _response(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4")
        if path == "/config.json":
            body = json.dumps(self.page_config()).encode()
            return _response(HTTPStatus.OK, body, "application/json")
        if path == "/models/face_landmarker.task":
            # The browser sender's landmark model: the very file the Python side uses, checked.
            from lpstream.errors import ModelFileError
            from lpstream.face.landmarks import find_face_landmarker_model

            try:
                model = find_face_landmarker_model().read_bytes()
            except ModelFileError as error:
                return _response(HTTPStatus.NOT_FOUND, f"{error}\n".encode(), "text/plain")
            return _response(HTTPStatus.OK, model, "application/octet-stream")
        return self._static(path)

    def _internal_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != WS_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return self.signaling.check_request(connection, request)

    def page_config(self) -> dict[str, Any]:
        """What the page needs to call in: where signaling is, which node serves it.

        Shared-secret TURN credentials are minted per request, so each page gets its own
        short-lived username.
        """
        page = f"web-{secrets.token_hex(4)}"
        return {
            "signaling": self.config.peer_node,  # None: same origin, /ws
            "node": self.node_config.node_id,
            "iceServers": [server.browser_entry(page) for server in self.node_config.ice_servers],
            "slots": self.node_config.avatar_slots,
            "tokens": bool(self.config.token_secret),
            # The page picks the first kind it can run (it falls back to the last).
            "uplinks": self.node.uplinks if self.node else [],
            "downlinks": self.node.downlinks if self.node else [],
        }

    def _static(self, path: str) -> Response:
        root = self.config.web_root.resolve()
        relative = path.lstrip("/") or "index.html"
        file = (root / relative).resolve()
        if root not in file.parents or not file.is_file():
            return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        content_type = CONTENT_TYPES.get(file.suffix) or (
            mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        )
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        return _response(HTTPStatus.OK, file.read_bytes(), content_type)


async def run(settings: Settings) -> int:
    serve_config = ServeConfig(
        host=settings.host,
        port=settings.port,
        peer_node=settings.peer_node,
        token_secret=settings.token_secret,
        allow_origins=tuple(settings.allow_origin),
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        drain_s=settings.drain_seconds,
    )
    node_config = NodeConfig(
        node_id=settings.node_id or f"node-{secrets.token_hex(3)}",
        backend=settings.backend,
        weights=settings.weights,
        device=settings.device,
        ice_servers=settings.ice_servers(),
        fps=settings.fps,
        avatar_slots=settings.max_participants - 1,
    )
    limits = Limits(
        max_participants=settings.max_participants,
        max_rooms=settings.max_rooms,
        max_connections=settings.max_connections,
    )
    server = CallServer(serve_config, node_config, limits)
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(
                signum, lambda s=signum: stop.done() or stop.set_result(s)
            )
    try:
        await server.start()
    except Exception as exc:
        log.error("could not start: %s", exc)
        await server.stop()
        return 1
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = settings.public_url or f"{serve_config.scheme}://{shown_host}:{server.port}"
    print(
        f"lpstream call on {base.rstrip('/')}/?room=demo&name=alice&autojoin=1 "
        f"(backend {server.node.backend_name if server.node else '?'}; Ctrl-C stops)",
        flush=True,
    )
    await stop
    print("shutting down…", flush=True)
    if serve_config.drain_s > 0 and server.signaling.participants():
        draining = asyncio.ensure_future(server.drain(serve_config.drain_s))
        second = asyncio.get_running_loop().create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C stops at once
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(
                    signum, lambda: second.done() or second.set_result(None)
                )
        await asyncio.wait({draining, second}, return_when=asyncio.FIRST_COMPLETED)
        draining.cancel()
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except SettingsError as error:
        print(f"{build_parser().prog}: error: {error}", file=sys.stderr)
        return 2
    if settings.print_token:
        print(make_token(settings.token_secret, settings.print_token))
        return 0
    configure_logging(settings.log_format, settings.log_level)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(settings))
    return uvloop.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
