"""ICE consent freshness under a busy event loop (lpstream.node.ice_consent).

Two real aioice connections on this machine's interface; the answering side's Binding
responses are held back as a loaded event loop would hold them. Stock aioice gives up after
six checks answered later than 500 ms and closes a connection whose peer answers every
request; the patched loop keeps it, and still closes one whose peer is gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from aioice import stun

from lpstream.node import ice_consent

INTERVAL_S = 0.2
"""Consent checks every ~0.2 s instead of ~5 s, so that a test takes seconds."""
LATE_S = 0.8
"""Every response this late: past aioice's single 500 ms timer, inside the retransmissions."""


async def connected_pair() -> tuple[aioice.Connection, aioice.Connection]:
    a = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for one, other in ((a, b), (b, a)):
        for candidate in other.local_candidates:
            await one.add_remote_candidate(candidate)
        await one.add_remote_candidate(None)
        one.remote_username, one.remote_password = other.local_username, other.local_password
    await asyncio.gather(a.connect(), b.connect())
    return a, b


def answer_late(connection: aioice.Connection) -> None:
    """Binding responses of `connection` leave LATE_S after the request arrived."""
    for protocol in connection._protocols:
        send = protocol.send_stun

        def late(message: stun.Message, addr: Any, send: Any = send) -> None:
            if message.message_class == stun.Class.RESPONSE:
                asyncio.get_running_loop().call_later(LATE_S, send, message, addr)
            else:
                send(message, addr)

        protocol.send_stun = late  # type: ignore[method-assign]


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", INTERVAL_S)
    monkeypatch.setattr(ice_consent, "CONSENT_TIMEOUT_S", 3.0)
    monkeypatch.setattr(ice_consent, "CHECK_RETRANSMISSIONS", 2)  # answers ≤ 3.5 s late count


@pytest.fixture
def stock_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice's own loop, even if a node patched it already in this process."""
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", ice_consent.STOCK_QUERY_CONSENT)


async def alive_after(a: aioice.Connection, seconds: float) -> bool:
    await asyncio.sleep(seconds)
    try:
        await a.send(b"still here")
    except ConnectionError:
        return False
    return True


async def test_stock_aioice_drops_a_peer_that_answers_late(
    fast_consent: None, stock_consent: None
) -> None:
    """The defect itself: answers 0.8 s late, six checks, the connection is closed."""
    a, b = await connected_pair()
    answer_late(b)
    try:
        assert not await alive_after(a, 6 * INTERVAL_S * 1.2 + 6 * 0.5 + 1.5)
    finally:
        await a.close()
        await b.close()


async def test_late_answers_keep_consent_and_a_silent_peer_loses_it(
    fast_consent: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", ice_consent.query_consent)
    a, b = await connected_pair()
    answer_late(b)
    try:
        assert await alive_after(a, 5.0), "late but real answers are consent"
        before = ice_consent.expired
        await b.close()  # gone: no answers at all from now on
        await asyncio.sleep(3.0 + 2 * INTERVAL_S + 3.5 + 1.0)
        assert ice_consent.expired == before + 1
        with pytest.raises(ConnectionError):
            await a.send(b"anyone?")
    finally:
        await a.close()
        await b.close()
