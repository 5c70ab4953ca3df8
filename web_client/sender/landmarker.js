// MediaPipe FaceLandmarker (Tasks for Web, vendored from npm by `make setup`) returning Face
// objects in image pixels, largest first: the browser twin of lpstream/face/landmarks.py.

import { FaceLandmarker, FilesetResolver } from '../vendor/tasks-vision/vision_bundle.mjs';
import { Face } from './face_tracker.js';

export const DEFAULT_WASM_BASE = new URL('../vendor/tasks-vision/wasm', import.meta.url).href;
export const DEFAULT_MODEL_URL = '/models/face_landmarker.task';
const MIN_CONFIDENCE = 0.5;
const TELEMETRY = 'https://odml.pa.googleapis.com/';

// tasks-vision 1.1.0 posts usage statistics (task, latencies) to Google once a minute and on
// close, through the page's fetch, with no documented opt-out. A call must not reach beyond
// the node (it may be offline, and the camera user never agreed to it): those requests are
// answered locally. Only that endpoint is affected; tests/test_browser_sender.py blocks
// everything but loopback and fails on any other outside request.
function silenceTelemetry() {
  const fetch = globalThis.fetch;
  if (fetch.lpstreamSilenced) return;
  const guarded = (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input?.url;
    if (url?.startsWith(TELEMETRY)) return Promise.resolve(new Response('', { status: 204 }));
    return fetch(input, init);
  };
  guarded.lpstreamSilenced = true;
  globalThis.fetch = guarded;
}

/** [width, height] of anything MediaPipe accepts (video, image, canvas, bitmap, VideoFrame). */
export function frameSize(source) {
  if (source.videoWidth !== undefined) return [source.videoWidth, source.videoHeight];
  if (source.naturalWidth !== undefined) return [source.naturalWidth, source.naturalHeight];
  if (source.displayWidth !== undefined) return [source.displayWidth, source.displayHeight];
  return [source.width, source.height];
}

/** The model file as bytes (fetched once; both landmarkers of a tracker share it). */
export async function fetchModel(modelUrl = DEFAULT_MODEL_URL) {
  const response = await fetch(modelUrl);
  if (!response.ok) {
    throw new Error(`face landmarker model ${modelUrl}: HTTP ${response.status} ${await response.text()}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

export function loadVision(wasmBase = DEFAULT_WASM_BASE) {
  return FilesetResolver.forVisionTasks(wasmBase);
}

export class LandmarkDetector {
  /**
   * @param {{vision: object, model: Uint8Array, maxFaces?: number, videoMode?: boolean}} options
   *   vision from `loadVision`, model from `fetchModel`.
   */
  static async create({ vision, model, maxFaces = 2, videoMode = true }) {
    silenceTelemetry();
    const landmarker = await FaceLandmarker.createFromOptions(vision, {
      baseOptions: { modelAssetBuffer: model, delegate: 'CPU' },
      runningMode: videoMode ? 'VIDEO' : 'IMAGE',
      numFaces: maxFaces,
      minFaceDetectionConfidence: MIN_CONFIDENCE,
      minFacePresenceConfidence: MIN_CONFIDENCE,
      minTrackingConfidence: MIN_CONFIDENCE,
    });
    return new LandmarkDetector(landmarker, videoMode);
  }

  constructor(landmarker, videoMode) {
    this._landmarker = landmarker;
    this.videoMode = videoMode;
    this._lastTimestampMs = null;
  }

  // VIDEO mode needs strictly increasing timestamps: a repeat is bumped by 1 ms (as Python).
  _nextTimestamp(timestampMs) {
    let ts = Math.trunc(timestampMs ?? performance.now());
    if (this._lastTimestampMs !== null && ts <= this._lastTimestampMs) ts = this._lastTimestampMs + 1;
    this._lastTimestampMs = ts;
    return ts;
  }

  /** Every face in `source`, largest first; [] if none. */
  detect(source, timestampMs) {
    if (this._landmarker === null) throw new Error('LandmarkDetector is closed');
    const [width, height] = frameSize(source);
    const result = this.videoMode
      ? this._landmarker.detectForVideo(source, this._nextTimestamp(timestampMs))
      : this._landmarker.detect(source);
    const faces = result.faceLandmarks.map((landmarks) => {
      const points = new Float32Array(landmarks.length * 3);
      landmarks.forEach((p, i) => {
        // float32 × float32 as Python does (normalised float32 times the image size).
        points[3 * i] = Math.fround(p.x) * width;
        points[3 * i + 1] = Math.fround(p.y) * height;
        points[3 * i + 2] = Math.fround(p.z) * width;
      });
      return new Face(points, [width, height]);
    });
    faces.sort((a, b) => b.area() - a.area());
    return faces;
  }

  close() {
    if (this._landmarker !== null) {
      this._landmarker.close();
      this._landmarker = null;
    }
  }
}
