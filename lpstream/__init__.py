"""lpstream: real-time portrait animation as a video-call codec.

The sender reduces each camera frame to a `Motion` (a few dozen numbers); the receiver
re-renders the sender's face from a cached source portrait.
"""

from lpstream.motion import Motion

__all__ = ["Motion"]
__version__ = "0.1.0"
