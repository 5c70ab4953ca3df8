// Downlink `keypoints`: the others' motion arrives as packets on `motion-down`, their
// portraits on `portraits` (docs/protocol.md §12); this page decodes and renders each tile
// itself with WebGL2 (web_client/render). No video reaches the page.

import {
  DecodeStatus,
  FeedbackPacer,
  MotionDecoder,
  PortraitReceiver,
  framePacket,
  unframePacket,
} from "./codec/index.js";
import { ReceiverAudioClock } from "./audio_clock.js";
import { NeutralPose } from "./neutral_pose.js";
import { AudioPlayoutDelay, PlayoutSync } from "./playout_sync.js";
import { VoiceHold } from "./voice_hold.js";
import { MeshwarpGLRenderer } from "./render/renderer.js";

function fromHex(text) {
  return new Uint8Array(text.match(/../g).map((byte) => parseInt(byte, 16)));
}

// Canvases whose WebGL context is gone: a renderer closed it (a restart or a rejoin closes the
// old downlink, which frees its GPU memory by losing the context) or the GPU process reset.
// A canvas keeps its one context for life, so a new renderer needs a new canvas there.
const lostCanvases = new WeakSet();

/** `canvas`, or a blank copy in its place in the page if its WebGL context is lost. */
function usableCanvas(canvas) {
  if (!lostCanvases.has(canvas)) return canvas;
  const fresh = canvas.cloneNode(false);
  canvas.replaceWith(fresh);
  return fresh;
}

class TileRenderer {
  /** @param {() => void} onLost called when the GPU takes the context away mid-call */
  constructor(canvas, onLost = () => {}) {
    this.canvas = usableCanvas(canvas);
    this.canvas.addEventListener("webglcontextlost", () => {
      lostCanvases.add(this.canvas);
      this.ready = false;
      onLost();
    });
    this.renderer = new MeshwarpGLRenderer(this.canvas);
    this.sourceSha = null;
    this.ready = false;
    this.frames = 0;
    this.renderMs = [];
  }

  close() {
    lostCanvases.add(this.canvas); // close() loses the context on purpose
    this.renderer.close();
  }
}

export class KeypointDownlink {
  constructor({ canvasFor, controls, voiceLevel = () => null, audioReceiver = () => null, lipSync = true }) {
    this.kind = "keypoints";
    this.canvasFor = canvasFor; // slot -> <canvas>
    this.controls = controls; // () -> {eyeOpen, lipOpen, headMotion, stitching, voiceMouth}
    this.voiceLevel = voiceLevel; // slot -> the voice on that tile now, -dBov, or null
    this.audioReceiver = audioReceiver; // slot -> the RTCRtpReceiver of that tile's voice, or null
    this.lipSync = lipSync; // false: motion is drawn as it arrives (to measure what sync does)
    this.audioDelays = new Map(); // slot -> AudioPlayoutDelay
    this.audioClocks = new Map(); // slot -> ReceiverAudioClock (when each voice time plays)
    this.voiceHolds = new Map(); // slot -> VoiceHold (the voice waits for late motion)
    this.statsTimer = null;
    this.sources = new Map(); // source id -> {decoder, pacer, motion, fresh, face, resetPending}
    this.slotOf = new Map(); // source id -> slot
    this.tiles = new Map(); // slot -> TileRenderer
    this.sourceData = new Map(); // image sha256 -> renderer data
    this.sourceImage = new Map(); // source id -> image sha256 (the newest)
    this.images = new Map(); // image sha256 -> ImageBitmap
    this.portraits = new PortraitReceiver({
      decodeImage: async (bytes) => {
        const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
        return { width: bitmap.width, height: bitmap.height };
      },
    });
    this.motion = null;
    this.portraitChannel = null;
    this.animation = null;
    this.drawn = [];
    this.contextLosses = 0; // tiles redrawn on a new canvas after the GPU lost theirs
  }

  openChannels(pc) {
    this.motion = pc.createDataChannel("motion-down", { ordered: false, maxRetransmits: 0 });
    this.motion.binaryType = "arraybuffer";
    this.motion.onmessage = (event) => this.onMotion(event.data);
    this.portraitChannel = pc.createDataChannel("portraits");
    this.portraitChannel.binaryType = "arraybuffer";
    this.portraitChannel.onmessage = (event) => this.onPortrait(event.data);
    const frame = () => {
      this.renderDue();
      this.animation = requestAnimationFrame(frame);
    };
    this.animation = requestAnimationFrame(frame);
    this.statsTimer = setInterval(() => this.readAudioDelays(), 500);
  }

