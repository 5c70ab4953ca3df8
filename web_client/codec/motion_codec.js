// Motion frames: the stateful encoder/decoder pair of the unreliable motion channel
// (docs/protocol.md §3-5), port of lpstream/protocol/motion_codec.py. Byte-identical to it:
// tests/test_codec_cross_runtime.py streams the same clips through both.

import { ArithmeticDecoder, ArithmeticEncoder, FrequencyTable } from "./arith.js";
import { Concealment } from "./concealment.js";
import { ProtocolError } from "./errors.js";
import { Feedback } from "./feedback.js";
import * as mf from "./fields.js";
import { copyMotion } from "./motion.js";
import { MotionPacket } from "./motion_packet.js";
import { KEYPOINTS, PROFILES, CodecProfile, profileById } from "./profiles.js";
import { DeltaContext, KEY_TABLES, levelOf } from "./tables.js";
import {
  Kind,
  Reader,
  SEQ_MODULO,
  TIMESTAMP_MODULO,
  expectKind,
  floorDiv,
  mod,
  seqDelta,
} from "./wire.js";

export const MAX_GAP = 48;
export const STORE_FRAMES = 64;
export const MAX_REORDER = 64;
const INTERVAL_SUBDIV = 16;
const MAX_INTERVAL = 1000 * INTERVAL_SUBDIV - 1;
const GAP_TABLE = FrequencyTable.fromFrequencies([
  ...Array(2).fill(3000),
  ...Array(2).fill(12000),
  ...Array(4).fill(2000),
  ...Array(MAX_GAP - 8).fill(100),
]);
const CHECK_BITS = 2;
const FLAGS_SAME_TABLE = FrequencyTable.fromFrequencies([4095, 1]);
const TIMESTAMP_TABLE = KEY_TABLES[levelOf(0.5)];
const HALF_TIMESTAMP = TIMESTAMP_MODULO / 2;

/** What the last MotionDecoder.decode call produced (values as in Python's DecodeStatus). */
export const DecodeStatus = Object.freeze({
  DECODED: "decoded",
  STALE: "stale",
  CONCEALED: "concealed",
  NO_FACE: "no_face",
  WAITING: "waiting",
});

// FrameRecord: {values, residuals, gap, timestampMs, intervalSixteenths, hasEye, hasLip, profile}

/** The per-field loop, written once for both directions. */
function runFields(coder, ref, gap, hasEye, hasLip, profile, source, observer) {
  const encoding = source !== null;
  const context = ref ? new DeltaContext(gap, ref.gap ? ref.residuals : null, ref.gap, profile.statistics) : null;
  const values = new Array(mf.NUM_FIELDS).fill(0);
  const residuals = new Array(mf.NUM_FIELDS).fill(0);
  const statistics = profile.statistics;
  const deadZone = profile.deadZone;
  for (const index of mf.codedFields(hasEye, hasLip)) {
    const predicts =
      ref !== null && (index === mf.LIP ? ref.hasLip : index >= mf.EYE0 ? ref.hasEye : true);
    let prediction;
    let table;
    if (predicts) {
      prediction = ref.values[index];
      table = profile.deltaTables[levelOf(context.expected(index))];
    } else {
      prediction = statistics.neutral[index];
      table = KEY_TABLES[levelOf(statistics.keyMeanAbs[index])];
    }
    const step = profile.step(index, values[mf.SCALE]);
    const bound = mf.maxResidual(index, step);
    let k;
    if (encoding) {
      k = mf.quantiseResidual(source[index], prediction, step);
      if ((k === 1 || k === -1) && predicts) {
        if (Math.abs(source[index] - prediction) < deadZone * step) k = 0;
      }
      table.encode(coder, k, bound);
    } else {
      k = table.decode(coder, bound);
    }
    if (observer) observer(index, table, k);
    values[index] = mf.clamp(prediction + k * step, index);
    residuals[index] = k;
    if (predicts) context.update(k);
  }
  return { values, residuals };
}

function clampInterval(value) {
  return Math.min(MAX_INTERVAL, Math.max(1, value));
}

