// What the receiver shows when a motion frame is missing (docs/protocol.md §5), port of
// lpstream/protocol/concealment.py: linear extrapolation from the last two frames shown,
// at most MAX_EXTRAPOLATION_MS, then hold. Arrays extrapolate in float32 as numpy does.

import { copyMotion } from "./motion.js";
import { TIMESTAMP_MODULO, floorDiv, mod, seqDelta } from "./wire.js";

export const MAX_EXTRAPOLATION_MS = 100;
export const DEFAULT_INTERVAL_MS = 33;

function extrapolate32(b, a, w32) {
  const out = new Float64Array(b.length);
  for (let i = 0; i < b.length; i++) {
    out[i] = Math.fround(b[i] + Math.fround(w32 * Math.fround(b[i] - a[i])));
  }
  return out;
}

export class Concealment {
  constructor() {
    this.frames = []; // [{seq, timestampMs, motion}], the last two shown
  }

  /** Record a decoded frame that was shown (`motion` must not be modified later). */
  shown(seq, timestampMs, motion) {
    this.frames = [...this.frames.slice(-1), { seq, timestampMs, motion }];
  }

  get last() {
    return this.frames.length ? this.frames[this.frames.length - 1] : null;
  }

  intervalMs() {
    if (this.frames.length === 2) {
      const [prev, last] = this.frames;
      const frames = seqDelta(last.seq, prev.seq);
      const elapsed = mod(last.timestampMs - prev.timestampMs, TIMESTAMP_MODULO);
      if (frames > 0) return Math.max(1, floorDiv(elapsed, frames));
    }
    return DEFAULT_INTERVAL_MS;
  }

  /** In place of the frame one interval after the last one shown. */
  nextFrame(moving = true) {
    const last = this.last;
    if (last === null) return null;
    return this.at(last.timestampMs + this.intervalMs(), moving);
  }

  /** Motion to show at sender time `timestampMs`; null before any frame was shown. */
  at(timestampMs, moving = true) {
    if (!this.frames.length) return null;
    const last = this.frames[this.frames.length - 1];
    if (this.frames.length < 2 || !moving) return copyMotion(last.motion);
    const prev = this.frames[this.frames.length - 2];
    const span = mod(last.timestampMs - prev.timestampMs, TIMESTAMP_MODULO);
    const ahead = mod(Math.trunc(timestampMs) - last.timestampMs, TIMESTAMP_MODULO);
    if (span === 0 || span > 4 * MAX_EXTRAPOLATION_MS || ahead > 2 ** 31) return copyMotion(last.motion);
    const w = Math.min(ahead, MAX_EXTRAPOLATION_MS) / span;
    const w32 = Math.fround(w);
    const a = prev.motion;
    const b = last.motion;
    return {
      pitch: b.pitch + w * (b.pitch - a.pitch),
      yaw: b.yaw + w * (b.yaw - a.yaw),
      roll: b.roll + w * (b.roll - a.roll),
      t: extrapolate32(b.t, a.t, w32),
      scale: b.scale + w * (b.scale - a.scale),
      exp: extrapolate32(b.exp, a.exp, w32),
      eyeRatio: b.eyeRatio === null ? null : Float64Array.from(b.eyeRatio),
      lipRatio: b.lipRatio,
    };
  }
}
