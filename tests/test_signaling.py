"""Signaling server over real websockets on loopback: rooms, relay, tokens, origins, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signaling import Limits, SignalingServer, make_token, verify_token
from signaling.errors import TokenError
from signaling.origins import OriginPolicy


async def start(server: SignalingServer) -> tuple[Any, str]:
    ws_server = await server.serve("127.0.0.1", 0)
    port = next(iter(ws_server.sockets)).getsockname()[1]
    return ws_server, f"ws://127.0.0.1:{port}/ws"


@pytest.fixture
async def running() -> AsyncIterator[tuple[SignalingServer, str]]:
    server = SignalingServer(Limits(max_participants=3))
    ws_server, url = await start(server)
    yield server, url
    ws_server.close()
    await ws_server.wait_closed()


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def recv(ws: ClientConnection, kind: str | None = None) -> dict[str, Any]:
    """Next message (of `kind`, skipping others)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if kind is None or message["type"] == kind:
            return message


async def node(url: str, node_id: str = "A", token: str | None = None) -> ClientConnection:
    ws = await connect(url)
    await send(ws, type="register-node", node=node_id, token=token)
    assert (await recv(ws))["type"] == "registered"
    return ws


async def joined_participant(
    url: str, room: str, name: str, **extra: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url)
    await send(ws, type="join", room=room, name=name, **extra)
    joined = await recv(ws)
    assert joined["type"] == "joined", joined
    return ws, joined


async def participant(url: str, room: str, name: str, **extra: Any) -> tuple[ClientConnection, str]:
    ws, joined = await joined_participant(url, room, name, **extra)
    return ws, joined["id"]


def test_tokens_admit_only_their_room_until_expiry() -> None:
    token = make_token("s3cret", "kitchen", ttl_s=60, now=1000)
    verify_token("s3cret", "kitchen", token, now=1030)
    with pytest.raises(TokenError, match="not valid for room"):
        verify_token("s3cret", "garden", token, now=1030)
    with pytest.raises(TokenError, match="not valid"):
        verify_token("other", "kitchen", token, now=1030)
    with pytest.raises(TokenError, match="expired"):
        verify_token("s3cret", "kitchen", token, now=1061)
    with pytest.raises(TokenError, match="malformed"):
        verify_token("s3cret", "kitchen", "abc", now=1030)
    with pytest.raises(TokenError, match="needs a token"):
        verify_token("s3cret", "kitchen", None)


def test_origin_policy() -> None:
    policy = OriginPolicy(["https://ok.example"])
    assert policy.allows(None, "h:1")
    assert policy.allows("http://h:1", "h:1")
    assert policy.allows("https://ok.example", "h:1")
    assert not policy.allows("https://evil.example", "h:1")
    assert OriginPolicy(["*"]).allows("https://evil.example", "h:1")


async def test_join_without_node_is_refused(running: tuple[SignalingServer, str]) -> None:
    _, url = running
    async with connect(url) as ws:
        await send(ws, type="join", room="r", name="ann")
        error = await recv(ws)
        assert error == {
            "type": "error",
            "code": "no-node",
            "message": "no media node is connected to this server",
        }


async def test_room_membership_and_relay(running: tuple[SignalingServer, str]) -> None:
    server, url = running
    node_ws = await node(url)
    ann, ann_id = await participant(url, "r", "ann")
    bob, bob_id = await participant(url, "r", "bob")
    room = await recv(bob, "room")
    assert {m["name"] for m in room["members"]} == {"ann", "bob"}
    assert room["nodes"] == ["node:A"]
    # the node hears about both joins
    first = await recv(node_ws, "room")
    second = await recv(node_ws, "room")
    assert len(first["members"]) == 1 and len(second["members"]) == 2

    await send(ann, type="signal", to="node:A", data={"sdp": "offer-from-ann"})
    relayed = await recv(node_ws, "signal")
    assert relayed == {"type": "signal", "from": ann_id, "data": {"sdp": "offer-from-ann"}}
    await send(node_ws, type="signal", to=bob_id, data={"sdp": "answer"})
    assert (await recv(bob, "signal"))["data"] == {"sdp": "answer"}

    # a participant may not talk to another participant directly
    await send(ann, type="signal", to=bob_id, data="hi")
    assert (await recv(ann, "error"))["code"] == "bad-target"

    await send(bob, type="leave")
    assert (await recv(bob, "left"))["type"] == "left"
    room = await recv(ann, "room")
    assert [m["name"] for m in room["members"]] == ["ann"]
    assert server.snapshot()["participants"] == 1
    for ws in (ann, bob, node_ws):
        await ws.close()


async def test_room_limit_and_reconnect(running: tuple[SignalingServer, str]) -> None:
    _, url = running
    node_ws = await node(url)
    clients = [await joined_participant(url, "full", name) for name in ("a", "b", "c")]
    async with connect(url) as extra:
        await send(extra, type="join", room="full", name="d")
        assert (await recv(extra, "error"))["code"] == "room-full"
    # the same name with the secret of its last join replaces the old connection (reconnect)
    again, again_joined = await joined_participant(url, "full", "b", resume=clients[1][1]["resume"])
    again_id = again_joined["id"]
    assert again_joined["resume"] != clients[1][1]["resume"]  # a fresh secret every join
    old = clients[1][0]
    assert (await recv(old, "error"))["code"] == "replaced"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(old.recv(), 5)
    room = await recv(again, "room")
    assert sorted(m["name"] for m in room["members"]) == ["a", "b", "c"]
    assert again_id in {m["id"] for m in room["members"]}
    for ws in (again, node_ws, clients[0][0], clients[2][0]):
        await ws.close()


