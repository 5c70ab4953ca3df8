// The browser's sender of the built-in backend: camera frame -> face landmarks (MediaPipe,
// served by the node) -> tracked face -> smoothed motion, as lpstream.meshwarp.MeshwarpSender.
//
//   const sender = await KeypointSender.create({ modelUrl, wasmBase });
//   const { motion, faceId } = sender.extract(video, performance.now());  // motion null: no face

import { FaceTracker, greyRects } from './face_tracker.js';
import { DEFAULT_MODEL_URL, DEFAULT_WASM_BASE, LandmarkDetector, fetchModel, frameSize, loadVision } from './landmarker.js';
import { MotionSender } from './motion_sender.js';
import { TRACKER } from './face_data.js';

export { frameSize } from './landmarker.js';
export { motionFromLandmarks } from './face_motion.js';

// The follower sees other faces greyed out until it locks on (lpstream grey_out).
function makeGreyOut() {
  let canvas = null;
  let context = null;
  return (frame, rects) => {
    const [width, height] = frameSize(frame);
    if (canvas === null || canvas.width !== width || canvas.height !== height) {
      canvas = new OffscreenCanvas(width, height);
      context = canvas.getContext('2d', { willReadFrequently: true });
    }
    if (frame instanceof ImageData) context.putImageData(frame, 0, 0);
    else context.drawImage(frame, 0, 0, width, height);
    context.fillStyle = 'rgb(128, 128, 128)';
    for (const [x0, y0, x1, y1] of rects) context.fillRect(x0, y0, x1 - x0, y1 - y0);
    return canvas;
  };
}

export class KeypointSender {
  /**
   * @param {{modelUrl?: string, wasmBase?: string, smooth?: boolean}} options
   *   modelUrl: the node's `/models/face_landmarker.task`; wasmBase: the vendored wasm folder.
   */
  static async create({ modelUrl = DEFAULT_MODEL_URL, wasmBase = DEFAULT_WASM_BASE, smooth = true } = {}) {
    const [vision, model] = await Promise.all([loadVision(wasmBase), fetchModel(modelUrl)]);
    const follower = await LandmarkDetector.create({ vision, model, maxFaces: 1, videoMode: true });
    const finder = await LandmarkDetector.create({
      vision, model, maxFaces: TRACKER.max_faces, videoMode: false,
    });
    return new KeypointSender(follower, finder, smooth);
  }

  constructor(follower, finder, smooth) {
    this._follower = follower;
    this._finder = finder;
    this._tracker = new FaceTracker({ follower, finder, greyOut: makeGreyOut(), frameSize });
    this._sender = new MotionSender({ smooth });
  }

  /**
   * Motion of the tracked face in one frame.
   * @param {CanvasImageSource|ImageData|VideoFrame} source the camera frame
   * @param {number} timestampMs capture time in ms (increasing)
   * @returns {{motion: import('./face_motion.js').Motion|null, faceId: number|null,
   *   facePresent: boolean}} motion null: no face (NO_FACE); faceId changes with a new face.
   */
  extract(source, timestampMs) {
    const tracked = this._tracker.update(source, timestampMs);
    return this._sender.push(tracked, timestampMs);
  }

  /** Forget the face and the smoothing (new camera, new call). */
  reset() {
    this._tracker.reset();
    this._sender.reset();
  }

  close() {
    this._follower.close();
    this._finder.close();
  }
}
