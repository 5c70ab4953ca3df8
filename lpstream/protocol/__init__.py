"""lpstream wire protocol (docs/protocol.md): motion codec, feedback, control, stats, portrait.

Other tools use `MotionEncoder().encode(motion, timestamp_ms) -> bytes`,
`MotionDecoder().decode(packet) -> Motion | None`, `MotionDecoder.feedback()` and
`MotionEncoder.on_feedback(packet)`; every decoder raises only `ProtocolError` on bad bytes.
Motion of the weight-free backend is coded with its own profile:
`MotionEncoder(profile=profile_for_backend(backend_name))`; the profile travels in the
keyframes, so `MotionDecoder()` needs no configuration.
"""

from lpstream.motion import LivePortraitMotion, Motion
from lpstream.protocol.control import Bye, Hello, decode_controls, encode_controls
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.feedback import Feedback
from lpstream.protocol.messages import KeyframeRequest, decode_message
from lpstream.protocol.motion_codec import DecodeStatus, MotionDecoder, MotionEncoder
from lpstream.protocol.portrait import PortraitReceiver, PortraitRejectedError, PortraitSender
from lpstream.protocol.profiles import (
    KEYPOINTS,
    LANDMARKS,
    CodecProfile,
    profile_for_backend,
)
from lpstream.protocol.stats import Stats
from lpstream.protocol.wire import MAX_PACKET_BYTES, PROTOCOL_VERSION, Kind

__all__ = [
    "KEYPOINTS",
    "LANDMARKS",
    "MAX_PACKET_BYTES",
    "PROTOCOL_VERSION",
    "Bye",
    "CodecProfile",
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
    "profile_for_backend",
]