function intervalFrom(ref, timestamp, gap) {
  const elapsed = mod(timestamp - ref.timestampMs, TIMESTAMP_MODULO);
  return clampInterval(floorDiv(elapsed * INTERVAL_SUBDIV + floorDiv(gap, 2), gap));
}

function predictTimestamp(ref, gap) {
  const ahead = floorDiv(gap * ref.intervalSixteenths + INTERVAL_SUBDIV / 2, INTERVAL_SUBDIV);
  return mod(ref.timestampMs + ahead, TIMESTAMP_MODULO);
}

/** Sender side: motion (or null for "no face") → packet for the unreliable channel. */
export class MotionEncoder {
  /** @param {{maxGap?: number, profile?: CodecProfile, observer?: Function}} options */
  constructor({ maxGap = MAX_GAP, profile = KEYPOINTS, observer = null } = {}) {
    if (!(maxGap >= 1 && maxGap <= MAX_GAP)) throw new RangeError(`maxGap must be in 1..${MAX_GAP}`);
    if (!(profile instanceof CodecProfile)) throw new TypeError("profile must be a CodecProfile");
    this.maxGap = maxGap;
    this.profile = profile;
    this.observer = observer;
    this.seq = 0;
    this.history = new Map(); // seq -> {record, acked}
    this.lastTimestamp = null;
    this.forceKeyframe = false;
    this.ackFloor = null;
    this.keyframesSent = 0;
    this.framesSent = 0;
  }

  get nextSeq() {
    return this.seq;
  }

  requestKeyframe() {
    this.forceKeyframe = true;
  }

  /** Apply a receiver Feedback (or KeyframeRequest) packet from the reliable channel. */
  onFeedback(packet) {
    const [kind, , offset] = expectKind(packet, Kind.FEEDBACK, Kind.KEYFRAME_REQUEST);
    if (kind === Kind.KEYFRAME_REQUEST) {
      new Reader(packet, offset, "keyframe request").end();
      this.resetReferences();
      return;
    }
    const feedback = Feedback.decode(packet);
    if (feedback.keyframeRequest) this.resetReferences();
    for (const seq of feedback.acked) {
      if (this.ackFloor !== null && seqDelta(seq, this.ackFloor) < 0) continue;
      const sent = this.history.get(seq);
      if (sent !== undefined) sent.acked = true;
    }
    const newest = feedback.newestSeq;
    if (this.ackFloor !== null && newest !== null && seqDelta(newest, this.ackFloor) >= 0) {
      this.ackFloor = null;
    }
  }

  resetReferences() {
    this.forceKeyframe = true;
    this.ackFloor = this.seq;
    for (const sent of this.history.values()) sent.acked = false;
  }

  chooseReference(seq) {
    if (this.forceKeyframe) return [0, null];
    for (let gap = 1; gap <= this.maxGap; gap++) {
      const sent = this.history.get(mod(seq - gap, SEQ_MODULO));
      if (sent !== undefined && sent.acked) return [gap, sent.record];
    }
    return [0, null];
  }

