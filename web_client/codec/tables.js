// Probability tables of the motion residuals and the context that picks one
// (docs/protocol.md §4), port of lpstream/protocol/probability_tables.py.
//
// Tables are rebuilt here rather than shipped: the Python side restricts itself to IEEE-754
// + - * / and sqrt (correctly rounded everywhere) and sequential sums, and so does this file;
// tests/test_codec_cross_runtime.py compares every table with Python's.

import { FrequencyTable } from "./arith.js";

export const TABLE_TOTAL_BITS = 16;
const ESCAPE_FREQ = 2;
const LEVEL_RATIO = Math.sqrt(2.0);
const LEVEL_MIN = 0.01;
const LEVEL_MAX = 4000.0;

function levelThresholds() {
  const thresholds = [];
  let value = LEVEL_MIN;
  while (value < LEVEL_MAX) {
    thresholds.push(value);
    value *= LEVEL_RATIO;
  }
  return thresholds;
}

/** Expected |residual| → table level: level i covers [THRESHOLDS[i], THRESHOLDS[i+1]). */
export const THRESHOLDS = levelThresholds();

export function levelOf(meanAbs) {
  // max(0, bisect_right(THRESHOLDS, meanAbs) - 1)
  let lo = 0;
  let hi = THRESHOLDS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (meanAbs < THRESHOLDS[mid]) hi = mid;
    else lo = mid + 1;
  }
  return Math.max(0, lo - 1);
}

export function levelCentre(level) {
  return THRESHOLDS[level] * Math.sqrt(LEVEL_RATIO);
}

/** P(|k| = j), j = 0..width, of a two-sided geometric residual with E|k| = meanAbs. */
export function geometricMagnitudes(meanAbs, width) {
  const m = meanAbs;
  const a = (Math.sqrt(1.0 + m * m) - 1.0) / m;
  const weights = [1.0];
  let w = 1.0;
  for (let i = 0; i < width; i++) {
    w *= a;
    weights.push(2.0 * w);
  }
  let total = 0; // sequential, as CPython 3.11's sum()
  for (const x of weights) total += x;
  return weights.map((x) => x / total);
}

export function magnitudeWidth(level) {
  return Math.min(1024, Math.trunc(6.0 * levelCentre(level)) + 8);
}

/** |k| in 0..width with a frequency table, width+1 escapes to a uniform raw magnitude;
 * a uniform sign bit follows every non-zero k. */
export class MagnitudeTable {
  constructor(table, width) {
    this.table = table;
    this.width = width;
  }

  static fromProbabilities(probabilities) {
    const budget = (1 << TABLE_TOTAL_BITS) - ESCAPE_FREQ;
    const freqs = probabilities.map((p) => Math.max(1, Math.trunc(budget * p)));
    freqs.push(ESCAPE_FREQ);
    return new MagnitudeTable(FrequencyTable.fromFrequencies(freqs), probabilities.length - 1);
  }

  encode(coder, k, bound) {
    const magnitude = k < 0 ? -k : k;
    if (magnitude <= this.width) {
      coder.encode(this.table, magnitude);
    } else {
      coder.encode(this.table, this.width + 1);
      coder.encodeUniform(magnitude - this.width - 1, bound);
    }
    if (magnitude) coder.encodeUniform(k < 0 ? 1 : 0, 2);
  }

  decode(coder, bound) {
    let magnitude = coder.decode(this.table);
    if (magnitude > this.width) magnitude = this.width + 1 + coder.decodeUniform(bound);
    if (magnitude && coder.decodeUniform(2)) return -magnitude;
    return magnitude;
  }
}

function geometricTable(level) {
  return MagnitudeTable.fromProbabilities(
    geometricMagnitudes(levelCentre(level), magnitudeWidth(level)),
  );
}

function trainedTable(level, statistics) {
  const width = magnitudeWidth(level);
  const shape = geometricMagnitudes(levelCentre(level), width);
  const trained = statistics.deltaMagnitudeCounts;
  const counts = level < trained.length ? trained[level] : [];
  let n = 0;
  for (const c of counts) n += c;
  if (n === 0) return MagnitudeTable.fromProbabilities(shape);
  const weight = n / (n + 400.0);
  const probabilities = [];
  for (let j = 0; j <= width; j++) {
    probabilities.push(weight * (j < counts.length ? counts[j] / n : 0.0) + (1.0 - weight) * shape[j]);
  }
  return MagnitudeTable.fromProbabilities(probabilities);
}

/** Keyframe and timestamp residuals: geometric shape only, the same for every profile. */
export const KEY_TABLES = THRESHOLDS.map((_, level) => geometricTable(level));

/** The delta tables of one profile's trained statistics. */
export function buildDeltaTables(statistics) {
  return THRESHOLDS.map((_, level) => trainedTable(level, statistics));
}

export function gapScale(statistics, gap) {
  const factors = statistics.gapFactor;
  return factors[Math.min(gap, factors.length - 1)];
}

/** Expected |residual| of each field of a delta frame, from acknowledged state only. */
export class DeltaContext {
  constructor(gap, refResiduals, refGap, statistics) {
    this.statistics = statistics;
    this.gapScale = gapScale(statistics, gap);
    this.refResiduals = refResiduals;
    this.speedRatio = refGap ? gap / refGap : 0.0;
    this.codedAbs = 5.0;
    this.expectedAbs = 5.0;
    this.lastBase = 0.0;
  }

  expected(field) {
    let base = this.statistics.meanAbs[field] * this.gapScale;
    if (this.refResiduals !== null) {
      const typical = this.statistics.meanSpeed[field];
      const speed = Math.abs(this.refResiduals[field]) * this.speedRatio;
      base *= Math.sqrt((speed + typical) / (2.0 * typical));
    }
    this.lastBase = base;
    return (base * this.codedAbs) / this.expectedAbs;
  }

  update(residual) {
    this.codedAbs += Math.abs(residual);
    this.expectedAbs += this.lastBase;
  }
}
