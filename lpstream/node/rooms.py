"""Who is in which room, as the signaling server announces it, and each viewer's tile map.

Pure bookkeeping: no sockets, no tasks. `RoomDirectory.update` takes a room announcement and
says what changed; `assign_slots` is the pure function from a room's members to one viewer's
tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Member:
    """A participant as the signaling server announced it."""

    id: str
    """Signaling id, unique per connection (a reload gets a new one)."""
    name: str
    """Display name chosen by the participant."""
    node: str
    """Member id of the media node hosting the participant's connection (`node:<id>`)."""
    room: str


@dataclass(frozen=True)
class RoomUpdate:
    """A room announcement, parsed."""

    room: str
    members: tuple[Member, ...]
    """In join order."""
    nodes: tuple[str, ...]
    """Member ids of every media node hosting someone in the room."""

    @staticmethod
    def parse(message: dict[str, Any]) -> RoomUpdate:
        """From the signaling server's `room` message (raises KeyError/TypeError if malformed)."""
        room = str(message["room"])
        members = tuple(
            Member(str(m["id"]), str(m["name"]), str(m["node"]), room) for m in message["members"]
        )
        return RoomUpdate(room, members, tuple(str(n) for n in message.get("nodes", [])))


@dataclass(frozen=True)
class RoomChange:
    """What a room update changed."""

    room: str
    joined: tuple[Member, ...]
    left: tuple[str, ...]
    """Ids of the members that are gone."""


@dataclass
class RoomDirectory:
    """Every room this node hears about: members in join order and the nodes serving them."""

    members: dict[str, Member] = field(default_factory=dict)
    rooms: dict[str, list[str]] = field(default_factory=dict)
    """Room → member ids in join order."""
    room_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def update(self, update: RoomUpdate) -> RoomChange:
        previous = set(self.rooms.get(update.room, []))
        current = [m.id for m in update.members]
        joined = tuple(m for m in update.members if m.id not in previous)
        left = tuple(sorted(previous - set(current)))
        for member in update.members:
            self.members[member.id] = member
        for gone in left:
            self.members.pop(gone, None)
        if current:
            self.rooms[update.room] = current
            self.room_nodes[update.room] = update.nodes
        else:
            self.rooms.pop(update.room, None)
            self.room_nodes.pop(update.room, None)
        return RoomChange(update.room, joined, left)

    def others(self, member_id: str) -> list[str]:
        """The other members of `member_id`'s room, in join order."""
        member = self.members.get(member_id)
        if member is None:
            return []
        return [m for m in self.rooms.get(member.room, []) if m != member_id]

    def hosted_by(self, room: str, node: str) -> list[str]:
        """Members of `room` whose connection is on `node`."""
        return [m for m in self.rooms.get(room, []) if self.members[m].node == node]

    def nodes_of(self, room: str) -> tuple[str, ...]:
        return self.room_nodes.get(room, ())

    def rooms_with_node(self, node: str) -> list[str]:
        return [room for room, nodes in self.room_nodes.items() if node in nodes]


def assign_slots(previous: list[str | None], others: list[str]) -> list[str | None]:
    """One viewer's tiles: whoever keeps their tile keeps it; newcomers take free tiles in
    join order; someone who left frees theirs. More others than tiles: the latest wait."""
    slots = [s if s in others else None for s in previous]
    for other in others:
        if other not in slots and None in slots:
            slots[slots.index(None)] = other
    return slots
