// Uplink `keypoints`: this page finds its face, computes the built-in backend's motion,
// encodes it and sends it on `motion-up`; the camera never leaves the page
// (docs/protocol.md §12). The node's merged feedback comes back on the same channel.
//
// Each motion frame is stamped with the time its camera frame was captured, on the voice
// clock when the microphone's is known (audio_clock.js: ms of its RTP clock), so that a
// receiver can draw the frame when the sound said at that moment plays; on page time
// otherwise (ms since this uplink started).

import { SenderAudioClock } from "./audio_clock.js";
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
    /** The microphone's clock; app.js attaches it to the microphone's sender before the
     * offer (`useAudioClock`). */
    this.useAudioClock = true;
    this.audioClock = new SenderAudioClock();
    this.stamped = { voiceClock: 0, page: 0 };
    this.frame = null; // {captureMs, presented} of the newest camera frame shown
    this.sentPresented = null;
    this.frameCallback = null;
  }

  /** Follow the camera's frames (requestVideoFrameCallback): their capture times, and which
   * frame was already sent. Without it, a frame is stamped when it is read. */
  watchFrames(video) {
    if (!video.requestVideoFrameCallback || this.frameCallback) return;
    const watch = (now, meta) => {
      const captureMs = meta.captureTime !== undefined ? meta.captureTime : now;
      this.frame = { captureMs, presented: meta.presentedFrames };
      this.frameCallback = video.requestVideoFrameCallback(watch);
    };
    this.frameCallback = video.requestVideoFrameCallback(watch);
    this.video = video;
  }

  /** The timestamp of a frame captured at page time `captureMs`. */
  stampOf(captureMs) {
    const voiceMs = this.audioClock.voiceMsAt(captureMs);
    if (voiceMs !== null) {
      this.stamped.voiceClock += 1;
      // The page's start time keeps the latency figures (bench/browser_call.py) true.
      this.wallStart = Date.now() - performance.now() + captureMs - Math.floor(voiceMs);
      return Math.floor(voiceMs);
    }
    this.stamped.page += 1;
    this.wallStart = Date.now() - performance.now() + this.started;
    return Math.round(captureMs - this.started);
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
    this.watchFrames(video);
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
    const frame = this.frame;
    if (frame && frame.presented === this.sentPresented) return; // no new camera frame yet
    this.sentPresented = frame ? frame.presented : null;
    const now = performance.now();
    const timestampMs = this.stampOf(frame ? Math.min(frame.captureMs, now) : now);
    // The landmarker wants its own increasing page time, whatever the stamp's clock.
    const output = this.sender.extract(video, Math.round(now - this.started));
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
    if (this.frameCallback !== null && this.video) this.video.cancelVideoFrameCallback(this.frameCallback);
    this.frameCallback = null;
  }

  close() {
    this.stop();
    this.sender.close();
    this.audioClock.close();
  }
}