async def test_a_name_in_use_cannot_be_taken_without_its_secret(
    running: tuple[SignalingServer, str],
) -> None:
    """Joining under someone's name (with no secret, or a wrong or stale one) is refused and
    the participant keeps their place; the name is free again once they leave."""
    server, url = running
    node_ws = await node(url)
    ann, ann_joined = await joined_participant(url, "calm", "ann")
    stale = ann_joined["resume"]
    ann_again, ann_again_joined = await joined_participant(url, "calm", "ann", resume=stale)
    assert (await recv(ann, "error"))["code"] == "replaced"
    async with connect(url) as thief:
        for resume in (None, "", stale, "x" * 24):
            await send(thief, type="join", room="calm", name="ann", resume=resume)
            error = await recv(thief, "error")
            assert error["code"] == "name-taken" and "choose another name" in error["message"]
        # the thief's connection stays usable: another name gets in
        await send(thief, type="join", room="calm", name="eve")
        assert (await recv(thief, "joined"))["room"] == "calm"
    await send(ann_again, type="ping")
    assert (await recv(ann_again))["type"] in ("room", "pong")  # not replaced, not closed
    members = [c.id for c in server.rooms["calm"].values() if c.name == "ann"]
    assert members == [ann_again_joined["id"]]
    await send(ann_again, type="leave")
    await recv(ann_again, "left")
    newcomer, _ = await participant(url, "calm", "ann")  # a free name needs no secret
    for ws in (newcomer, ann_again, node_ws):
        await ws.close()


async def test_tokens_are_enforced() -> None:
    server = SignalingServer(token_secret="k")
    ws_server, url = await start(server)
    try:
        with pytest.raises(AssertionError):
            await node(url, "A")  # a node needs a token too
        node_ws = await node(url, "A", token=make_token("k", "node:A"))
        async with connect(url) as ws:
            await send(ws, type="join", room="r", name="x", token=make_token("k", "other"))
            assert (await recv(ws, "error"))["code"] == "bad-token"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        ok, _ = await participant(url, "r", "x", token=make_token("k", "r"))
        await ok.close()
        await node_ws.close()
    finally:
        ws_server.close()
        await ws_server.wait_closed()


async def test_foreign_origin_is_rejected(running: tuple[SignalingServer, str]) -> None:
    _, url = running
    with pytest.raises(InvalidStatus) as info:
        await connect(url, origin="https://evil.example")
    assert info.value.response.status_code == 403
    port = url.split(":")[2].split("/")[0]
    async with connect(url, origin=f"http://127.0.0.1:{port}") as ws:
        await send(ws, type="ping")
        assert (await recv(ws))["type"] == "pong"


async def test_hostile_clients_do_not_hurt_others(running: tuple[SignalingServer, str]) -> None:
    server, url = running
    node_ws = await node(url)
    good, _ = await participant(url, "calm", "ann")

    flooder = await connect(url)
    for _ in range(server.limits.message_burst + 50):
        try:
            await flooder.send('{"type":"ping"}')
        except ConnectionClosed:
            break
    assert (await recv(flooder, "error"))["code"] == "rate-limit"

    big = await connect(url)
    with pytest.raises(ConnectionClosed) as closed:
        await big.send("x" * (server.limits.max_message_bytes + 1))
        await asyncio.wait_for(big.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    garbage = await connect(url)
    for payload in ("nope", "[1]", '{"type":"join"}', '{"type":"warp"}', "\x00" * 10):
        await garbage.send(payload)
        assert (await recv(garbage))["code"] == "bad-message"
    await garbage.send(b"\x01\x02")
    assert (await recv(garbage))["code"] == "bad-message"

    # the calm participant's call is untouched
    await send(good, type="signal", to="node:A", data={"still": "here"})
    assert (await recv(node_ws, "signal"))["data"] == {"still": "here"}
    await send(good, type="ping")
    assert (await recv(good, "pong"))["type"] == "pong"
    for ws in (good, node_ws, garbage, flooder):
        await ws.close()


async def test_node_loss_tells_its_participants(running: tuple[SignalingServer, str]) -> None:
    server, url = running
    node_a = await node(url, "A")
    node_b = await node(url, "B")
    ann, _ = await participant(url, "r", "ann", node="A")
    bob, bob_id = await participant(url, "r", "bob", node="B")
    room = await recv(node_a, "room")
    while len(room["members"]) < 2:
        room = await recv(node_a, "room")
    assert room["nodes"] == ["node:A", "node:B"]
    # nodes sharing a room may signal each other (the node-to-node data link)
    await send(node_a, type="signal", to="node:B", data="link-offer")
    assert (await recv(node_b, "signal"))["from"] == "node:A"
    # but node A may not signal node B's participant
    await send(node_a, type="signal", to=bob_id, data="x")
    assert (await recv(node_a, "error"))["code"] == "bad-target"

    await node_b.close()
    assert (await recv(bob, "error"))["code"] == "node-gone"
    room = await recv(ann, "room")
    while len(room["members"]) != 1:
        room = await recv(ann, "room")
    assert room["nodes"] == ["node:A"]
    assert server.snapshot()["nodes"] == 1
    for ws in (ann, bob, node_a):
        await ws.close()
