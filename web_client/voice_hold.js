// Holding a voice back when its motion comes later than its sound (docs/architecture.md,
// "Lip sync"). A keypoint tile draws each motion frame when the voice of the same time plays
// (playout_sync.js); a frame that arrives after that moment can only be drawn late. The
// motion's trip (landmarks on the sender, a data channel) is often longer than the voice's
// (Opus packets, jitter buffer), so the voice waits longer: the receiver's
// `jitterBufferTarget` (ms, Chromium) asks its jitter buffer to hold that much.

/** Frames later than this (p80, ms) make the voice wait longer. */
export const TOLERANCE_MS = 10;
/** Frames earlier than this (p80) let the voice wait less again. */
export const EARLY_SLACK_MS = 60;
/** Share of the lateness asked for at once (the rest after the next reading). */
export const GAIN = 0.7;
export const MAX_STEP_MS = 40;
export const STEP_DOWN_MS = 10;
/** Never hold a voice longer than this (a stuck sender must not make a call deaf). */
export const MAX_HOLD_MS = 400;

export class VoiceHold {
  constructor() {
    this.targetMs = 0;
  }

  /** `lateMs`: p80 of (drawn − due) of recent frames (positive: the frames came too late);
   * `jitterMs`: what the jitter buffer holds now. Returns the new target (ms). */
  update(lateMs, jitterMs) {
    if (!Number.isFinite(lateMs)) return this.targetMs;
    const pending = Math.max(0, this.targetMs - (jitterMs || 0)); // asked, not yet held
    if (lateMs > TOLERANCE_MS) {
      const step = Math.min(MAX_STEP_MS, Math.max(0, GAIN * lateMs - pending));
      this.targetMs = Math.max(this.targetMs, jitterMs || 0) + step;
    } else if (lateMs < -EARLY_SLACK_MS) {
      this.targetMs = Math.max(0, this.targetMs - STEP_DOWN_MS);
    }
    this.targetMs = Math.min(this.targetMs, MAX_HOLD_MS);
    return this.targetMs;
  }
}
