// What a tile shows when its sender's face is gone: the portrait's rest pose, eased in over
// 250 ms instead of a frozen mid-word frame, and — if the viewer wants it — a mouth that opens
// with the sender's voice. The same code as lpstream/node/neutral_pose.py (which documents it),
// constant for constant: tests/test_neutral_pose.py runs both on one script of events.
//
//   const neutral = new NeutralPose();
//   neutral.onMotion(motion, nowS); neutral.onNoFace(nowS); neutral.resetReference();
//   const pose = neutral.pose(nowS, controls, levelDbov);  // {motion, controls, neutral, voice}

export const EASE_S = 0.25;
export const SILENCE_S = 1.0;
export const TICK_S = 0.04;
export const VOICE_SILENT_DBOV = 50.0;
export const VOICE_LOUD_DBOV = 20.0;
export const VOICE_LIP_MAX = 0.35;
export const VOICE_ATTACK_S = 0.03;
export const VOICE_RELEASE_S = 0.08;
export const VOICED_FRACTION = 0.05;
export const LABEL_HOLD_S = 1.0;

/** How far a voice at `levelDbov` (0 loudest … 127 silent) opens the mouth, 0 … 1. */
export function voiceFraction(levelDbov) {
  if (levelDbov === null || levelDbov === undefined) return 0;
  const span = VOICE_SILENT_DBOV - VOICE_LOUD_DBOV;
  return Math.min(Math.max((VOICE_SILENT_DBOV - levelDbov) / span, 0), 1);
}

/** The RFC 6464 level (−dBov, 0 … 127) of a signal whose RMS is `rms` of full scale. */
export function dbovOfRms(rms) {
  if (rms <= 0) return 127;
  return Math.min(Math.max(-20 * Math.log10(rms), 0), 127);
}

function shortWay(a, b) {
  const d = (b - a + 180) % 360;
  return (d < 0 ? d + 360 : d) - 180; // Python's % is never negative
}

/** `live` moved `weight` (0 … 1) of the way to `rest`, field by field. */
export function blendMotion(live, rest, weight) {
  if (weight <= 0) return live;
  if (weight >= 1) return rest;
  const mix = (a, b) => a + weight * (b - a);
  const arrays = (a, b) => Float64Array.from(a, (v, i) => v + weight * (b[i] - v));
  const hasEye = live.eyeRatio != null && rest.eyeRatio != null;
  const hasLip = live.lipRatio != null && rest.lipRatio != null;
  return {
    pitch: live.pitch + weight * shortWay(live.pitch, rest.pitch),
    yaw: live.yaw + weight * shortWay(live.yaw, rest.yaw),
    roll: live.roll + weight * shortWay(live.roll, rest.roll),
    t: arrays(live.t, rest.t),
    scale: mix(live.scale, rest.scale),
    exp: arrays(live.exp, rest.exp),
    eyeRatio: hasEye ? arrays(live.eyeRatio, rest.eyeRatio) : null,
    lipRatio: hasLip ? mix(live.lipRatio, rest.lipRatio) : null,
  };
}

function copyMotion(m) {
  return {
    pitch: m.pitch, yaw: m.yaw, roll: m.roll, scale: m.scale,
    t: Float64Array.from(m.t), exp: Float64Array.from(m.exp),
    eyeRatio: m.eyeRatio == null ? null : Float64Array.from(m.eyeRatio),
    lipRatio: m.lipRatio ?? null,
  };
}

export function smoothstep(x) {
  return x * x * (3 - 2 * x);
}

/** Voice level → mouth opening (0 … 1), smoothed with a fast attack and a slower release. */
export class VoiceMouth {
  constructor() {
    this.opening = 0;
    this.voicedAt = null;
    this._at = null;
  }

  update(now, levelDbov) {
    const target = voiceFraction(levelDbov);
    const dt = this._at === null ? 0 : Math.min(Math.max(now - this._at, 0), 1);
    this._at = now;
    const tau = target > this.opening ? VOICE_ATTACK_S : VOICE_RELEASE_S;
    this.opening += (target - this.opening) * (1 - Math.exp(-dt / tau));
    if (this.opening < 1e-3 && target === 0) this.opening = 0;
    if (target > VOICED_FRACTION) this.voicedAt = now;
    return this.opening;
  }

  voiced(now) {
    return this.voicedAt !== null && now - this.voicedAt < LABEL_HOLD_S;
  }
}

/** One tile's choice between the live motion and the rest pose, over time (seconds). */
export class NeutralPose {
  constructor({ easeS = EASE_S, silenceS = SILENCE_S } = {}) {
    this.easeS = easeS;
    this.silenceS = silenceS;
    this.live = null;
    this.rest = null;
    this._faceAt = null;
    this._weight = 0;
    this._at = null;
    this.voice = new VoiceMouth();
  }

  onMotion(motion, now) {
    this.live = motion;
    this._faceAt = now;
  }

  onNoFace() {
    this._faceAt = null;
  }

  /** The renderer takes its next motion as the reference: so does the rest pose. */
  resetReference() {
    this.rest = null;
  }

  facePresent(now) {
    return this._faceAt !== null && now - this._faceAt < this.silenceS;
  }

  /** The motion and controls ({eyeOpen, lipOpen, headMotion, stitching, voiceMouth}) to
   * render at `now`, or null before any motion. */
  pose(now, controls, levelDbov) {
    const live = this.live;
    if (live === null) return null;
    if (this.rest === null) this.rest = copyMotion(live);
    const target = this.facePresent(now) ? 0 : 1;
    const dt = this._at === null ? 0 : Math.min(Math.max(now - this._at, 0), this.easeS);
    this._at = now;
    const step = this.easeS > 0 ? dt / this.easeS : 1;
    this._weight = target > this._weight
      ? Math.min(this._weight + step, target) : Math.max(this._weight - step, target);
    const weight = smoothstep(this._weight);
    const motion = blendMotion(live, this.rest, weight);
    const voiceOn = Boolean(controls.voiceMouth);
    const opening = this.voice.update(now, voiceOn ? levelDbov : null);
    const voice = voiceOn && weight > 0 && this.voice.voiced(now);
    let out = controls;
    if (voiceOn && weight > 0 && opening > 0) {
      let lip = weight * opening * VOICE_LIP_MAX;
      if (controls.lipOpen != null) lip = Math.max(lip, controls.lipOpen);
      out = { ...controls, lipOpen: lip };
    }
    return { motion, controls: out, neutral: weight, voice };
  }

  /** Seconds until the pose may change with no new input, or null. */
  nextTick(now, controls) {
    if (this.live === null) return null;
    const present = this.facePresent(now);
    if ((present && this._weight > 0) || (!present && this._weight < 1)) return TICK_S;
    if (!present && controls.voiceMouth) return TICK_S;
    if (present) return Math.max(this._faceAt + this.silenceS - now, 0) + 1e-3;
    return null;
  }
}
