// Lip sync of the tiles this page renders (downlink `keypoints`): each motion frame is drawn
// when the voice of the same moment plays, not when its packet arrives.
//
// First choice, the voice clock (audio_clock.js): a keypoint sender stamps its motion with
// its microphone's RTP time, the node forwards the voice with those RTP timestamps, and this
// page's audio receiver says when each RTP time plays. A frame is due when its stamp is heard.
// A frame stamped on another clock (a camera-uplink sender, the node's clock; a page without
// a microphone) is placed off by far more than PLAUSIBLE_MS, and then the fallback below holds.
//
// Fallback: a frame's *arrival time* is its sender timestamp put on this page's clock by the fastest
// trip seen (the smallest arrival − timestamp over the last WINDOW_MS): jitter only makes a
// packet later than that, so every frame is placed as if it came by the fastest trip, and
// frames keep their sender's spacing. The voice of the same moment arrives about then too
// (both cross the same node), and then waits in the audio jitter buffer and the playout:
// `AudioPlayoutDelay` reads that wait from the tile's audio receiver (getStats:
// jitterBufferDelay / jitterBufferEmittedCount over the last second, plus the playout's
// delay where Chromium reports it). A frame is due at its arrival time plus that delay.
// Docs: docs/architecture.md, "Lip sync".

export const WINDOW_MS = 10000;
/** A timestamp this far from the previous one is a new sender clock (a restarted page). */
export const RESTART_MS = 60000;
/** Never hold motion longer than this behind the voice's wait (a stats glitch). */
export const MAX_DELAY_MS = 1000;
/** A voice-clock due time further than this from now is not the same clock. */
export const PLAUSIBLE_MS = 2000;
/** How many recent frames' lateness is kept (2 s at 25 fps). */
export const LATENESS_FRAMES = 50;
const MODULO = 2 ** 32;

/** Sender timestamps (ms mod 2³²) → this page's clock by the earliest arrival. */
export class ArrivalMapping {
  constructor(windowMs = WINDOW_MS) {
    this.windowMs = windowMs;
    this.last = null;
    this.unwrapped = 0;
    this.offsets = []; // [arrival, offset], offsets increasing: [0] is the window's minimum
  }

  /** A packet of sender time `timestampMs` arrived at `arrivalMs`: its arrival time. */
  add(timestampMs, arrivalMs) {
    const t = ((timestampMs % MODULO) + MODULO) % MODULO;
    if (this.last === null) {
      this.unwrapped = t;
    } else {
      let step = (t - this.last + MODULO / 2) % MODULO;
      if (step < 0) step += MODULO;
      step -= MODULO / 2;
      if (Math.abs(step) > RESTART_MS) this.offsets = [];
      this.unwrapped += step;
    }
    this.last = t;
    const offset = arrivalMs - this.unwrapped;
    while (this.offsets.length && this.offsets[this.offsets.length - 1][1] >= offset) this.offsets.pop();
    this.offsets.push([arrivalMs, offset]);
    while (this.offsets[0][0] < arrivalMs - this.windowMs) this.offsets.shift();
    return this.unwrapped + this.offsets[0][1];
  }
}

/** How long (ms) the voice of a tile waits between arrival and playout, from getStats. */
export class AudioPlayoutDelay {
  constructor() {
    this.ms = 0;
    this.jitterMs = 0; // in the jitter buffer
    this.playoutMs = 0; // from the jitter buffer to the audio device (media-playout stats)
    this.previous = null;
  }

  /** One inbound-rtp audio stat (and the media-playout stat it names, if any). */
  update(inbound, playout = null) {
    const now = {
      delay: inbound.jitterBufferDelay || 0,
      emitted: inbound.jitterBufferEmittedCount || 0,
      playoutDelay: playout ? playout.totalPlayoutDelay || 0 : 0,
      playoutSamples: playout ? playout.totalSamplesCount || 0 : 0,
    };
    const before = this.previous;
    this.previous = now;
    if (!before || now.emitted <= before.emitted) return this.ms;
    this.jitterMs = ((now.delay - before.delay) / (now.emitted - before.emitted)) * 1000;
    if (now.playoutSamples > before.playoutSamples) {
      this.playoutMs = ((now.playoutDelay - before.playoutDelay) / (now.playoutSamples - before.playoutSamples)) * 1000;
    }
    this.ms = Math.min(Math.max(this.jitterMs + this.playoutMs, 0), MAX_DELAY_MS);
    return this.ms;
  }
}

/** Per tile: when each frame is due, and the queue of frames not due yet. */
export class PlayoutSync {
  /** `audioDelayMs()`: the tile's voice's wait now (fallback); `audioClock()`: the tile's
   * ReceiverAudioClock or null; `enabled: false` draws at arrival. */
  constructor({ audioDelayMs = () => 0, audioClock = () => null, enabled = true } = {}) {
    this.audioDelayMs = audioDelayMs;
    this.audioClock = audioClock;
    this.enabled = enabled;
    this.mapping = new ArrivalMapping();
    this.queue = []; // {dueMs, item}, dueMs non-decreasing
    this.lateness = []; // arrival − due (ms) of recent frames: > 0, drawn after their sound
    this.placed = { voiceClock: 0, arrival: 0 };
  }

  /** A frame arrived now (`nowMs`); `timestampMs` is its sender time, or null (no time). */
  push(item, timestampMs, nowMs) {
    if (!this.enabled) {
      this.queue.push({ dueMs: nowMs, item });
      return;
    }
    let due = null;
    if (timestampMs !== null && timestampMs !== undefined) {
      const clock = this.audioClock();
      const heard = clock ? clock.playoutAtMs(timestampMs, nowMs) : null;
      if (heard !== null && Math.abs(heard - nowMs) < PLAUSIBLE_MS) {
        due = heard;
        this.placed.voiceClock += 1;
        this.lateness.push(nowMs - heard);
        if (this.lateness.length > LATENESS_FRAMES) this.lateness.shift();
      }
    }
    if (due === null) {
      const arrival = timestampMs === null || timestampMs === undefined
        ? nowMs : this.mapping.add(timestampMs, nowMs);
      due = arrival + this.audioDelayMs();
      this.placed.arrival += 1;
    }
    const last = this.queue.length ? this.queue[this.queue.length - 1].dueMs : -Infinity;
    this.queue.push({ dueMs: Math.max(due, last), item });
  }

  /** Quantile `q` of the recent frames' lateness (ms), NaN without voice-clock frames. */
  lateMs(q = 0.8) {
    if (!this.lateness.length) return NaN;
    const sorted = [...this.lateness].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  /** Frames due by `nowMs`, oldest first (removed from the queue). */
  due(nowMs) {
    let n = 0;
    while (n < this.queue.length && this.queue[n].dueMs <= nowMs) n += 1;
    return this.queue.splice(0, n).map((entry) => entry.item);
  }
}
