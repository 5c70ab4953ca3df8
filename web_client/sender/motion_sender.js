// Tracked face -> smoothed motion and face id: lpstream/meshwarp/sender.py's MeshwarpSender
// after its tracker. No browser API: the parity tests drive it in Node with Python's landmarks.

import { copyMotion, motionFromLandmarks } from './face_motion.js';
import { MotionSmoother } from './motion_smoother.js';

export class MotionSender {
  constructor({ smooth = true } = {}) {
    this._smoother = smooth ? new MotionSmoother() : null;
    this._trackId = null;
    this._last = null;
  }

  /**
   * @param {import('./face_tracker.js').TrackedFace|null} tracked this frame's face, or null
   * @param {number} timestampMs capture time (the smoothing's clock)
   * @returns {{motion: import('./face_motion.js').Motion|null, faceId: number|null,
   *   facePresent: boolean}}
   */
  push(tracked, timestampMs) {
    if (tracked === null) {
      this._forget();
      return { motion: null, faceId: this._trackId, facePresent: false };
    }
    if (tracked.trackId !== this._trackId) this._forget();
    this._trackId = tracked.trackId;
    if (tracked.facePresent || this._last === null) {
      const face = tracked.landmarks;
      let motion = motionFromLandmarks(face.points, face.imageSize);
      if (this._smoother !== null) motion = this._smoother.smooth(motion, timestampMs);
      this._last = motion;
    }
    // During a short dropout the tracker holds the last face: repeat the last motion.
    return { motion: copyMotion(this._last), faceId: this._trackId, facePresent: tracked.facePresent };
  }

  _forget() {
    this._last = null;
    if (this._smoother !== null) this._smoother.reset();
  }

  reset() {
    this._trackId = null;
    this._forget();
  }
}
