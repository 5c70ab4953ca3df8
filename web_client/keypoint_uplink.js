// Uplink `keypoints`: this page finds its face, computes the built-in backend's motion,
// encodes it and sends it on `motion-up`; the camera never leaves the page
// (docs/protocol.md §12). The node's merged feedback comes back on the same channel.

import { LANDMARKS, MotionEncoder } from "./codec/index.js";
import { KeypointSender } from "./sender/keypoint_sender.js";

export class KeypointUplink {
  /** Loads the landmarker (throws if the page cannot run it: then use the camera uplink). */
  static async create() {
    return new KeypointUplink(await KeypointSender.create());
  }

  constructor(sender) {
    this.kind = "keypoints";
    this.sender = sender;
    this.encoder = new MotionEncoder({ profile: LANDMARKS });
    this.channel = null;
    this.faceId = null;
    this.timer = null;
    this.started = performance.now();
    /** Wall-clock time (Date.now()) of sender timestamp 0: pages of one browser share the
     * clock, so a receiver's render time minus this plus the timestamp is the latency. */
    this.wallStart = Date.now();
    this.extractMs = [];
    this.framesSent = 0;
    this.faceVisible = true;
  }

  /** The page's own channel, created before the offer. */
  openChannel(pc) {
    this.channel = pc.createDataChannel("motion-up", { ordered: false, maxRetransmits: 0 });
    this.channel.binaryType = "arraybuffer";
    this.channel.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) this.encoder.onFeedback(new Uint8Array(event.data));
    };
  }

  /** Extract from `video` at `fps` while the channel is open; `sendControl` takes JSON. */
  start(video, sendControl, fps = 25) {
    this.stop();
    this.timer = setInterval(() => this.step(video, sendControl), 1000 / fps);
  }

  step(video, sendControl) {
    if (!this.channel || this.channel.readyState !== "open" || video.readyState < 2) return;
    const camera = video.srcObject && video.srcObject.getVideoTracks()[0];
    if (camera && (camera.readyState !== "live" || !camera.enabled)) {
      // Camera off or gone: send nothing; receivers notice the silence and rest the face.
      this.faceVisible = false;
      return;
    }
    const now = performance.now();
    const timestampMs = Math.round(now - this.started);
    const output = this.sender.extract(video, timestampMs);
    this.extractMs.push(performance.now() - now);
    if (this.extractMs.length > 50) this.extractMs.shift();
    if (output.faceId !== null && output.faceId !== this.faceId) {
      this.faceId = output.faceId; // before the new face's first motion
      sendControl({ type: "face", track: output.faceId });
    }
    this.faceVisible = output.motion !== null;
    this.channel.send(this.encoder.encode(output.motion, timestampMs));
    this.framesSent += 1;
  }

  medianExtractMs() {
    const sorted = [...this.extractMs].sort((a, b) => a - b);
    return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  close() {
    this.stop();
    this.sender.close();
  }
}
