// Causal jitter removal on the sender's motion: lpstream/meshwarp/smoothing.py's MotionSmoother.

import { SMOOTHING } from './face_data.js';
import { makeMotion } from './face_motion.js';
import { OneEuroFilter } from './one_euro.js';

/** Filters successive motions of one face; `reset()` when the face is lost or changes. */
export class MotionSmoother {
  constructor() {
    this.reset();
  }

  reset() {
    this._filters = null;
    this._lastMs = null;
  }

  /** @param {import('./face_motion.js').Motion} motion @param {number} timestampMs */
  smooth(motion, timestampMs) {
    const angles = [motion.pitch, motion.yaw, motion.roll];
    const placement = [motion.t[0], motion.t[1], motion.scale];
    if (this._filters === null || this._lastMs === null || timestampMs <= this._lastMs) {
      this._filters = [
        new OneEuroFilter(angles, SMOOTHING.angles.minCutoffHz, SMOOTHING.angles.beta),
        new OneEuroFilter(placement, SMOOTHING.placement.minCutoffHz, SMOOTHING.placement.beta),
        new OneEuroFilter(motion.exp, SMOOTHING.expression.minCutoffHz, SMOOTHING.expression.beta),
      ];
      this._lastMs = timestampMs;
      return motion;
    }
    const dt = (timestampMs - this._lastMs) / 1000.0;
    this._lastMs = timestampMs;
    const [pitch, yaw, roll] = this._filters[0].step(angles, dt);
    const [tx, ty, scale] = this._filters[1].step(placement, dt);
    const exp = this._filters[2].step(motion.exp, dt);
    return makeMotion({
      pitch, yaw, roll, t: [tx, ty, motion.t[2]], scale, exp,
      eyeRatio: motion.eyeRatio, lipRatio: motion.lipRatio,
    });
  }
}
