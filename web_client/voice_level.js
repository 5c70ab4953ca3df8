// How loud each tile's voice is right now, as the node reads it from RTP (RFC 6464: RMS in
// −dBov), measured here on the decoded sound: an AnalyserNode per tile's audio track, the RMS
// of its last 1024 samples (~21 ms). The node forwards Opus without the level extension, so
// the page measures what it plays. getStats' audioLevel would not do: it is a decaying peak
// updated ten times a second, on another scale.

import { dbovOfRms } from "./neutral_pose.js";

const WINDOW = 1024;

export class VoiceLevels {
  constructor() {
    this.context = null;
    this.analysers = new Map(); // slot -> {analyser, source, stream}
    this.buffer = new Float32Array(WINDOW);
    // A context made before any user gesture may start suspended: resume on the first one.
    this._resume = () => {
      if (this.context && this.context.state === "suspended") this.context.resume().catch(() => {});
    };
    addEventListener("pointerdown", this._resume);
    addEventListener("keydown", this._resume);
  }

  /** The tile `slot` now plays `stream` (a MediaStream with one audio track). */
  attach(slot, stream) {
    this.detach(slot);
    if (!stream || !stream.getAudioTracks().length) return;
    try {
      this.context ??= new AudioContext();
      this._resume();
      const source = this.context.createMediaStreamSource(stream);
      const analyser = this.context.createAnalyser();
      analyser.fftSize = WINDOW;
      source.connect(analyser); // not to the destination: the tile's <audio> plays it
      this.analysers.set(slot, { analyser, source });
    } catch {
      // No Web Audio: the mouth does not follow the voice on this page.
    }
  }

  detach(slot) {
    const entry = this.analysers.get(slot);
    if (!entry) return;
    entry.source.disconnect();
    this.analysers.delete(slot);
  }

  /** −dBov of the tile's voice now (0 loudest … 127 silent), or null if not measured. */
  level(slot) {
    const entry = this.analysers.get(slot);
    if (!entry || !this.context || this.context.state !== "running") return null;
    entry.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    return dbovOfRms(Math.sqrt(sum / this.buffer.length));
  }

  close() {
    for (const slot of [...this.analysers.keys()]) this.detach(slot);
    removeEventListener("pointerdown", this._resume);
    removeEventListener("keydown", this._resume);
    if (this.context) this.context.close();
    this.context = null;
  }
}
