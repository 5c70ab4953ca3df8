// Reliable-channel control messages (docs/protocol.md §1, §5): Hello, KeyframeRequest, Bye,
// Stats, and decodeMessage for any of them; ports of lpstream/protocol/control.py,
// stats.py and messages.py.

import { ProtocolError } from "./errors.js";
import { Feedback } from "./feedback.js";
import { PortraitChunk, PortraitOffer, PortraitReply } from "./portrait.js";
import {
  Kind,
  PROTOCOL_VERSION,
  Reader,
  concat,
  expectKind,
  header,
  kindName,
  parseHeader,
  roundHalfEven,
  textField,
  u16,
  u32,
} from "./wire.js";

export const MAX_NAME_BYTES = 32;
export const MAX_CAPABILITIES = 16;
export const MAX_TEXT_BYTES = 200;

export class Hello {
  constructor(backend, capabilities = [], protocolVersion = PROTOCOL_VERSION) {
    this.backend = backend;
    this.capabilities = capabilities;
    this.protocolVersion = protocolVersion;
  }

  encode() {
    if (this.capabilities.length > MAX_CAPABILITIES) {
      throw new ProtocolError(`hello: more than ${MAX_CAPABILITIES} capabilities`);
    }
    if (!(Number.isInteger(this.protocolVersion) && this.protocolVersion >= 0 && this.protocolVersion <= 255)) {
      throw new ProtocolError("hello: protocol version must fit in a byte");
    }
    return concat(
      header(Kind.HELLO),
      Uint8Array.of(this.protocolVersion),
      textField(this.backend, MAX_NAME_BYTES, "backend"),
      Uint8Array.of(this.capabilities.length),
      ...this.capabilities.map((c) => textField(c, MAX_NAME_BYTES, "capability")),
    );
  }

  static decode(packet) {
    const [, , offset] = expectKind(packet, Kind.HELLO);
    const reader = new Reader(packet, offset, "hello");
    const version = reader.u8();
    const backend = reader.text(MAX_NAME_BYTES);
    const count = reader.u8();
    if (count > MAX_CAPABILITIES) throw new ProtocolError(`hello: ${count} capabilities exceed ${MAX_CAPABILITIES}`);
    const capabilities = [];
    for (let i = 0; i < count; i++) capabilities.push(reader.text(MAX_NAME_BYTES));
    reader.end();
    return new Hello(backend, capabilities, version);
  }
}

/** The receiver asks for a keyframe (MotionEncoder.onFeedback accepts it). */
export class KeyframeRequest {
  encode() {
    return header(Kind.KEYFRAME_REQUEST);
  }
}

export function encodeKeyframeRequest() {
  return header(Kind.KEYFRAME_REQUEST);
}

export class Bye {
  constructor(reason = "") {
    this.reason = reason;
  }

  encode() {
    return concat(header(Kind.BYE), textField(this.reason, MAX_TEXT_BYTES, "bye reason"));
  }

  static decode(packet) {
    const [, , offset] = expectKind(packet, Kind.BYE);
    const reader = new Reader(packet, offset, "bye");
    const reason = reader.text(MAX_TEXT_BYTES);
    reader.end();
    return new Bye(reason);
  }
}

const UNKNOWN = 0xffff;

function msField(value, name) {
  if (value === null || value === undefined) return UNKNOWN;
  if (!Number.isFinite(value) || value < 0) {
    throw new ProtocolError(`stats: ${name}=${value} must be a non-negative number or null`);
  }
  return Math.min(UNKNOWN - 1, roundHalfEven(value));
}

/** Sender statistics, about once a second. extractMs / rttMs: null = unknown. */
export class Stats {
  constructor(fps, bytesSent, framesSent, extractMs = null, rttMs = null) {
    this.fps = fps;
    this.bytesSent = bytesSent;
    this.framesSent = framesSent;
    this.extractMs = extractMs;
    this.rttMs = rttMs;
  }

  encode() {
    if (!Number.isFinite(this.fps) || !(this.fps >= 0 && this.fps <= 655)) {
      throw new ProtocolError(`stats: fps=${this.fps} must be in [0, 655]`);
    }
    if (this.bytesSent < 0 || this.framesSent < 0) throw new ProtocolError("stats: counters must be non-negative");
    return concat(
      header(Kind.STATS),
      u16(roundHalfEven(this.fps * 100)),
      u32(this.bytesSent % 2 ** 32),
      u32(this.framesSent % 2 ** 32),
      u16(msField(this.extractMs, "extract_ms")),
      u16(msField(this.rttMs, "rtt_ms")),
    );
  }

  static decode(packet) {
    const [, , offset] = expectKind(packet, Kind.STATS);
    const reader = new Reader(packet, offset, "stats");
    const fps = reader.u16();
    const nbytes = reader.u32();
    const frames = reader.u32();
    const extract = reader.u16();
    const rtt = reader.u16();
    reader.end();
    if (fps > 65500) throw new ProtocolError(`stats: fps field ${fps} out of range`);
    return new Stats(fps / 100, nbytes, frames, extract === UNKNOWN ? null : extract, rtt === UNKNOWN ? null : rtt);
  }
}

/** Any reliable-channel message → its object. Motion packets belong to MotionDecoder. */
export function decodeMessage(packet) {
  const [kind, , offset] = parseHeader(packet);
  switch (kind) {
    case Kind.FEEDBACK:
      return Feedback.decode(packet);
    case Kind.HELLO:
      return Hello.decode(packet);
    case Kind.KEYFRAME_REQUEST:
      new Reader(packet, offset, "keyframe request").end();
      return new KeyframeRequest();
    case Kind.BYE:
      return Bye.decode(packet);
    case Kind.STATS:
      return Stats.decode(packet);
    case Kind.PORTRAIT_OFFER:
      return PortraitOffer.decode(packet);
    case Kind.PORTRAIT_CHUNK:
      return PortraitChunk.decode(packet);
    case Kind.PORTRAIT_NEED:
    case Kind.PORTRAIT_ACCEPTED:
    case Kind.PORTRAIT_REJECTED:
      return PortraitReply.decode(packet);
    default:
      throw new ProtocolError(`${kindName(kind)} packets belong to the motion channel (MotionDecoder)`);
  }
}
