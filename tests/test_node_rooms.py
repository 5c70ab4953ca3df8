"""Rooms and tiles: pure bookkeeping, no sockets."""

from __future__ import annotations

import pytest

from lpstream.node.rooms import Member, RoomDirectory, RoomUpdate, assign_slots


def room(name: str, *members: tuple[str, str], nodes: tuple[str, ...] = ("node:A",)) -> RoomUpdate:
    return RoomUpdate(name, tuple(Member(i, i.upper(), n, name) for i, n in members), nodes)


def test_slots_keep_their_places_and_newcomers_fill_free_tiles() -> None:
    assert assign_slots([None, None, None], ["b", "c"]) == ["b", "c", None]
    # c leaves: b keeps tile 0, tile 1 frees up; d arrives and takes it
    assert assign_slots(["b", "c", None], ["b"]) == ["b", None, None]
    assert assign_slots(["b", None, None], ["b", "d"]) == ["b", "d", None]
    # b leaves while d stays: d does not move to tile 0
    assert assign_slots(["b", "d", None], ["d", "e"]) == ["e", "d", None]


def test_more_others_than_tiles_wait_for_a_free_tile() -> None:
    assert assign_slots([None, None], ["b", "c", "d"]) == ["b", "c"]
    assert assign_slots(["b", "c"], ["c", "d"]) == ["d", "c"]


def test_directory_reports_joins_and_leaves() -> None:
    directory = RoomDirectory()
    change = directory.update(
        room("r", ("a", "node:A"), ("b", "node:B"), nodes=("node:A", "node:B"))
    )
    assert [m.id for m in change.joined] == ["a", "b"] and change.left == ()
    assert directory.others("a") == ["b"] and directory.others("b") == ["a"]
    assert directory.hosted_by("r", "node:B") == ["b"]
    assert directory.rooms_with_node("node:B") == ["r"]

    change = directory.update(room("r", ("b", "node:B"), ("c", "node:A")))
    assert [m.id for m in change.joined] == ["c"] and change.left == ("a",)
    assert "a" not in directory.members and directory.others("b") == ["c"]
    assert directory.rooms_with_node("node:B") == []

    change = directory.update(room("r"))
    assert change.left == ("b", "c") and "r" not in directory.rooms
    assert directory.others("b") == []


def test_room_messages_are_parsed_or_refused() -> None:
    update = RoomUpdate.parse(
        {"room": "r", "members": [{"id": "x", "name": "Xi", "node": "node:A"}], "nodes": ["node:A"]}
    )
    assert update.members == (Member("x", "Xi", "node:A", "r"),) and update.nodes == ("node:A",)
    with pytest.raises(KeyError):
        RoomUpdate.parse({"room": "r", "members": [{"id": "x"}]})
    with pytest.raises(TypeError):
        RoomUpdate.parse({"room": "r", "members": 5})
