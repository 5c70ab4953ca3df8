"""Limits that keep one bad or hostile client from hurting other calls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """Server-wide limits; every one is enforced per connection or per room."""

    max_rooms: int = 100
    """Open rooms at once."""
    max_participants: int = 4
    """Participants per room (a call is 2–4 people)."""
    max_nodes: int = 8
    """Media nodes registered at once."""
    max_connections: int = 256
    """Websocket connections at once."""
    max_connections_per_address: int = 32
    """Websocket connections at once from one IP address. A connection joins one room at
    most, so this also bounds the rooms one client can hold open. Behind a reverse proxy
    every client has the proxy's address: raise it there (or limit at the proxy)."""
    max_message_bytes: int = 64 * 1024
    """Largest signaling message (an SDP offer is a few kB)."""
    messages_per_second: float = 20.0
    """Sustained message rate per connection (ICE candidates arrive in bursts)."""
    message_burst: int = 120
    """Messages a connection may send at once before the rate applies."""
    max_protocol_errors: int = 10
    """Malformed messages tolerated before the connection is closed."""
    max_name_length: int = 40
    """Longest room or participant name."""
