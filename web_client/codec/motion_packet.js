// The bytes of a motion-channel packet, stateless (docs/protocol.md §1, §3); port of
// lpstream/protocol/motion_packet.py. The body stays arithmetic-coded here.

import { ProtocolError } from "./errors.js";
import { Kind, Reader, concat, expectKind, header, u32 } from "./wire.js";

export const MOTION_KINDS = [Kind.MOTION, Kind.MOTION_PROFILED, Kind.MOTION_DELTA, Kind.NO_FACE];

/** One MOTION / MOTION_PROFILED keyframe, MOTION_DELTA or NO_FACE packet. */
export class MotionPacket {
  /** @param {{kind:number, seq?:number, referenceBits?:number, profileId?:number,
   *  timestampMs?:number, body?:Uint8Array}} fields */
  constructor({ kind, seq = 0, referenceBits = 0, profileId = 0, timestampMs = 0, body = new Uint8Array(0) }) {
    this.kind = kind;
    this.seq = seq;
    this.referenceBits = referenceBits;
    this.profileId = profileId;
    this.timestampMs = timestampMs;
    this.body = body;
  }

  static keyframe(seq, profileId, body) {
    const kind = profileId === 0 ? Kind.MOTION : Kind.MOTION_PROFILED;
    return new MotionPacket({ kind, seq, profileId, body });
  }

  static delta(referenceSeq, body) {
    return new MotionPacket({ kind: Kind.MOTION_DELTA, referenceBits: referenceSeq & 0x3f, body });
  }

  static noFace(seq, timestampMs) {
    return new MotionPacket({ kind: Kind.NO_FACE, seq, timestampMs });
  }

  get isKeyframe() {
    return this.kind === Kind.MOTION || this.kind === Kind.MOTION_PROFILED;
  }

  serialize() {
    switch (this.kind) {
      case Kind.MOTION_DELTA:
        return concat(header(Kind.MOTION_DELTA, this.referenceBits), this.body);
      case Kind.NO_FACE:
        return concat(header(Kind.NO_FACE, this.seq), u32(this.timestampMs));
      case Kind.MOTION_PROFILED:
        return concat(header(Kind.MOTION_PROFILED, this.seq), Uint8Array.of(this.profileId), this.body);
      default:
        return concat(header(Kind.MOTION, this.seq), this.body);
    }
  }

  /** Throws ProtocolError (only) on anything that is not a well-formed motion packet. */
  static parse(data) {
    const [kind, number, offset] = expectKind(data, ...MOTION_KINDS);
    if (kind === Kind.MOTION_DELTA) {
      return new MotionPacket({ kind, referenceBits: number, body: data.slice(offset) });
    }
    if (kind === Kind.NO_FACE) {
      const reader = new Reader(data, offset, "no-face packet");
      const timestampMs = reader.u32();
      reader.end();
      return new MotionPacket({ kind, seq: number, timestampMs });
    }
    if (kind === Kind.MOTION_PROFILED) {
      if (data.length <= offset) throw new ProtocolError("motion keyframe: truncated before its profile byte");
      if (data[offset] === 0) throw new ProtocolError("motion keyframe: profile 0 must use the MOTION kind");
      return new MotionPacket({ kind, seq: number, profileId: data[offset], body: data.slice(offset + 1) });
    }
    return new MotionPacket({ kind, seq: number, body: data.slice(offset) });
  }
}
