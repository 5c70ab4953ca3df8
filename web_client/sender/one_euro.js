// One-Euro filter (Casiez, Roussel & Vogel, CHI 2012), as lpstream/face/smoothing.py: a
// causal low-pass whose cutoff rises with the signal's smoothed speed.

function alpha(cutoffHz, dt) {
  const tau = 1.0 / (2.0 * Math.PI * cutoffHz);
  return 1.0 / (1.0 + tau / dt);
}

/** Element-wise One-Euro filter over a fixed-length vector (Float64Array state). */
export class OneEuroFilter {
  constructor(initial, minCutoffHz = 1.0, beta = 0.0, derivativeCutoffHz = 1.0) {
    if (!(minCutoffHz > 0) || !(derivativeCutoffHz > 0) || !(beta >= 0)) {
      throw new RangeError('One-Euro cutoffs must be positive and beta non-negative');
    }
    this.minCutoffHz = minCutoffHz;
    this.beta = beta;
    this.derivativeCutoffHz = derivativeCutoffHz;
    this.value = Float64Array.from(initial);
    this.derivative = new Float64Array(this.value.length);
  }

  /** Filter one sample taken `dt` seconds after the previous one; returns a new array. */
  step(sample, dt) {
    if (!(dt > 0)) throw new RangeError(`dt must be positive, got ${dt}`);
    const aD = alpha(this.derivativeCutoffHz, dt);
    const out = new Float64Array(this.value.length);
    for (let i = 0; i < this.value.length; i++) {
      const raw = (sample[i] - this.value[i]) / dt;
      this.derivative[i] += aD * (raw - this.derivative[i]);
      const cutoff = this.minCutoffHz + this.beta * Math.abs(this.derivative[i]);
      const tau = 1.0 / (2.0 * Math.PI * cutoff);
      const a = 1.0 / (1.0 + tau / dt);
      this.value[i] += a * (sample[i] - this.value[i]);
      out[i] = this.value[i];
    }
    return out;
  }
}
