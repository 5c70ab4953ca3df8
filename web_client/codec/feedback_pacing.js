// How often a receiver sends feedback: every FEEDBACK_EVERY_PACKETS-th packet, a keyframe
// request and the first acknowledgement at once (lpstream/protocol/feedback_pacing.py).

export const FEEDBACK_EVERY_PACKETS = 8;

export class FeedbackPacer {
  /** Ask poll() after each packet given to `decoder`; it returns feedback bytes when due. */
  constructor(decoder, every = FEEDBACK_EVERY_PACKETS) {
    if (every < 1) throw new RangeError("feedback pacing needs every >= 1");
    this.decoder = decoder;
    this.every = every;
    this.since = 0;
    this.acknowledged = false;
  }

  poll() {
    this.since += 1;
    const due = this.since >= this.every || !this.acknowledged;
    if (!due && !this.decoder.keyframeNeeded) return null;
    const packet = this.decoder.feedback();
    if (packet !== null) {
      this.since = 0;
      this.acknowledged = true;
    }
    return packet;
  }
}
