// The per-frame motion (lpstream/motion.py's Motion), as plain objects:
//
//   {
//     pitch, yaw, roll: number,          // head angles in degrees (LivePortrait convention)
//     t: Float64Array(3),                // translation; t[2] is not sent (decodes as 0)
//     scale: number,                     // keypoint scale
//     exp: Float64Array(63),             // expression deltas, row-major 21×3
//     eyeRatio: Float64Array(2) | null,  // optional eye-open ratios (left, right)
//     lipRatio: number | null,           // optional lip-open ratio
//   }
//
// Python stores t, exp and eye_ratio as float32 and the angles, scale and lip ratio as
// float64. The encoder rounds t, exp and eyeRatio through float32 (Math.fround) before
// quantising, and decoded t, exp and eyeRatio are float32 values, so both runtimes see the
// same numbers. Units and wire ranges: docs/protocol.md §2.

export const NUM_KEYPOINTS = 21;
export const NUM_EXP = NUM_KEYPOINTS * 3;

/** A motion from loose values (arrays, nested 21×3 arrays), with missing optionals null. */
export function makeMotion({ pitch, yaw, roll, t, scale, exp, eyeRatio = null, lipRatio = null }) {
  const flatExp = Float64Array.from(Array.isArray(exp) && Array.isArray(exp[0]) ? exp.flat() : exp);
  if (flatExp.length !== NUM_EXP) throw new RangeError(`exp must have ${NUM_EXP} values`);
  const vector = Float64Array.from(t);
  if (vector.length !== 3) throw new RangeError("t must have 3 values");
  const eye = eyeRatio === null || eyeRatio === undefined ? null : Float64Array.from(eyeRatio);
  if (eye !== null && eye.length !== 2) throw new RangeError("eyeRatio must have 2 values");
  return {
    pitch: Number(pitch),
    yaw: Number(yaw),
    roll: Number(roll),
    t: vector,
    scale: Number(scale),
    exp: flatExp,
    eyeRatio: eye,
    lipRatio: lipRatio === null || lipRatio === undefined ? null : Number(lipRatio),
  };
}

export function copyMotion(m) {
  return {
    pitch: m.pitch,
    yaw: m.yaw,
    roll: m.roll,
    t: Float64Array.from(m.t),
    scale: m.scale,
    exp: Float64Array.from(m.exp),
    eyeRatio: m.eyeRatio === null ? null : Float64Array.from(m.eyeRatio),
    lipRatio: m.lipRatio,
  };
}
