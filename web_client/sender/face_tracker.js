// One stable face per stream: the decisions of lpstream/face/tracker.py's FaceTracker, with the
// landmark detectors injected, so this module runs in Node as well as in the page.
//
// follower: MediaPipe in VIDEO mode with one face (never re-runs its detector while it follows);
// finder: IMAGE mode with several faces, used only while no face is followed. Tiny faces count
// as none; once locked the follower stays on its face (continuity: IoU or a small centre jump);
// a loss holds the last face for `hold_frames` frames (facePresent false), then gives null;
// within `reacquire_after` frames only a face near the old place is taken back, after that the
// largest face anywhere, with a new trackId. A resolution change resets the tracker.
// The crop box (LiveCropper) is not mirrored: the built-in motion uses the raw landmarks.

import { NUM_LANDMARKS, TRACKER } from './face_data.js';

/** One face's landmarks in image pixels (lpstream.face.landmarks.FaceLandmarks). */
export class Face {
  /** @param {Float32Array} points flat 478×3 @param {[number, number]} imageSize [w, h] */
  constructor(points, imageSize) {
    if (points.length !== NUM_LANDMARKS * 3) {
      throw new RangeError(`Face points must be 478×3, got ${points.length}`);
    }
    this.points = points;
    this.imageSize = imageSize;
    let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
    for (let i = 0; i < NUM_LANDMARKS; i++) {
      const x = points[3 * i];
      const y = points[3 * i + 1];
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    this._bbox = [x0, y0, x1, y1];
  }

  /** [x0, y0, x1, y1] tight box around all landmarks. */
  bbox() { return this._bbox; }

  area() {
    const [x0, y0, x1, y1] = this._bbox;
    return (x1 - x0) * (y1 - y0);
  }

  centre() {
    const [x0, y0, x1, y1] = this._bbox;
    return [(x0 + x1) / 2.0, (y0 + y1) / 2.0];
  }

  size() {
    const [x0, y0, x1, y1] = this._bbox;
    return Math.max(x1 - x0, y1 - y0);
  }
}

/** Intersection over union of two [x0, y0, x1, y1] boxes. */
export function boxIou(a, b) {
  const ix = Math.max(0.0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0.0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0.0;
}

/** Integer rectangles [x0, y0, x1, y1) to grey out for `faces` (lpstream grey_out). */
export function greyRects(faces, width, height) {
  return faces.map((face) => {
    const [cx, cy] = face.centre();
    const half = (face.size() * TRACKER.mask_grow) / 2.0;
    return [
      Math.max(0, Math.trunc(cx - half)), Math.max(0, Math.trunc(cy - half)),
      Math.min(width, Math.trunc(cx + half) + 1), Math.min(height, Math.trunc(cy + half) + 1),
    ];
  });
}

/**
 * @typedef {{detect(frame: any, timestampMs?: number): Face[]}} Detector  largest face first
 * @typedef {{landmarks: Face, facePresent: boolean, trackId: number}} TrackedFace
 */

export class FaceTracker {
  /**
   * @param {{follower: Detector, finder: Detector,
   *   greyOut: (frame: any, rects: number[][]) => any,
   *   frameSize: (frame: any) => [number, number]}} parts
   */
  constructor({ follower, finder, greyOut, frameSize }, settings = TRACKER) {
    this.settings = settings;
    this._follower = follower;
    this._finder = finder;
    this._greyOut = greyOut;
    this._frameSize = frameSize;
    this._trackId = 0;
    this._frameShape = null;
    this.reset();
  }

  isLargeEnough(face) {
    const shorter = Math.min(face.imageSize[0], face.imageSize[1]);
    return face.size() >= Math.max(this.settings.min_face_px, this.settings.min_face_fraction * shorter);
  }

  _continuity(face) {
    const iou = boxIou(face.bbox(), this._target.bbox());
    const [cx, cy] = face.centre();
    const [tx, ty] = this._target.centre();
    const close = Math.hypot(cx - tx, cy - ty) <= this.settings.max_centre_jump * this._target.size();
    return iou >= this.settings.min_iou || close ? iou : null;
  }

  _follow(frame, timestampMs) {
    const found = this._follower.detect(frame, timestampMs).filter((f) => this.isLargeEnough(f));
    if (found.length && this._target !== null && this._continuity(found[0]) !== null) return found[0];
    this._locked = false;
    return null;
  }

  _acquire(frame, timestampMs) {
    const faces = this._finder.detect(frame).filter((f) => this.isLargeEnough(f));
    let chosen = null;
    if (this._target === null) {
      chosen = faces.length ? faces[0] : null;
    } else {
      let bestScore = -Infinity;
      for (const face of faces) {
        const score = this._continuity(face);
        if (score !== null && score > bestScore) { // first of equals, as Python's max()
          bestScore = score;
          chosen = face;
        }
      }
    }
    if (chosen === null) return null;
    const others = faces.filter((face) => face !== chosen);
    const [width, height] = this._frameSize(frame);
    const view = others.length ? this._greyOut(frame, greyRects(others, width, height)) : frame;
    const followed = this._follower.detect(view, timestampMs);
    if (followed.length && boxIou(followed[0].bbox(), chosen.bbox()) >= this.settings.lock_iou) {
      this._locked = true;
      return followed[0];
    }
    return chosen; // the follower locks on in a later frame
  }

  /** @returns {TrackedFace|null} */
  update(frame, timestampMs) {
    const [width, height] = this._frameSize(frame);
    const shape = `${width}x${height}`;
    if (shape !== this._frameShape) {
      if (this._frameShape !== null) this.reset();
      this._frameShape = shape;
    }
    let face = this._locked ? this._follow(frame, timestampMs) : null;
    if (face === null) face = this._acquire(frame, timestampMs);
    if (face === null) return this._onMissing();
    if (this._target === null) this._trackId += 1;
    this._target = face;
    this._missing = 0;
    this._last = { landmarks: face, facePresent: true, trackId: this._trackId };
    return this._last;
  }

  _onMissing() {
    if (this._target === null) return null;
    this._missing += 1;
    if (this._missing > this.settings.reacquire_after) {
      this._target = null;
      this._last = null;
      return null;
    }
    if (this._missing <= this.settings.hold_frames && this._last !== null) {
      return { ...this._last, facePresent: false };
    }
    return null;
  }

  /** Forget the target (new camera, new call); track ids keep counting. */
  reset() {
    this._locked = false;
    this._target = null;
    this._last = null;
    this._missing = 0;
  }
}