  /** @param {object|null} motion (motion.js) @param {number} timestampMs @returns {Uint8Array} */
  encode(motion, timestampMs) {
    const timestamp = mod(Math.trunc(timestampMs), TIMESTAMP_MODULO);
    const seq = this.seq;
    this.seq = (seq + 1) % SEQ_MODULO;
    this.history.delete(seq);
    this.framesSent += 1;
    if (motion === null || motion === undefined) return MotionPacket.noFace(seq, timestamp).serialize();
    const units = mf.motionToUnits(motion);
    const [gap, ref] = this.chooseReference(seq);
    const coder = new ArithmeticEncoder();
    let interval = this.interval(timestamp);
    const refSeq = mod(seq - gap, SEQ_MODULO);
    if (ref !== null) {
      coder.encode(GAP_TABLE, gap - 1);
      coder.encodeUniform((refSeq >> 6) & ((1 << CHECK_BITS) - 1), 1 << CHECK_BITS);
      const same = units.hasEye === ref.hasEye && units.hasLip === ref.hasLip;
      coder.encode(FLAGS_SAME_TABLE, same ? 0 : 1);
      if (!same) {
        coder.encodeUniform(units.hasEye ? 1 : 0, 2);
        coder.encodeUniform(units.hasLip ? 1 : 0, 2);
      }
      const predicted = predictTimestamp(ref, gap);
      const residual = mod(timestamp - predicted + HALF_TIMESTAMP, TIMESTAMP_MODULO) - HALF_TIMESTAMP;
      TIMESTAMP_TABLE.encode(coder, residual, HALF_TIMESTAMP);
      interval = intervalFrom(ref, timestamp, gap);
    } else {
      coder.encodeUniform(units.hasEye ? 1 : 0, 2);
      coder.encodeUniform(units.hasLip ? 1 : 0, 2);
      coder.encodeUniform(Math.floor(timestamp / 65536), 65536);
      coder.encodeUniform(timestamp % 65536, 65536);
      coder.encodeUniform(interval, MAX_INTERVAL + 1);
      this.forceKeyframe = false;
      this.keyframesSent += 1;
    }
    const { values, residuals } = runFields(
      coder, ref, gap, units.hasEye, units.hasLip, this.profile, units.values, this.observer,
    );
    const record = {
      values,
      residuals,
      gap,
      timestampMs: timestamp,
      intervalSixteenths: interval,
      hasEye: units.hasEye,
      hasLip: units.hasLip,
      profile: this.profile,
    };
    this.history.set(seq, { record, acked: false });
    this.history.delete(mod(seq - STORE_FRAMES, SEQ_MODULO));
    this.lastTimestamp = timestamp;
    if (ref === null) return MotionPacket.keyframe(seq, this.profile.profileId, coder.finish()).serialize();
    return MotionPacket.delta(refSeq, coder.finish()).serialize();
  }

  interval(timestamp) {
    if (this.lastTimestamp === null) return 33 * INTERVAL_SUBDIV;
    const elapsed = mod(timestamp - this.lastTimestamp, TIMESTAMP_MODULO);
    return clampInterval(elapsed * INTERVAL_SUBDIV);
  }
}

/** Receiver side: packet → motion to show (or null), plus feedback for the sender. */
export class MotionDecoder {
  /** @param {{profiles?: CodecProfile[], observer?: Function}} options: `profiles` replace
   * the built-in profile of the same id (a refitted profile). */
  constructor({ profiles = [], observer = null } = {}) {
    this.profiles = new Map(PROFILES);
    for (const profile of profiles) this.profiles.set(profile.profileId, profile);
    this.observer = observer;
    this.lastStatus = DecodeStatus.WAITING;
    /** False after a no-face packet, until the next motion frame. */
    this.senderHasFace = true;
    /** Sender timestamp of the last frame shown (mod 2^32), or null. */
    this.lastTimestampMs = null;
    this.concealment = new Concealment();
    this.store = new Map(); // seq -> FrameRecord
    this.newest = null;
    this.pendingAcks = false;
    this.keyframeNeeded = false;
    this.lastSeq = null;
  }

  /** The last decoded frame (what to hold on screen), or null. */
  get lastMotion() {
    const last = this.concealment.last;
    return last !== null ? copyMotion(last.motion) : null;
  }

  /** Motion to show for this packet (see lastStatus), or null. Throws only ProtocolError. */
  decode(packet) {
    const parsed = MotionPacket.parse(packet);
    if (parsed.kind === Kind.NO_FACE) {
      if (this.isStale(parsed.seq)) {
        this.lastStatus = DecodeStatus.STALE;
        return this.hold();
      }
      this.lastSeq = parsed.seq;
      this.senderHasFace = false;
      this.lastTimestampMs = parsed.timestampMs;
      this.lastStatus = DecodeStatus.NO_FACE;
      return null;
    }
    let seq;
    let record;
    if (parsed.kind === Kind.MOTION_DELTA) {
      [seq, record] = this.decodeDelta(parsed.body, parsed.referenceBits);
    } else {
      const profile = profileById(parsed.profileId, this.profiles);
      seq = parsed.seq;
      record = this.decodeKeyframe(parsed.body, profile);
    }
    if (record === null || seq === null) {
      this.keyframeNeeded = true;
      if (this.concealment.last === null) {
        this.lastStatus = DecodeStatus.WAITING;
        return null;
      }
      this.lastStatus = DecodeStatus.CONCEALED;
      return this.concealment.nextFrame(this.senderHasFace);
    }
    const stale = this.isStale(seq);
    this.remember(seq, record);
    if (stale) {
      this.lastStatus = DecodeStatus.STALE;
      return this.hold();
    }
    const motion = mf.unitsToMotion(record);
    this.lastSeq = seq;
    this.senderHasFace = true;
    this.lastTimestampMs = record.timestampMs;
    this.concealment.shown(seq, record.timestampMs, motion);
    this.lastStatus = DecodeStatus.DECODED;
    return copyMotion(motion);
  }

