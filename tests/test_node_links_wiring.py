"""What each node link carries, with fake links (no aiortc): a participant hosted here goes
to every node that shares its room, a participant of another node is fed only by that node's
link, and feedback finds its way back."""

from __future__ import annotations

from typing import Any

import numpy as np

from lpstream.node.node_links import NodeLinks, link_key
from lpstream.node.portrait_image import Portrait
from lpstream.node.rooms import Member, RoomDirectory, RoomUpdate
from lpstream.node.router import Router
from lpstream.protocol import Feedback, MotionDecoder, MotionEncoder
from tests.test_node_router import DecodingSink, talking


class FakeLink:
    """The parts of NodeLink that NodeLinks uses, recording what would be sent."""

    def __init__(self, remote_node: str) -> None:
        self.remote_node = remote_node
        self.remote_backend = "test"
        self.is_open = True
        self.motion: list[tuple[str, bytes]] = []
        self.feedback: list[tuple[str, bytes]] = []
        self.portraits: list[tuple[str, bytes]] = []
        self.faces: list[tuple[str, int]] = []

    def send_motion(self, participant_id: str, packet: bytes) -> None:
        self.motion.append((participant_id, packet))

    def send_feedback(self, participant_id: str, packet: bytes) -> None:
        self.feedback.append((participant_id, packet))

    def send_portrait(self, participant_id: str, encoded: bytes) -> None:
        self.portraits.append((participant_id, encoded))

    def send_face(self, participant_id: str, track_id: int) -> None:
        self.faces.append((participant_id, track_id))


async def no_signal(to: str, data: dict[str, Any]) -> None:
    raise AssertionError("no signaling expected")


async def no_scaling(rgb: np.ndarray, sha256: str) -> Portrait:
    raise AssertionError("no portrait expected")


def setup() -> tuple[NodeLinks, Router, FakeLink, FakeLink]:
    directory = RoomDirectory()
    router = Router()
    directory.update(
        RoomUpdate(
            "r",
            (
                Member("ann", "Ann", "node:A", "r"),
                Member("bob", "Bob", "node:B", "r"),
            ),
            ("node:A", "node:B"),
        )
    )
    directory.update(RoomUpdate("q", (Member("cy", "Cy", "node:C", "q"),), ("node:C",)))
    for member in directory.members.values():
        router.add_source(member.id, member.name)
    links = NodeLinks("node:A", [], directory, router, no_signal, no_scaling, "meshwarp")
    link_b, link_c = FakeLink("node:B"), FakeLink("node:C")
    links.links = {"node:B": link_b, "node:C": link_c}  # type: ignore[dict-item]
    links.rewire()
    return links, router, link_b, link_c


def test_a_local_participant_reaches_only_the_nodes_of_its_room() -> None:
    _, router, link_b, link_c = setup()
    ann = router.get("ann")
    assert ann is not None
    encoder = MotionEncoder()
    ann.attach_sender(encoder.on_feedback)
    ann.set_portrait(Portrait(b"jpeg bytes", "sha", np.zeros((2, 2, 3), np.uint8)))
    ann.set_face(7)
    ann.publish(encoder.encode(talking(0), 0))
    assert [p for p, _ in link_b.motion] == ["ann"] and link_c.motion == []
    assert link_b.portraits == [("ann", b"jpeg bytes")] and link_b.faces == [("ann", 7)]


def test_feedback_over_a_link_reaches_the_local_encoder_merged() -> None:
    links, router, link_b, _ = setup()
    ann = router.get("ann")
    assert ann is not None
    encoder = MotionEncoder()
    ann.attach_sender(encoder.on_feedback)
    far_decoder = MotionDecoder()
    for index in range(8):
        ann.publish(encoder.encode(talking(index), index * 40))
        far_decoder.decode(link_b.motion[-1][1])
        reply = far_decoder.feedback()
        if reply is not None:
            links._on_feedback(link_b, "ann", reply)  # type: ignore[arg-type]
    assert encoder.keyframes_sent < 8, "acknowledgements from the far node were used"
    # feedback for someone this node does not host is ignored
    links._on_feedback(link_b, "bob", Feedback(None, (), True).encode())  # type: ignore[arg-type]
    assert ann.bad_feedback == 0


def test_a_remote_participant_is_fed_only_by_its_own_node() -> None:
    links, router, link_b, link_c = setup()
    bob = router.get("bob")
    assert bob is not None
    tile = DecodingSink("ann#0")
    bob.connect(tile)
    assert link_b.feedback and link_b.feedback[-1][0] == "bob", "the keyframe request goes back"
    encoder = MotionEncoder()
    links._on_motion(link_c, "bob", encoder.encode(talking(0), 0))  # type: ignore[arg-type]
    assert tile.statuses == [], "node C does not host bob"
    links._on_motion(link_b, "bob", encoder.encode(talking(1), 40))  # type: ignore[arg-type]
    assert len(tile.statuses) == 1
    assert link_b.feedback[-1][0] == "bob"  # acknowledgements go back over B's link


def test_a_link_no_room_needs_any_more_carries_nothing() -> None:
    links, router, link_b, _ = setup()
    links._directory.update(RoomUpdate("r", (Member("ann", "Ann", "node:A", "r"),), ("node:A",)))
    links.rewire()
    ann = router.get("ann")
    assert ann is not None and not ann.has_audience
    ann.publish(MotionEncoder().encode(talking(0), 0))
    assert link_b.motion == []
    assert link_key("node:B") == "link:node:B"
