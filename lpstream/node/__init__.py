"""The media node: aiortc peers with browsers and other nodes, the sender and receiver
stages per participant, in-room routing of motion packets, and metrics."""

from lpstream.node.config import NodeConfig
from lpstream.node.node import Node

__all__ = ["Node", "NodeConfig"]
