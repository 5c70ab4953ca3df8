"""Delayed SCTP acknowledgements for aiortc, as RFC 4960 §6.2 recommends and browsers do.

aiortc answers every packet that carries data with a SACK of its own. A motion stream is a
small packet every frame, so that doubles the packets on the wire in the other direction
(each ~90 bytes with DTLS, SCTP, UDP and IP headers: ~18 kbit/s at 25 packets/s for nothing).
With this installed, a SACK goes out for every second data packet, or 200 ms after the first
one unacknowledged, and at once when something is missing or duplicated (what a sender's
loss recovery needs) — the behaviour of usrsctp in Chromium and Firefox.

And a SACK that is waiting rides in the next packet this end sends with data (RFC 4960 §6.1
bundling), the way browsers' SCTP stacks do: aiortc sends every chunk in a packet of its own,
so in a call, where motion flows both ways at the frame rate, the SACKs for the motion coming
in were a second stream of ~80-byte packets beside the motion going out. Bundled, a SACK costs
its 16 bytes inside a packet that is sent anyway.

And a chunk sent after the DTLS transport closed is dropped, as a datagram to a gone peer
would be. aiortc raises `ConnectionError` there, inside tasks nobody awaits (its T3
retransmissions, FORWARD-TSN, data-channel flushes), so every connection that dropped left
"Task exception was never retrieved" ERRORs in the node's log (the soak counted 14).
"""

from __future__ import annotations

import asyncio
import threading
from struct import pack
from typing import Any

from aiortc.rtcsctptransport import (
    SCTP_TSN_MODULO,
    DataChunk,
    RTCSctpTransport,
    SackChunk,
)
from google_crc32c import value as crc32c

SACK_DELAY_S = 0.2
SACK_EVERY_PACKETS = 2

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Delay SACKs of every aiortc association in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        send_now = RTCSctpTransport._send_sack

        async def delayed_send_sack(self: Any) -> None:
            unacked = getattr(self, "_lpstream_unacked", 0) + 1
            urgent = bool(self._sack_misordered or self._sack_duplicates)
            if urgent or unacked >= SACK_EVERY_PACKETS:
                _cancel_timer(self)
                self._lpstream_unacked = 0
                await send_now(self)
                return
            self._lpstream_unacked = unacked
            if getattr(self, "_lpstream_sack_timer", None) is None:
                loop = asyncio.get_running_loop()
                self._lpstream_sack_timer = loop.call_later(SACK_DELAY_S, _timer_fired, self)

        def _timer_fired(transport: Any) -> None:
            transport._lpstream_sack_timer = None
            if (
                transport._sack_needed
                and transport._association_state == transport.State.ESTABLISHED
            ):
                transport._lpstream_unacked = 0
                task = asyncio.ensure_future(send_now(transport))
                _pending.add(task)
                task.add_done_callback(_pending.discard)

        send_chunk = RTCSctpTransport._send_chunk

        async def send_chunk_with_waiting_sack(self: Any, chunk: Any) -> None:
            if self.transport.state != "connected":
                self._lpstream_dropped = getattr(self, "_lpstream_dropped", 0) + 1
                return
            if not (isinstance(chunk, DataChunk) and _sack_waiting(self)):
                await send_chunk(self, chunk)
                return
            sack = _sack_chunk(self)
            _cancel_timer(self)
            self._lpstream_unacked = 0
            self._sack_duplicates.clear()
            self._sack_needed = False
            self._lpstream_bundled_sacks = getattr(self, "_lpstream_bundled_sacks", 0) + 1
            await self._RTCSctpTransport__transport._send_data(bundle(self, [sack, chunk]))

        RTCSctpTransport._send_sack = delayed_send_sack  # type: ignore[method-assign]
        RTCSctpTransport._send_chunk = send_chunk_with_waiting_sack  # type: ignore[method-assign]
        _installed = True


def _sack_waiting(transport: Any) -> bool:
    """A SACK is owed and only delayed (not urgent: that one has gone out at once)."""
    return bool(
        getattr(transport, "_lpstream_unacked", 0)
        and transport._sack_needed
        and transport._association_state == transport.State.ESTABLISHED
    )


def _sack_chunk(transport: Any) -> SackChunk:
    """The SACK `transport` owes now: cumulative TSN, window, duplicates and gap blocks
    (offsets from the cumulative TSN of each run of TSNs received beyond it)."""
    cumulative = transport._last_received_tsn
    gaps: list[tuple[int, int]] = []
    for tsn in sorted(transport._sack_misordered):
        offset = (tsn - cumulative) % SCTP_TSN_MODULO
        if gaps and offset == gaps[-1][1] + 1:
            gaps[-1] = (gaps[-1][0], offset)
        else:
            gaps.append((offset, offset))
    sack = SackChunk()
    sack.cumulative_tsn = cumulative
    sack.advertised_rwnd = max(0, transport._advertised_rwnd)
    sack.duplicates = list(transport._sack_duplicates)
    sack.gaps = gaps
    return sack


def bundle(transport: Any, chunks: list[Any]) -> bytes:
    """One SCTP packet of `transport` carrying `chunks` in order (control chunks first):
    common header, then the chunks, checksummed once."""
    header = pack(
        "!HHL", transport._local_port, transport._remote_port, transport._remote_verification_tag
    )
    body = b"".join(bytes(chunk) for chunk in chunks)
    checksum = crc32c(header + b"\x00\x00\x00\x00" + body)
    return header + checksum.to_bytes(4, "little") + body


def dropped_after_close(transport: Any) -> int:
    """How many chunks `transport` had to send after its DTLS transport closed."""
    return getattr(transport, "_lpstream_dropped", 0)


def bundled_sacks(transport: Any) -> int:
    """How many SACKs `transport` sent inside a data packet instead of on their own."""
    return getattr(transport, "_lpstream_bundled_sacks", 0)


_pending: set[asyncio.Future[None]] = set()


def _cancel_timer(transport: Any) -> None:
    timer = getattr(transport, "_lpstream_sack_timer", None)
    if timer is not None:
        timer.cancel()
        transport._lpstream_sack_timer = None
