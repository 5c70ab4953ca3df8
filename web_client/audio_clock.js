// The voice clock: a speaker's microphone RTP timestamps (48 kHz), read where the page can
// see them, so that motion and sound share one clock end to end (docs/architecture.md,
// "Lip sync").
//
// - Sending (`SenderAudioClock`): an RTCRtpScriptTransform on the microphone's sender sees
//   every encoded frame with its RTP timestamp and capture time. A keypoint uplink stamps
//   each camera frame with the voice-clock time of its capture (`voiceMsAt`), so a motion
//   frame and the sound said at that moment carry the same time.
// - Receiving (`ReceiverAudioClock`): the node forwards each voice with the speaker's own RTP
//   timestamps (lpstream/node/rtp_origin.py); getSynchronizationSources() says which RTP time
//   left this page's jitter buffer when. A motion frame is due when its time is heard
//   (`playoutAtMs`), whatever the trips of the two paths were.

const RTP_MODULO = 2 ** 32;
const TICKS_PER_MS = 48; // Opus RTP runs at 48 kHz
/** The RTP clock in ms wraps after this long (2³² ticks). */
export const RTP_PERIOD_MS = RTP_MODULO / TICKS_PER_MS;
/** The fit is the median offset over this long (jitter of a few ms per reading). */
export const FIT_WINDOW_MS = 2000;
/** A fit without a reading for this long says nothing about the voice now. */
export const STALE_MS = 5000;
/** An RTP step larger than this (in ms) is a new stream (a restarted microphone). */
export const RESTART_MS = 60000;
/** Encoded frames whose level the sender keeps (a minute at 20 ms). */
export const LEVELS_KEPT = 3000;

/** Readings (page ms, RTP timestamp) → offset page ms − voice ms, with RTP unwrapped. */
export class RtpClockFit {
  constructor(windowMs = FIT_WINDOW_MS) {
    this.windowMs = windowMs;
    this.last = null;
    this.unwrapped = 0;
    this.readings = []; // [pageMs, offsetMs], oldest first
    this.latestMs = -Infinity;
  }

  add(pageMs, rtpTimestamp) {
    const t = ((rtpTimestamp % RTP_MODULO) + RTP_MODULO) % RTP_MODULO;
    if (this.last === null) {
      this.unwrapped = t;
    } else {
      let step = (t - this.last + RTP_MODULO / 2) % RTP_MODULO;
      if (step < 0) step += RTP_MODULO;
      step -= RTP_MODULO / 2;
      if (Math.abs(step) > RESTART_MS * TICKS_PER_MS) this.readings = [];
      this.unwrapped += step;
    }
    this.last = t;
    this.latestMs = pageMs;
    this.readings.push([pageMs, pageMs - this.unwrapped / TICKS_PER_MS]);
    while (this.readings.length > 1 && this.readings[0][0] < pageMs - this.windowMs) this.readings.shift();
  }

  fresh(nowMs) {
    return this.readings.length > 0 && nowMs - this.latestMs < STALE_MS;
  }

  /** Page ms − voice ms (median of the window), or null before any reading. */
  offsetMs() {
    if (!this.readings.length) return null;
    const sorted = this.readings.map((r) => r[1]).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}

/** The page's own microphone: voice-clock time of a page time. Attach before negotiation
 * (Chromium takes a sender's transform only before its first frame). */
export class SenderAudioClock {
  constructor() {
    this.fit = new RtpClockFit();
    this.worker = null;
    /** [wall ms of capture, audio level 0…1] of the newest encoded frames. */
    this.levels = [];
  }

  /** Watch `sender`'s encoded frames; false if this browser cannot (then motion is stamped
   * with page time and receivers fall back to arrival times). */
  attach(sender) {
    if (typeof RTCRtpScriptTransform === "undefined" || !sender) return false;
    this.close(); // a restarted call: a new sender, a new RTP clock
    this.fit = new RtpClockFit();
    const code = `onrtctransform = (event) => {
      const { readable, writable } = event.transformer;
      const reader = readable.getReader();
      const writer = writable.getWriter();
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          const meta = value.getMetadata();
          if (meta.rtpTimestamp !== undefined) {
            const at = meta.captureTime !== undefined ? meta.captureTime : performance.now();
            postMessage([performance.timeOrigin + at, meta.rtpTimestamp, meta.audioLevel]);
          }
          await writer.write(value);
        }
      })();
    };`;
    // The Blob URL stays valid for the worker's life (a revoked one breaks a restart).
    this.worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
    this.worker.onmessage = (event) => {
      const [wallMs, rtp, level] = event.data;
      this.fit.add(wallMs - performance.timeOrigin, rtp);
      this.levels.push([wallMs, level]);
      if (this.levels.length > LEVELS_KEPT) this.levels.shift();
    };
    sender.transform = new RTCRtpScriptTransform(this.worker, {});
    return true;
  }

  /** Voice-clock ms (unwrapped RTP / 48) at page time `pageMs`, or null if not known now. */
  voiceMsAt(pageMs) {
    if (!this.fit.fresh(performance.now())) return null;
    return pageMs - this.fit.offsetMs();
  }

  close() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
  }
}

/** A tile's voice as this page plays it: when a voice-clock time is (or was) heard. */
export class ReceiverAudioClock {
  constructor() {
    this.fit = new RtpClockFit();
    this.lastReading = null;
    this.outputMs = 0; // jitter buffer → loudspeaker (media-playout stats), set by the owner
  }

  /** One getSynchronizationSources() entry: RTP time `rtpTimestamp` left the jitter buffer
   * at wall time `timestamp` (Chromium: ms since the epoch, as Date.now()). */
  read(source) {
    if (!source || source.rtpTimestamp === undefined || !source.timestamp) return;
    const key = `${source.timestamp} ${source.rtpTimestamp}`;
    if (key === this.lastReading) return; // nothing played since (DTX, silence)
    this.lastReading = key;
    this.fit.add(source.timestamp - performance.timeOrigin, source.rtpTimestamp);
  }

  /** Page time at which voice time `stampMs` (ms, mod 2³²) is heard, or null if unknown. */
  playoutAtMs(stampMs, nowMs) {
    if (!this.fit.fresh(nowMs)) return null;
    return heardAtMs(stampMs, this.fit.offsetMs(), nowMs) + this.outputMs;
  }
}

/** The page time of voice time `stampMs` given the fit's `offsetMs`, taking the voice
 * time nearest to the one playing at `nowMs` (a stamp is ms mod 2³², the RTP clock wraps
 * every RTP_PERIOD_MS: sender and receiver may have unwrapped from different cycles). */
export function heardAtMs(stampMs, offsetMs, nowMs) {
  const playing = nowMs - offsetMs;
  let ahead = (stampMs - playing) % RTP_PERIOD_MS;
  if (ahead > RTP_PERIOD_MS / 2) ahead -= RTP_PERIOD_MS;
  if (ahead < -RTP_PERIOD_MS / 2) ahead += RTP_PERIOD_MS;
  return nowMs + ahead;
}
