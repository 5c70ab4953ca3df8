"""The signaling server: rooms of participants, each hosted by a media node; SDP/ICE relay.

A participant (browser) joins a room and is assigned a media node (the one that served its
page, else the least loaded). Nodes register once and learn the membership of every room
they host someone in, so they can connect to their participants and to each other.
Relaying is restricted: a participant may only signal its own node; a node may signal its
participants and the other nodes of rooms it shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lpstream.rate_limit import TokenBucket
from signaling.errors import SignalingError
from signaling.limits import Limits
from signaling.messages import Join, Leave, Ping, RegisterNode, Signal, parse_message
from signaling.origins import OriginPolicy
from signaling.tokens import verify_token

log = logging.getLogger("signaling")

WS_PATH = "/ws"
OUTBOX_SIZE = 256
"""Messages queued for a slow client before it is disconnected rather than slowing others."""


@dataclass(eq=False)
class Client:
    """One websocket connection: a participant or a node, before or after it identified."""

    connection: ServerConnection
    bucket: TokenBucket
    outbox: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(OUTBOX_SIZE))
    id: str = ""
    kind: str = ""
    """'participant' or 'node' once identified."""
    room: str = ""
    name: str = ""
    node: str = ""
    """For a participant: the member id of its media node."""
    resume: str = ""
    """For a participant: the secret a reconnect under the same name must show to replace it."""
    errors: int = 0

    closed: bool = False

    def send(self, message: dict[str, Any]) -> None:
        """Queue without waiting; a client whose queue is full is too slow and is dropped."""
        if self.closed:
            return
        try:
            self.outbox.put_nowait(json.dumps(message, separators=(",", ":")))
        except asyncio.QueueFull:
            log.warning("dropping slow client %s", self.id or "?")
            self.close()

    def close(self) -> None:
        """Ask the writer to close the connection after what is already queued."""
        if self.closed:
            return
        self.closed = True
        while True:
            try:
                self.outbox.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.outbox.get_nowait()  # a stuck client loses its oldest messages


def _address(connection: ServerConnection) -> str:
    remote = connection.remote_address
    return str(remote[0]) if isinstance(remote, tuple) and remote else ""


class SignalingServer:
    """Rooms and relay; `handler` serves one websocket connection."""

    def __init__(
        self,
        limits: Limits | None = None,
        token_secret: str | None = None,
        origins: OriginPolicy | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.token_secret = token_secret or None
        self.origins = origins or OriginPolicy()
        self.clients: set[Client] = set()
        self.nodes: dict[str, Client] = {}
        self.rooms: dict[str, dict[str, Client]] = {}
        self._ids = itertools.count(1)
        self.stats = {"messages": 0, "relayed": 0, "rejected": 0, "errors": 0}
        self.draining = False
        """Shutting down: no new joins; participants were told (`drain`)."""

    # -- HTTP side ---------------------------------------------------------------------------

    def check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a websocket upgrade from a foreign origin or beyond the connection limit."""
        if not self.origins.allows(request.headers.get("Origin"), request.headers.get("Host")):
            self.stats["rejected"] += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if len(self.clients) >= self.limits.max_connections:
            self.stats["rejected"] += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        address = _address(connection)
        if (
            sum(1 for c in self.clients if _address(c.connection) == address)
            >= self.limits.max_connections_per_address
        ):
            self.stats["rejected"] += 1
            return connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from this address\n"
            )
        return None

    async def serve(self, host: str, port: int) -> Server:
        """Standalone server: websocket at /ws (and /), `/healthz` for probes."""

        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            path = request.path.split("?", 1)[0]
            if path == "/healthz":
                return connection.respond(HTTPStatus.OK, "ok\n")
            if path not in (WS_PATH, "/"):
                return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
            return self.check_request(connection, request)

        return await serve(
            self.handler,
            host,
            port,
            process_request=process_request,
            max_size=self.limits.max_message_bytes,
            close_timeout=2,  # a hostile client must not hold a connection open by stalling
        )

    # -- one connection ----------------------------------------------------------------------

    async def handler(self, connection: ServerConnection) -> None:
        client = Client(
            connection,
            TokenBucket(self.limits.messages_per_second, self.limits.message_burst),
        )
        self.clients.add(client)
        writer = asyncio.create_task(self._write(client))
        try:
            async for raw in connection:
                if not await self._receive(client, raw):
                    break
        except ConnectionClosed:
            pass
        finally:
            self._forget(client)
            client.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2.0)
            self.clients.discard(client)

    async def _write(self, client: Client) -> None:
        """Drain the client's outbox in order; None closes the connection."""
        while True:
            message = await client.outbox.get()
            if message is None:
                await client.connection.close(1008 if client.errors else 1000)
                return
            try:
                await client.connection.send(message)
            except ConnectionClosed:
                return

    async def _receive(self, client: Client, raw: str | bytes) -> bool:
        """Handle one message; False ends the connection."""
        self.stats["messages"] += 1
        if not client.bucket.allow():
            client.errors += 1
            client.send({"type": "error", "code": "rate-limit", "message": "too many messages"})
            client.close()
            return False
        try:
            message = parse_message(raw, self.limits.max_name_length)
            self._dispatch(client, message)
        except SignalingError as exc:
            self.stats["errors"] += 1
            client.errors += 1
            client.send({"type": "error", "code": exc.code, "message": exc.message})
            if exc.code == "bad-token" or client.errors >= self.limits.max_protocol_errors:
                client.close()
                return False
        except Exception:  # a bug here must never take down the other calls
            log.exception("signaling handler failed for %s", client.id or "?")
            client.send({"type": "error", "code": "internal", "message": "server error"})
        return True

    def _dispatch(self, client: Client, message: object) -> None:
        if isinstance(message, Ping):
            client.send({"type": "pong"})
        elif isinstance(message, Join):
            self._join(client, message)
        elif isinstance(message, RegisterNode):
            self._register_node(client, message)
        elif isinstance(message, Signal):
            self._relay(client, message)
        elif isinstance(message, Leave):
            self._forget(client)
            client.send({"type": "left"})

    # -- membership --------------------------------------------------------------------------

    def _register_node(self, client: Client, message: RegisterNode) -> None:
        if client.kind:
            raise SignalingError("bad-state", "this connection already identified itself")
        if self.token_secret:
            verify_token(self.token_secret, f"node:{message.node}", message.token)
        member_id = f"node:{message.node}"
        if member_id in self.nodes:
            raise SignalingError("node-exists", f"node {message.node!r} is already registered")
        if len(self.nodes) >= self.limits.max_nodes:
            raise SignalingError("too-many-nodes", "node limit reached")
        client.id, client.kind = member_id, "node"
        self.nodes[member_id] = client
        log.info("%s registered", member_id, extra={"event": "node-registered", "node": member_id})
        client.send({"type": "registered", "id": member_id})

    def drain(self, seconds: float) -> None:
        """Stop taking joins and tell every participant the server stops in `seconds`."""
        self.draining = True
        notice = {
            "type": "notice",
            "code": "draining",
            "message": "the server is restarting; the call ends shortly and rejoins by itself",
            "seconds": seconds,
        }
        for members in self.rooms.values():
            for member in members.values():
                member.send(notice)
        log.info(
            "draining: %d participants told, %.0f s left",
            self.participants(),
            seconds,
            extra={"event": "drain", "participants": self.participants()},
        )

    def participants(self) -> int:
        return sum(len(m) for m in self.rooms.values())

    def _join(self, client: Client, message: Join) -> None:
        if client.kind:
            raise SignalingError("bad-state", "this connection already joined; send 'leave' first")
        if self.draining:
            raise SignalingError("draining", "the server is restarting; try again in a moment")
        if self.token_secret:
            verify_token(self.token_secret, message.room, message.token)
        node = self._pick_node(message.node)
        members = self.rooms.get(message.room, {})
        previous = next((c for c in members.values() if c.name == message.name), None)
        if previous is None and len(members) >= self.limits.max_participants:
            raise SignalingError(
                "room-full", f"room {message.room!r} is full ({self.limits.max_participants} max)"
            )
        if not members and len(self.rooms) >= self.limits.max_rooms:
            raise SignalingError("too-many-rooms", "room limit reached, try again later")
        if previous is not None:
            # A reconnect (the tab lost its websocket, or reloaded) shows the secret its last
            # `joined` gave it and replaces the old connection; anyone else choosing that name
            # is refused, so nobody can throw a participant out by joining under their name.
            if not (message.resume and hmac.compare_digest(message.resume, previous.resume)):
                raise SignalingError(
                    "name-taken",
                    f"{message.name!r} is already in room {message.room!r}: choose another name"
                    " (if that is you in another tab, close it; its name is freed within a minute)",
                )
            previous.send({"type": "error", "code": "replaced", "message": "joined elsewhere"})
            self._forget(previous)
            previous.close()
        client.id = f"p{next(self._ids)}-{secrets.token_hex(3)}"
        client.kind, client.room, client.name, client.node = (
            "participant",
            message.room,
            message.name,
            node.id,
        )
        self.rooms.setdefault(message.room, {})[client.id] = client
        client.resume = secrets.token_urlsafe(18)
        client.send(
            {
                "type": "joined",
                "id": client.id,
                "room": client.room,
                "node": node.id,
                "resume": client.resume,
            }
        )
        log.info(
            "%s joined room %s as %r on %s",
            client.id,
            client.room,
            client.name,
            node.id,
            extra={
                "event": "join",
                "room": client.room,
                "participant": client.id,
                "display_name": client.name,
                "node": node.id,
            },
        )
        self._announce(message.room, extra_recipients=())

    def _pick_node(self, wanted: str | None) -> Client:
        if wanted:
            node = self.nodes.get(wanted if wanted.startswith("node:") else f"node:{wanted}")
            if node is None:
                raise SignalingError("no-node", f"media node {wanted!r} is not connected")
            return node
        if not self.nodes:
            raise SignalingError("no-node", "no media node is connected to this server")
        load = {node_id: 0 for node_id in self.nodes}
        for members in self.rooms.values():
            for member in members.values():
                if member.node in load:
                    load[member.node] += 1
        return self.nodes[min(load, key=lambda node_id: load[node_id])]

    def _forget(self, client: Client) -> None:
        """Remove a client from every structure and tell whoever needs to know."""
        if client.kind == "participant":
            members = self.rooms.get(client.room, {})
            if members.get(client.id) is client:
                del members[client.id]
                log.info(
                    "%s left room %s",
                    client.id,
                    client.room,
                    extra={"event": "leave", "room": client.room, "participant": client.id},
                )
                if not members:
                    del self.rooms[client.room]
                node = self.nodes.get(client.node)
                self._announce(client.room, extra_recipients=[node] if node else [])
        elif client.kind == "node" and self.nodes.get(client.id) is client:
            del self.nodes[client.id]
            for room, members in list(self.rooms.items()):
                orphans = [c for c in members.values() if c.node == client.id]
                for orphan in orphans:
                    orphan.send({"type": "error", "code": "node-gone", "message": "node left"})
                    del members[orphan.id]
                    orphan.kind = ""
                    orphan.close()
                if not members:
                    del self.rooms[room]
                elif orphans:
                    self._announce(room, extra_recipients=())
        client.kind = ""

    def room_nodes(self, room: str) -> list[str]:
        return sorted({c.node for c in self.rooms.get(room, {}).values()})

    def _announce(self, room: str, extra_recipients: Iterable[Client]) -> None:
        members = self.rooms.get(room, {})
        message = {
            "type": "room",
            "room": room,
            "members": [{"id": c.id, "name": c.name, "node": c.node} for c in members.values()],
            "nodes": self.room_nodes(room),
        }
        recipients: list[Client] = list(members.values())
        recipients += [self.nodes[n] for n in self.room_nodes(room) if n in self.nodes]
        for extra in extra_recipients:
            if extra not in recipients:
                recipients.append(extra)
        for recipient in recipients:
            recipient.send(message)

    # -- relay -------------------------------------------------------------------------------

    def _relay(self, client: Client, message: Signal) -> None:
        target = self._allowed_target(client, message.to)
        if target is None:
            raise SignalingError("bad-target", f"cannot signal {message.to!r} from here")
        self.stats["relayed"] += 1
        target.send({"type": "signal", "from": client.id, "data": message.data})

    def _allowed_target(self, client: Client, to: str) -> Client | None:
        if client.kind == "participant":
            return self.nodes.get(to) if to == client.node else None
        if client.kind != "node":
            return None
        for members in self.rooms.values():
            target = members.get(to)
            if target is not None and target.node == client.id:
                return target
        if to in self.nodes and to != client.id:
            shares_room = any(
                client.id in self.room_nodes(room) and to in self.room_nodes(room)
                for room in self.rooms
            )
            return self.nodes[to] if shares_room else None
        return None

    def snapshot(self) -> dict[str, Any]:
        """Counts for /healthz and /metrics."""
        return {
            "connections": len(self.clients),
            "nodes": len(self.nodes),
            "rooms": len(self.rooms),
            "participants": self.participants(),
            **self.stats,
        }
