"""ICE consent freshness that survives a busy event loop (aioice patch, RFC 7675).

aioice checks consent every ~5 s with ONE Binding request and no retransmission: a response
later than its first retransmission timer (500 ms) is thrown away, and six such checks in a
row close the connection. An answer takes longer than that whenever either peer's event loop
is busy for half a second: a loaded 2-core machine with 20 calls on one node was enough,
and every call dropped ~35 s after it started ("Cannot send data, not connected"), although
both sides answered every request. RFC 7675 §5.1 asks for something else: consent is lost
when no response at all arrived for 30 s. Here each check is retransmitted (0.5, 1, 2, 4 s:
a response up to 7.5 s late still counts), and the connection is closed only after
`CONSENT_TIMEOUT_S` without any authenticated response. A peer that is gone is still
detected within ~35 s; an error response (the peer refuses the credentials) is not consent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from typing import Any

import aioice.ice
from aioice import stun

log = logging.getLogger("lpstream.node")

CONSENT_TIMEOUT_S = 30.0
"""RFC 7675 §5.1: consent expires this long after the last response."""
CHECK_RETRANSMISSIONS = 3
"""Resends of one check (RTO 0.5 s doubling): a response up to 7.5 s late still counts."""

STOCK_QUERY_CONSENT = aioice.ice.Connection.query_consent
"""aioice's own loop, for the test that shows the defect."""
_installed = False
_lock = threading.Lock()
expired = 0
"""Connections of this process closed because consent expired."""


async def query_consent(connection: Any) -> None:
    """The consent loop of one aioice `Connection` (replaces `Connection.query_consent`)."""
    global expired
    assert connection.remote_password is not None
    loop = asyncio.get_running_loop()
    last_response = loop.time()
    while True:
        await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
        for pair in list(connection._nominated.values()):
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=CHECK_RETRANSMISSIONS,
                )
                last_response = loop.time()
            except stun.TransactionError:
                pass  # timed out or refused: not a response that grants consent
        if loop.time() - last_response > CONSENT_TIMEOUT_S:
            expired += 1
            log.info("ICE consent expired: no response for %.0f s", CONSENT_TIMEOUT_S)
            connection._query_consent_task = None
            await connection.close()
            return


def install() -> None:
    """Use this consent loop for every aioice connection of this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return

        async def patient_query_consent(self: Any) -> None:
            await query_consent(self)

        aioice.ice.Connection.query_consent = patient_query_consent  # type: ignore[method-assign]
        _installed = True
