// Receiver → sender feedback (docs/protocol.md §5), port of lpstream/protocol/feedback.py.
// 9 bytes: version, 0x30, flags (bit 0: keyframe request), u16 newest (0xFFFF = none),
// u32 mask (bit i: newest-1-i decoded too).

import { ProtocolError } from "./errors.js";
import { Kind, Reader, SEQ_MODULO, concat, expectKind, header, mod, u16, u32 } from "./wire.js";

export const ACK_WINDOW = 32;

export class Feedback {
  /** @param {number|null} newestSeq @param {number[]} acked @param {boolean} keyframeRequest */
  constructor(newestSeq, acked = [], keyframeRequest = false) {
    this.newestSeq = newestSeq;
    this.acked = acked;
    this.keyframeRequest = keyframeRequest;
  }

  encode() {
    let mask = 0;
    const newest = this.newestSeq === null ? 0xffff : this.newestSeq;
    if (this.newestSeq !== null) {
      for (const seq of this.acked) {
        const back = mod(this.newestSeq - seq, SEQ_MODULO) - 1;
        if (back >= 0 && back < ACK_WINDOW) mask = (mask | (1 << back)) >>> 0;
      }
    }
    return concat(header(Kind.FEEDBACK), Uint8Array.of(this.keyframeRequest ? 1 : 0), u16(newest), u32(mask));
  }

  static decode(packet) {
    const [, , offset] = expectKind(packet, Kind.FEEDBACK);
    const reader = new Reader(packet, offset, "feedback");
    const flags = reader.u8();
    const newest = reader.u16();
    const mask = reader.u32();
    reader.end();
    if (flags & ~1) throw new ProtocolError(`feedback: unknown flag bits 0x${flags.toString(16).padStart(2, "0")}`);
    if (newest === 0xffff) {
      if (mask) throw new ProtocolError("feedback: acknowledgements without a newest sequence");
      return new Feedback(null, [], Boolean(flags & 1));
    }
    if (newest >= SEQ_MODULO) throw new ProtocolError(`feedback: sequence ${newest} exceeds ${SEQ_MODULO - 1}`);
    const acked = [newest];
    for (let i = 0; i < ACK_WINDOW; i++) {
      if ((mask >>> i) & 1) acked.push(mod(newest - 1 - i, SEQ_MODULO));
    }
    return new Feedback(newest, acked, Boolean(flags & 1));
  }
}
