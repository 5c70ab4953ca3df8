"""What a peer connection costs on the wire, counted at its UDP sockets.

Every datagram aioice sends or receives for a connection is counted with its IP and UDP
headers, and classified by its first byte (RFC 7983): STUN (ICE checks, consent), DTLS
(which carries SCTP, i.e. every data channel: motion, feedback, control, portraits, and the
SCTP acknowledgements they cause), RTP and RTCP (audio, video). So a figure from here is what
the network carries, not a payload estimate. TURN-relayed traffic is counted on the socket
to the relay, with its TURN framing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import aioice.ice

IPV4_UDP_HEADER_BYTES = 28
IPV6_UDP_HEADER_BYTES = 48
KINDS = ("stun", "dtls", "rtp", "rtcp", "other")


def classify(datagram: bytes) -> str:
    """RFC 7983 demultiplexing by the first byte (RTP and RTCP told apart by payload type)."""
    if not datagram:
        return "other"
    first = datagram[0]
    if first <= 3:
        return "stun"
    if 20 <= first <= 63:
        return "dtls"
    if 128 <= first <= 191:
        payload_type = datagram[1] & 0x7F if len(datagram) > 1 else 0
        return "rtcp" if 64 <= payload_type <= 95 else "rtp"
    return "other"


@dataclass
class Direction:
    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, datagram: bytes, header_bytes: int) -> None:
        kind = classify(datagram)
        self.packets[kind] += 1
        self.bytes[kind] += len(datagram) + header_bytes

    def merged(self, other: Direction) -> Direction:
        return Direction(
            {k: self.packets[k] + other.packets[k] for k in KINDS},
            {k: self.bytes[k] + other.bytes[k] for k in KINDS},
        )

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def total_packets(self) -> int:
        return sum(self.packets.values())


@dataclass
class WireTally:
    """Datagrams and bytes (IP + UDP headers included) of one peer connection."""

    sent: Direction = field(default_factory=Direction)
    received: Direction = field(default_factory=Direction)

    def merged(self, other: WireTally) -> WireTally:
        return WireTally(self.sent.merged(other.sent), self.received.merged(other.received))


_installed = False
_install_lock = threading.Lock()


def _header_bytes(addr: Any) -> int:
    host = addr[0] if isinstance(addr, tuple) and addr else ""
    return IPV6_UDP_HEADER_BYTES if ":" in str(host) else IPV4_UDP_HEADER_BYTES


def install() -> None:
    """Count every aioice socket of this process from now on (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        protocol = aioice.ice.StunProtocol
        connection_made = protocol.connection_made
        datagram_received = protocol.datagram_received

        def counting_connection_made(self: Any, transport: Any) -> None:
            connection_made(self, transport)
            self.lpstream_wire = tally = WireTally()
            sendto = transport.sendto

            def counting_sendto(data: bytes, addr: Any = None) -> None:
                tally.sent.add(data, _header_bytes(addr))
                sendto(data, addr)

            self.transport = _CountingTransport(transport, counting_sendto)

        def counting_datagram_received(self: Any, data: bytes | str, addr: Any) -> None:
            tally = getattr(self, "lpstream_wire", None)
            if tally is not None and isinstance(data, bytes):
                tally.received.add(data, _header_bytes(addr))
            datagram_received(self, data, addr)

        protocol.connection_made = counting_connection_made  # type: ignore[method-assign]
        protocol.datagram_received = counting_datagram_received  # type: ignore[method-assign]
        _installed = True


class _CountingTransport:
    """The socket transport with a counting `sendto`; everything else passes through."""

    def __init__(self, transport: Any, sendto: Any) -> None:
        self._transport = transport
        self.sendto = sendto

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def ice_connections(pc: Any) -> list[Any]:
    """The aioice connections under a peer connection (one with BUNDLE)."""
    transports = []
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for transceiver in pc.getTransceivers():
        transports.append(transceiver.sender.transport)
    connections: list[Any] = []
    for dtls in transports:
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        if connection is not None and all(connection is not c for c in connections):
            connections.append(connection)
    return connections


def tally(pc: Any) -> WireTally:
    """Everything counted so far on the sockets of `pc` (install() must have run before
    its sockets opened)."""
    total = WireTally()
    for connection in ice_connections(pc):
        for protocol in getattr(connection, "_protocols", []):
            counted = getattr(protocol, "lpstream_wire", None)
            if counted is not None:
                total = total.merged(counted)
    return total