  /** Feedback packet for the reliable channel, or null when nothing changed since last call. */
  feedback() {
    if (!this.pendingAcks && !this.keyframeNeeded) return null;
    const acked = [];
    if (this.newest !== null) {
      for (const s of this.store.keys()) {
        const d = seqDelta(this.newest, s);
        if (d >= 0 && d <= 32) acked.push(s);
      }
    }
    const packet = new Feedback(this.newest, acked, this.keyframeNeeded).encode();
    this.pendingAcks = false;
    this.keyframeNeeded = false;
    return packet;
  }

  /** Motion to show at `timestampMs` when no packet arrived in time (concealment.js). */
  conceal(timestampMs) {
    return this.concealment.at(timestampMs, this.senderHasFace);
  }

  hold() {
    return this.senderHasFace ? this.lastMotion : null;
  }

  isStale(seq) {
    if (this.lastSeq === null) return false;
    const delta = seqDelta(seq, this.lastSeq);
    return delta >= -MAX_REORDER && delta <= 0;
  }

  remember(seq, record) {
    this.store.set(seq, record);
    if (this.newest === null || seqDelta(seq, this.newest) > 0) this.newest = seq;
    const newest = this.newest;
    for (const old of [...this.store.keys()]) {
      const d = seqDelta(newest, old);
      if (!(d >= 0 && d < STORE_FRAMES)) this.store.delete(old);
    }
    this.pendingAcks = true;
  }

  decodeKeyframe(body, profile) {
    const coder = new ArithmeticDecoder(body);
    const hasEye = Boolean(coder.decodeUniform(2));
    const hasLip = Boolean(coder.decodeUniform(2));
    const high = coder.decodeUniform(65536);
    const timestamp = high * 65536 + coder.decodeUniform(65536);
    const interval = coder.decodeUniform(MAX_INTERVAL + 1);
    if (interval === 0) throw new ProtocolError("motion keyframe: frame interval 0 is invalid");
    return this.decodeFields(coder, null, 0, timestamp, interval, hasEye, hasLip, profile);
  }

  findReference(lowBits, check) {
    const wanted = (check << 6) | lowBits;
    for (const seq of this.store.keys()) if ((seq & 0xff) === wanted) return seq;
    return null;
  }

  decodeDelta(body, lowBits) {
    const coder = new ArithmeticDecoder(body);
    const gap = coder.decode(GAP_TABLE) + 1;
    const check = coder.decodeUniform(1 << CHECK_BITS);
    const refSeq = this.findReference(lowBits, check);
    if (refSeq === null) return [null, null];
    const ref = this.store.get(refSeq);
    let hasEye = ref.hasEye;
    let hasLip = ref.hasLip;
    if (coder.decode(FLAGS_SAME_TABLE) !== 0) {
      hasEye = Boolean(coder.decodeUniform(2));
      hasLip = Boolean(coder.decodeUniform(2));
    }
    const residual = TIMESTAMP_TABLE.decode(coder, HALF_TIMESTAMP);
    const timestamp = mod(predictTimestamp(ref, gap) + residual, TIMESTAMP_MODULO);
    const interval = intervalFrom(ref, timestamp, gap);
    const record = this.decodeFields(coder, ref, gap, timestamp, interval, hasEye, hasLip, ref.profile);
    return [(refSeq + gap) % SEQ_MODULO, record];
  }

  decodeFields(coder, ref, gap, timestamp, interval, hasEye, hasLip, profile) {
    const { values, residuals } = runFields(coder, ref, gap, hasEye, hasLip, profile, null, this.observer);
    return { values, residuals, gap, timestampMs: timestamp, intervalSixteenths: interval, hasEye, hasLip, profile };
  }
}
