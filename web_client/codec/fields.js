// Motion fields on the wire: order, base units, clamp ranges, quantisers
// (docs/protocol.md §2), port of lpstream/protocol/motion_fields.py.

import { ProtocolError } from "./errors.js";
import { EXP0, EYE0, FIELD_RANGES, LIP, NUM_FIELDS } from "./generated_profiles.js";
import { floorDiv, roundHalfEven } from "./wire.js";

export { EXP0, EYE0, LIP, NUM_FIELDS };
export const UNIT = 1e-5;
export const ANGLE_UNIT = 1e-3;
export const SCALE = 0;
export const PITCH = 1;
export const YAW = 2;
export const ROLL = 3;
export const TX = 4;
export const TY = 5;
export const NUM_CORE = EYE0;

export function clamp(value, field) {
  const [lo, hi] = FIELD_RANGES[field];
  return value < lo ? lo : value > hi ? hi : value;
}

export function maxResidual(field, step) {
  const [lo, hi] = FIELD_RANGES[field];
  return floorDiv(hi - lo, step) + 1;
}

/** round((value - prediction) / step), ties away from zero, on integers. */
export function quantiseResidual(value, prediction, step) {
  const diff = value - prediction;
  if (diff >= 0) return floorDiv(2 * diff + step, 2 * step);
  return -floorDiv(-2 * diff + step, 2 * step);
}

/** The coded field indices of a motion with these optional fields. */
export function codedFields(hasEye, hasLip) {
  const fields = [];
  for (let i = 0; i < NUM_CORE; i++) fields.push(i);
  if (hasEye) fields.push(EYE0, EYE0 + 1);
  if (hasLip) fields.push(LIP);
  return fields;
}

function toUnits(value, unit, field, name) {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ProtocolError(`motion field ${name} is not finite (${value}); cannot encode it`);
  }
  const [lo, hi] = FIELD_RANGES[field];
  let scaled = value / unit;
  scaled = scaled < lo ? lo : scaled > hi ? hi : scaled;
  return clamp(roundHalfEven(scaled), field);
}

/** {values: number[NUM_FIELDS], hasEye, hasLip}: clamped base units. ProtocolError on NaN/inf. */
export function motionToUnits(motion) {
  const values = new Array(NUM_FIELDS).fill(0);
  values[SCALE] = toUnits(motion.scale, UNIT, SCALE, "scale");
  values[PITCH] = toUnits(motion.pitch, ANGLE_UNIT, PITCH, "pitch");
  values[YAW] = toUnits(motion.yaw, ANGLE_UNIT, YAW, "yaw");
  values[ROLL] = toUnits(motion.roll, ANGLE_UNIT, ROLL, "roll");
  values[TX] = toUnits(Math.fround(motion.t[0]), UNIT, TX, "t[0]");
  values[TY] = toUnits(Math.fround(motion.t[1]), UNIT, TY, "t[1]");
  for (let i = 0; i < EYE0 - EXP0; i++) {
    const name = `exp[${Math.floor(i / 3)},${i % 3}]`;
    values[EXP0 + i] = toUnits(Math.fround(motion.exp[i]), UNIT, EXP0 + i, name);
  }
  const hasEye = motion.eyeRatio !== null && motion.eyeRatio !== undefined;
  if (hasEye) {
    values[EYE0] = toUnits(Math.fround(motion.eyeRatio[0]), UNIT, EYE0, "eye_ratio[0]");
    values[EYE0 + 1] = toUnits(Math.fround(motion.eyeRatio[1]), UNIT, EYE0 + 1, "eye_ratio[1]");
  }
  const hasLip = motion.lipRatio !== null && motion.lipRatio !== undefined;
  if (hasLip) values[LIP] = toUnits(motion.lipRatio, UNIT, LIP, "lip_ratio");
  return { values, hasEye, hasLip };
}

/** Base units → motion (t, exp and eyeRatio rounded to float32, as Python's Motion stores them). */
export function unitsToMotion({ values: v, hasEye, hasLip }) {
  const exp = new Float64Array(EYE0 - EXP0);
  for (let i = 0; i < exp.length; i++) exp[i] = Math.fround(v[EXP0 + i] * UNIT);
  return {
    pitch: v[PITCH] * ANGLE_UNIT,
    yaw: v[YAW] * ANGLE_UNIT,
    roll: v[ROLL] * ANGLE_UNIT,
    t: Float64Array.of(Math.fround(v[TX] * UNIT), Math.fround(v[TY] * UNIT), 0),
    scale: v[SCALE] * UNIT,
    exp,
    eyeRatio: hasEye
      ? Float64Array.of(Math.fround(v[EYE0] * UNIT), Math.fround(v[EYE0 + 1] * UNIT))
      : null,
    lipRatio: hasLip ? v[LIP] * UNIT : null,
  };
}
