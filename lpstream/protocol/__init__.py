"""lpstream wire protocol (docs/protocol.md): motion codec, feedback, control, stats, portrait.

Other tools use `MotionEncoder().encode(motion, timestamp_ms) -> bytes`,
`MotionDecoder().decode(packet) -> Motion | None`, `MotionDecoder.feedback()` and
`MotionEncoder.on_feedback(packet)`; every decoder raises only `ProtocolError` on bad bytes.
"""

from lpstream.motion import LivePortraitMotion, Motion
from lpstream.protocol.control import Bye, Hello, decode_controls, encode_controls
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.feedback import Feedback
from lpstream.protocol.messages import KeyframeRequest, decode_message
from lpstream.protocol.motion_codec import DecodeStatus, MotionDecoder, MotionEncoder
from lpstream.protocol.portrait import PortraitReceiver, PortraitRejectedError, PortraitSender
from lpstream.protocol.stats import Stats
from lpstream.protocol.wire import MAX_PACKET_BYTES, PROTOCOL_VERSION, Kind

__all__ = [
    "MAX_PACKET_BYTES",
    "PROTOCOL_VERSION",
    "Bye",
    "DecodeStatus",
    "Feedback",
    "Hello",
    "KeyframeRequest",
    "Kind",
    "LivePortraitMotion",
    "Motion",
    "MotionDecoder",
    "MotionEncoder",
    "PortraitReceiver",
    "PortraitRejectedError",
    "PortraitSender",
    "ProtocolError",
    "Stats",
    "decode_controls",
    "decode_message",
    "encode_controls",
]
