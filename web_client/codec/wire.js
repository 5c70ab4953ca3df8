// Byte layout shared by every message (docs/protocol.md §1): version byte, kind byte,
// bounded big-endian fields. Port of lpstream/protocol/wire.py.
//
// Integer helpers: Python's `//` and `%` floor towards -inf; JS `/` and `%` do not, and JS
// bit operators truncate to 32 bits, so 32-bit fields (timestamps, masks) use arithmetic.

import { ProtocolError } from "./errors.js";

export const PROTOCOL_VERSION = 1;
export const MAX_PACKET_BYTES = 1100;
export const SEQ_BITS = 12;
export const SEQ_MODULO = 1 << SEQ_BITS;
export const TIMESTAMP_MODULO = 2 ** 32;
export const REFERENCE_ID_BITS = 6;

/** Byte 1 of every packet (names as in Python's `Kind`). */
export const Kind = Object.freeze({
  MOTION: 0x10,
  NO_FACE: 0x20,
  MOTION_DELTA: 0xc0,
  MOTION_PROFILED: 0x80,
  FEEDBACK: 0x30,
  HELLO: 0x40,
  KEYFRAME_REQUEST: 0x42,
  BYE: 0x43,
  STATS: 0x50,
  PORTRAIT_OFFER: 0x60,
  PORTRAIT_CHUNK: 0x61,
  PORTRAIT_NEED: 0x62,
  PORTRAIT_ACCEPTED: 0x63,
  PORTRAIT_REJECTED: 0x64,
});

const KIND_NAMES = new Map(Object.entries(Kind).map(([name, value]) => [value, name]));
export const kindName = (kind) => KIND_NAMES.get(kind) ?? `0x${kind.toString(16)}`;
const SEQ_KINDS = [Kind.MOTION, Kind.NO_FACE, Kind.MOTION_PROFILED];

/** Python's a % b (result has the sign of b). Exact for safe integers. */
export function mod(a, b) {
  const r = a % b;
  return r !== 0 && r < 0 !== b < 0 ? r + b : r;
}

/** Python's a // b. Exact for safe integers (no rounding of a / b). */
export function floorDiv(a, b) {
  return (a - mod(a, b)) / b;
}

/** Python's round(x) for a double: nearest integer, ties to even. */
export function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Version byte plus kind byte (and the sequence layout of the motion kinds). */
export function header(kind, seq = null) {
  if (kind === Kind.MOTION_DELTA) return Uint8Array.of(PROTOCOL_VERSION, kind | (seq & 0x3f));
  if (SEQ_KINDS.includes(kind)) {
    return Uint8Array.of(PROTOCOL_VERSION, kind | ((seq >> 8) & 0x0f), seq & 0xff);
  }
  return Uint8Array.of(PROTOCOL_VERSION, kind);
}

function isBytes(packet) {
  return packet instanceof Uint8Array;
}

/** [kind, seq or reference id or null, offset of the body]; ProtocolError on anything else. */
export function parseHeader(packet) {
  if (!isBytes(packet)) {
    const type = packet === null ? "null" : typeof packet;
    throw new ProtocolError(`packet must be a Uint8Array, got ${type}`);
  }
  if (packet.length < 2) {
    throw new ProtocolError(`packet too short (${packet.length} bytes) for a header`);
  }
  if (packet.length > MAX_PACKET_BYTES) {
    throw new ProtocolError(`packet of ${packet.length} bytes exceeds ${MAX_PACKET_BYTES}`);
  }
  if (packet[0] !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `protocol version ${packet[0]} not supported (this side speaks ${PROTOCOL_VERSION})`,
    );
  }
  const kindByte = packet[1];
  if ((kindByte & 0xc0) === Kind.MOTION_DELTA) return [Kind.MOTION_DELTA, kindByte & 0x3f, 2];
  if (SEQ_KINDS.includes(kindByte & 0xf0)) {
    if (packet.length < 3) throw new ProtocolError("motion packet too short for its sequence number");
    return [kindByte & 0xf0, ((kindByte & 0x0f) << 8) | packet[2], 3];
  }
  if (KIND_NAMES.has(kindByte)) return [kindByte, null, 2];
  throw new ProtocolError(`unknown message kind 0x${kindByte.toString(16).padStart(2, "0")}`);
}

export function expectKind(packet, ...kinds) {
  const parsed = parseHeader(packet);
  if (!kinds.includes(parsed[0])) {
    const names = kinds.map(kindName).join(", ");
    throw new ProtocolError(`expected a ${names} packet, got ${kindName(parsed[0])}`);
  }
  return parsed;
}

/** Signed serial distance newer - older in [-2048, 2047] (RFC 1982 style). */
export function seqDelta(newer, older) {
  return mod(newer - older + SEQ_MODULO / 2, SEQ_MODULO) - SEQ_MODULO / 2;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });
const UTF8_ENCODER = new TextEncoder();

/** Bounded big-endian reader: every overrun becomes a ProtocolError. */
export class Reader {
  constructor(packet, offset, what) {
    this.data = packet;
    this.pos = offset;
    this.what = what;
  }

  take(n) {
    if (n < 0 || this.pos + n > this.data.length) {
      throw new ProtocolError(`${this.what}: truncated (needs ${n} more bytes)`);
    }
    const chunk = this.data.slice(this.pos, this.pos + n);
    this.pos += n;
    return chunk;
  }

  u8() {
    return this.take(1)[0];
  }

  u16() {
    const b = this.take(2);
    return (b[0] << 8) | b[1];
  }

  u32() {
    const b = this.take(4);
    return b[0] * 0x1000000 + ((b[1] << 16) | (b[2] << 8) | b[3]);
  }

  text(maxBytes) {
    const n = this.u8();
    if (n > maxBytes) throw new ProtocolError(`${this.what}: text of ${n} bytes exceeds ${maxBytes}`);
    const raw = this.take(n);
    try {
      return UTF8.decode(raw);
    } catch {
      throw new ProtocolError(`${this.what}: text is not UTF-8`);
    }
  }

  rest() {
    const chunk = this.data.slice(this.pos);
    this.pos = this.data.length;
    return chunk;
  }

  end() {
    if (this.pos !== this.data.length) {
      throw new ProtocolError(`${this.what}: ${this.data.length - this.pos} trailing bytes`);
    }
  }
}

export function u16(value) {
  return Uint8Array.of((value >> 8) & 0xff, value & 0xff);
}

export function u32(value) {
  const hi = Math.floor(value / 0x10000);
  return Uint8Array.of((hi >> 8) & 0xff, hi & 0xff, (value >> 8) & 0xff, value & 0xff);
}

export function textField(value, maxBytes, what) {
  const raw = UTF8_ENCODER.encode(value);
  if (raw.length > maxBytes) throw new ProtocolError(`${what} of ${raw.length} bytes exceeds ${maxBytes}`);
  return concat(Uint8Array.of(raw.length), raw);
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
