"""lpstream wire protocol (docs/protocol.md): motion codec, feedback, control, stats, portrait.

Other tools use `MotionEncoder().encode(motion, timestamp_ms) -> bytes`,
`MotionDecoder().decode(packet) -> Motion | None`, `MotionDecoder.feedback()` and
`MotionEncoder.on_feedback(packet)`; every decoder raises only `ProtocolError` on bad bytes.
Each kind of motion has its codec profile: `MotionEncoder(profile=KEYPOINTS)` (LivePortrait
implicit keypoints, the default) or `MotionEncoder(profile=LANDMARKS)` (landmark motion); the
profile travels in the keyframes, so `MotionDecoder()` needs no configuration.
`FeedbackLoop` joins an encoder and a decoder as in a call (late feedback, loss).
"""

from lpstream.motion import LivePortraitMotion, Motion
from lpstream.protocol.control import Bye, Hello
from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.feedback import Feedback
from lpstream.protocol.feedback_loop import FEEDBACK_DELAY, FeedbackLoop, LoopRun, LoopStep
from lpstream.protocol.feedback_pacing import FEEDBACK_EVERY_PACKETS, FeedbackPacer
from lpstream.protocol.messages import KeyframeRequest, decode_message
from lpstream.protocol.motion_codec import DecodeStatus, MotionDecoder, MotionEncoder
from lpstream.protocol.motion_packet import MotionPacket
from lpstream.protocol.portrait import PortraitReceiver, PortraitRejectedError, PortraitSender
from lpstream.protocol.profiles import KEYPOINTS, LANDMARKS, CodecProfile
from lpstream.protocol.stats import Stats
from lpstream.protocol.wire import MAX_PACKET_BYTES, PROTOCOL_VERSION, Kind

__all__ = [
    "FEEDBACK_DELAY",
    "FEEDBACK_EVERY_PACKETS",
    "KEYPOINTS",
    "LANDMARKS",
    "MAX_PACKET_BYTES",
    "PROTOCOL_VERSION",
    "Bye",
    "CodecProfile",
    "DecodeStatus",
    "Feedback",
    "FeedbackLoop",
    "FeedbackPacer",
    "Hello",
    "KeyframeRequest",
    "Kind",
    "LivePortraitMotion",
    "LoopRun",
    "LoopStep",
    "Motion",
    "MotionDecoder",
    "MotionEncoder",
    "MotionPacket",
    "PortraitReceiver",
    "PortraitRejectedError",
    "PortraitSender",
    "ProtocolError",
    "Stats",
    "decode_message",
]
