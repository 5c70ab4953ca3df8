"""`python -m lpstream.serve`: the web client, the signaling server and the media node.

One port serves everything: static files of `web_client/`, `/config.json` for the page,
`/healthz`, `/metrics` (Prometheus text) and the signaling websocket at `/ws`.
HTTP is answered from websockets' `process_request` hook: the pages are a handful of
small static files, so an HTTP framework (aiohttp) would be a dependency for nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import mimetypes
import secrets
import signal
import sys
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from lpstream.node import Node, NodeConfig
from lpstream.node.metrics import node_metrics
from lpstream.node.shutdown import bounded
from signaling import Limits, SignalingServer, make_token
from signaling.origins import OriginPolicy
from signaling.server import WS_PATH

log = logging.getLogger("lpstream.serve")

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"
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

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(next(iter(self.server.sockets)).getsockname()[1])

    async def start(self, node_factory: Any = Node) -> None:
        self.server = await serve(
            self.signaling.handler,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=self.signaling.limits.max_message_bytes,
            close_timeout=2,
        )
        if self.config.peer_node:
            self.node_config.signaling_url = self.config.peer_node
        else:
            self.node_config.signaling_url = f"ws://127.0.0.1:{self.port}{WS_PATH}"
        if self.config.token_secret:
            self.node_config.node_token = make_token(
                self.config.token_secret, f"node:{self.node_config.node_id}"
            )
        self.node = node_factory(self.node_config)
        await self.node.start()

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop()
        if self.server is not None:
            self.server.close()
            await bounded(self.server.wait_closed(), "closing the HTTP/websocket server")

    # -- HTTP --------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == WS_PATH:
            return self.signaling.check_request(connection, request)
        if path == "/healthz":
            healthy = self.node is not None and self.node.registered.is_set()
            body = json.dumps({"ok": healthy, **self.signaling.snapshot()}).encode()
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

    def page_config(self) -> dict[str, Any]:
        """What the page needs to call in: where signaling is, which node serves it."""
        return {
            "signaling": self.config.peer_node,  # None: same origin, /ws
            "node": self.node_config.node_id,
            "iceServers": [{"urls": url} for url in self.node_config.ice_servers],
            "slots": self.node_config.avatar_slots,
            "tokens": bool(self.config.token_secret),
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lpstream.serve",
        description="Serve the avatar call: web client, signaling and the WebRTC media node.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", default="auto", help="motion/render backend (default auto)")
    parser.add_argument("--weights", default=None, help="LivePortrait weights folder")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument(
        "--ice-server", action="append", default=[], help="STUN/TURN URL (repeatable)"
    )
    parser.add_argument("--token-secret", default=None, help="require HMAC room tokens")
    parser.add_argument("--node-id", default=None, help="unique id of this node")
    parser.add_argument(
        "--peer-node",
        default=None,
        metavar="WS_URL",
        help="share calls with another node: register at its signaling (ws://host:port/ws)",
    )
    parser.add_argument(
        "--allow-origin", action="append", default=[], help="extra allowed page origin"
    )
    parser.add_argument("--max-participants", type=int, default=4, help="per room (2-4)")
    parser.add_argument("--max-rooms", type=int, default=Limits.max_rooms)
    parser.add_argument("--max-connections", type=int, default=Limits.max_connections)
    parser.add_argument("--fps", type=float, default=25.0, help="avatar frame rate")
    parser.add_argument("--print-token", metavar="ROOM", help="print a room token and exit")
    return parser


async def run(args: argparse.Namespace) -> int:
    serve_config = ServeConfig(
        host=args.host,
        port=args.port,
        peer_node=args.peer_node,
        token_secret=args.token_secret,
        allow_origins=tuple(args.allow_origin),
    )
    node_config = NodeConfig(
        node_id=args.node_id or f"node-{secrets.token_hex(3)}",
        backend=args.backend,
        weights=args.weights,
        device=args.device,
        ice_servers=list(args.ice_server),
        fps=args.fps,
        avatar_slots=args.max_participants - 1,
    )
    limits = Limits(
        max_participants=args.max_participants,
        max_rooms=args.max_rooms,
        max_connections=args.max_connections,
    )
    server = CallServer(serve_config, node_config, limits)
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, signum)
    try:
        await server.start()
    except Exception as exc:
        log.error("could not start: %s", exc)
        await server.stop()
        return 1
    print(
        f"lpstream call on http://{args.host}:{server.port}/?room=demo&name=alice&autojoin=1 "
        f"(backend {server.node.backend_name if server.node else '?'}; Ctrl-C stops)",
        flush=True,
    )
    await stop
    print("shutting down…", flush=True)
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_token:
        if not args.token_secret:
            print("--print-token needs --token-secret", file=sys.stderr)
            return 2
        print(make_token(args.token_secret, args.print_token))
        return 0
    if not 2 <= args.max_participants <= 4:
        print("--max-participants must be 2, 3 or 4", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per HTTP request
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
