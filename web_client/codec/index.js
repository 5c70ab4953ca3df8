// lpstream's wire protocol in JS (docs/protocol.md), byte-identical to lpstream/protocol/.
// Plain ES modules, no dependencies: the same files run in the browser and in Node ≥ 20.
// Every decoder throws only ProtocolError on bad input.

export { ProtocolError, PortraitRejectedError } from "./errors.js";
export { Kind, MAX_PACKET_BYTES, PROTOCOL_VERSION, seqDelta } from "./wire.js";
export { makeMotion, copyMotion } from "./motion.js";
export { motionToUnits, unitsToMotion } from "./fields.js";
export { CodecProfile, KEYPOINTS, LANDMARKS, PROFILES, profileById } from "./profiles.js";
export { MotionPacket } from "./motion_packet.js";
export { DecodeStatus, MotionDecoder, MotionEncoder, MAX_GAP } from "./motion_codec.js";
export { Concealment } from "./concealment.js";
export { Feedback } from "./feedback.js";
export { Bye, Hello, KeyframeRequest, Stats, decodeMessage, encodeKeyframeRequest } from "./messages.js";
export {
  PortraitChunk,
  PortraitOffer,
  PortraitReceiver,
  PortraitReply,
  PortraitSender,
  RejectCode,
  imageDimensions,
  webCryptoSha256,
} from "./portrait.js";
export { FEEDBACK_EVERY_PACKETS, FeedbackPacer } from "./feedback_pacing.js";
export { framePacket, unframePacket } from "./framing.js";