  /** Each tile's voice wait (playout_sync.js), read from its receiver's stats. */
  async readAudioDelays() {
    for (const slot of new Set(this.slotOf.values())) {
      const receiver = this.audioReceiver(slot);
      if (!receiver) continue;
      let inbound = null;
      const report = await receiver.getStats();
      report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s; });
      if (!inbound) continue;
      const playout = inbound.playoutId ? report.get(inbound.playoutId) : null;
      if (!this.audioDelays.has(slot)) this.audioDelays.set(slot, new AudioPlayoutDelay());
      const delay = this.audioDelays.get(slot);
      delay.update(inbound, playout);
      if (this.audioClocks.has(slot)) this.audioClocks.get(slot).outputMs = delay.playoutMs;
      this.holdVoice(slot, receiver, delay);
    }
  }

  /** Motion of this tile drawn after its sound: let the voice wait longer (voice_hold.js). */
  holdVoice(slot, receiver, delay) {
    if (!this.lipSync || !("jitterBufferTarget" in receiver)) return;
    const id = [...this.slotOf].find(([, s]) => s === slot)?.[0];
    const source = id !== undefined ? this.sources.get(id) : null;
    if (!source) return;
    if (!this.voiceHolds.has(slot)) this.voiceHolds.set(slot, new VoiceHold());
    const target = this.voiceHolds.get(slot).update(source.sync.lateMs(0.8), delay.jitterMs);
    try {
      receiver.jitterBufferTarget = target > 0 ? target : null;
    } catch {
      // out of the browser's range: keep what it has
    }
  }

  /** Each tile's voice clock, read every animation frame (a cheap synchronous call). */
  readAudioClocks() {
    for (const slot of new Set(this.slotOf.values())) {
      const receiver = this.audioReceiver(slot);
      if (!receiver || !receiver.getSynchronizationSources) continue;
      if (!this.audioClocks.has(slot)) this.audioClocks.set(slot, new ReceiverAudioClock());
      for (const source of receiver.getSynchronizationSources()) this.audioClocks.get(slot).read(source);
    }
  }

  /** How this page's tiles were placed: per tile, frames on the voice clock / by arrival,
   * the p50/p80 lateness of voice-clock frames and the voice's hold (ms). */
  syncFigures() {
    const out = {};
    for (const [id, source] of this.sources) {
      const slot = this.slotOf.get(id);
      const hold = this.voiceHolds.get(slot);
      out[slot] = {
        voiceClock: source.sync.placed.voiceClock,
        arrival: source.sync.placed.arrival,
        lateP50: source.sync.lateMs(0.5),
        lateP80: source.sync.lateMs(0.8),
        holdMs: hold ? hold.targetMs : 0,
      };
    }
    return out;
  }

  audioDelayMs(id) {
    const delay = this.audioDelays.get(this.slotOf.get(id));
    return delay ? delay.ms : 0;
  }

  source(id) {
    let source = this.sources.get(id);
    if (!source) {
      const decoder = new MotionDecoder();
      source = { decoder, pacer: new FeedbackPacer(decoder), motion: null, fresh: false, face: null, resetPending: false, packets: 0, neutral: new NeutralPose(), shown: null, pose: null,
        sync: new PlayoutSync({
          audioDelayMs: () => this.audioDelayMs(id),
          audioClock: () => this.audioClocks.get(this.slotOf.get(id)) || null,
          enabled: this.lipSync,
        }) };
      this.sources.set(id, source);
    }
    return source;
  }

  onMotion(data) {
    if (!(data instanceof ArrayBuffer)) return;
    let id, packet;
    try {
      [id, packet] = unframePacket(new Uint8Array(data));
    } catch {
      return;
    }
    const source = this.source(id);
    source.packets += 1;
    try {
      const motion = source.decoder.decode(packet);
      // Shown when the voice of that moment plays (renderDue), not now.
      const timed = source.decoder.lastStatus === DecodeStatus.DECODED || source.decoder.lastStatus === DecodeStatus.NO_FACE;
      const timestamp = timed ? source.decoder.lastTimestampMs : null;
      if (motion) {
        source.sync.push({ motion, senderMs: source.decoder.lastTimestampMs }, timestamp, performance.now());
      } else if (source.decoder.lastStatus === DecodeStatus.NO_FACE) {
        source.sync.push({ noFace: true }, timestamp, performance.now());
      }
    } catch {
      return; // a bad packet costs that frame only
    }
    const feedback = source.pacer.poll();
    if (feedback && this.motion.readyState === "open") this.motion.send(framePacket(id, feedback));
  }

  async onPortrait(data) {
    if (!(data instanceof ArrayBuffer)) return;
    let id, packet;
    try {
      [id, packet] = unframePacket(new Uint8Array(data));
    } catch {
      return;
    }
    const replies = await this.portraits.onPacket(packet);
    for (const reply of replies) {
      if (this.portraitChannel.readyState === "open") this.portraitChannel.send(framePacket(id, reply));
    }
    await this.loadImages();
  }

  /** Portraits received whose renderer data names them, decoded once. */
  async loadImages() {
    for (const sha of new Set(this.sourceImage.values())) {
      const digest = fromHex(sha);
      if (this.images.has(sha) || !this.portraits.has(digest)) continue;
      const bytes = this.portraits.image(digest);
      this.images.set(sha, await createImageBitmap(new Blob([bytes], { type: "image/jpeg" })));
    }
    this.installSources();
  }

  /** Control messages of this downlink: `source` (renderer data) and `face`. */
  onControl(message) {
    if (message.type === "source") {
      this.sourceData.set(message.sha256, message.data);
      this.sourceImage.set(message.id, message.sha256);
      this.loadImages();
    } else if (message.type === "face") {
      const source = this.source(message.id);
      if (source.face !== message.track) {
        source.face = message.track;
        source.resetPending = true;
      }
    }
  }

  onSlots(slots) {
    this.slotOf = new Map(slots.map((s) => [s.id, s.slot]));
    for (const [id] of this.sources) if (!this.slotOf.has(id)) this.sources.delete(id);
    for (const [slot, tile] of this.tiles) {
      if (![...this.slotOf.values()].includes(slot)) tile.ready = false;
    }
    this.installSources();
  }

  installSources() {
    for (const [id, slot] of this.slotOf) {
      const sha = this.sourceImage.get(id);
      const data = sha && this.sourceData.get(sha);
      const image = sha && this.images.get(sha);
      if (!data || !image) continue;
      let tile = this.tiles.get(slot);
      if (!tile) {
        tile = new TileRenderer(this.canvasFor(slot), () => this.replaceTile(slot, tile));
        this.tiles.set(slot, tile);
      }
      if (tile.sourceSha !== sha || tile.sourceId !== id) {
        tile.renderer.setSource(data, image);
        tile.sourceSha = sha;
        tile.sourceId = id;
        tile.ready = true;
        const source = this.source(id);
        source.fresh = source.motion !== null; // re-render the held pose on the new portrait
        source.neutral.resetReference(); // setSource resets the renderer's reference
      }
    }
  }

  /** The GPU lost `tile`'s context: draw that slot again on a new canvas and renderer. */
  replaceTile(slot, tile) {
    if (this.tiles.get(slot) !== tile) return;
    this.tiles.delete(slot);
    this.contextLosses += 1;
    this.installSources();
  }

  renderDue() {
    this.readAudioClocks();
    const controls = this.controls();
    const now = performance.now();
    for (const source of this.sources.values()) {
      for (const item of source.sync.due(now)) {
        if (item.noFace) {
          source.neutral.onNoFace();
        } else {
          source.motion = item.motion;
          source.senderMs = item.senderMs;
          source.fresh = true;
          source.neutral.onMotion(item.motion, now / 1000); // where the frame is shown
        }
      }
    }
    for (const [id, source] of this.sources) {
      const tile = this.tiles.get(this.slotOf.get(id));
      if (!tile || !tile.ready || tile.sourceId !== id || source.motion === null) continue;
      const fresh = source.fresh;
      source.fresh = false;
      if (fresh && source.resetPending) { // at the new face's first motion
        tile.renderer.resetReference();
        source.neutral.resetReference();
        source.resetPending = false;
      }
      // Face gone: ease to the rest pose, maybe with the mouth following the voice.
      const pose = source.neutral.pose(performance.now() / 1000, controls, this.voiceLevel(this.slotOf.get(id)));
      source.pose = pose;
      const key = `${pose.neutral} ${JSON.stringify(pose.controls)}`;
      if (!fresh && key === source.shown) continue;
      source.shown = key;
      const start = performance.now();
      tile.renderer.render(pose.motion, pose.controls);
      tile.renderMs.push(performance.now() - start);
      // (sender timestamp, wall time drawn) of recent frames, for latency measurements.
      if (fresh) this.drawn.push({ id, senderMs: source.senderMs, at: Date.now() });
      if (this.drawn.length > 500) this.drawn.shift();
      if (tile.renderMs.length > 50) tile.renderMs.shift();
      tile.frames += 1;
    }
  }

  /** {neutral: 0 live … 1 rest pose, voice: the mouth follows the voice} of a tile, or null. */
  tilePose(slot) {
    for (const [id, source] of this.sources) {
      if (this.slotOf.get(id) === slot && source.pose) return { neutral: source.pose.neutral, voice: source.pose.voice };
    }
    return null;
  }

  tileFigures(slot) {
    const tile = this.tiles.get(slot);
    if (!tile) return null;
    const sorted = [...tile.renderMs].sort((a, b) => a - b);
    const sync = this.lipSync ? this.syncFigures()[slot] || null : null;
    return { frames: tile.frames, renderMs: sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN, sync };
  }

  close() {
    cancelAnimationFrame(this.animation);
    clearInterval(this.statsTimer);
    for (const tile of this.tiles.values()) tile.close();
    this.tiles.clear();
  }
}
