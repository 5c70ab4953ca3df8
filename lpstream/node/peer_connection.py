"""aiortc peer connections as the node makes them: with this node's STUN/TURN servers."""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection

from lpstream.ice import IceServer


def peer_connection(ice_servers: list[IceServer], name: str = "node") -> RTCPeerConnection:
    """A peer connection; shared-secret TURN credentials are minted fresh for each one.

    Max-bundle: with aiortc's default (balanced), an answerer's second and later transceivers
    of a kind keep a transport of their own that BUNDLE never replaces, so they never send
    (a page's tiles 1-3 of audio after its video); every browser bundles everything anyway.
    """
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in (server.resolved(name) for server in ice_servers)
    ]
    return RTCPeerConnection(
        RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
