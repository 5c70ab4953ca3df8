// Landmarks -> the built-in backend's motion: a port of lpstream/meshwarp/face_motion.py and
// pose.py, plus the eye/lip ratios of lpstream/face/ratios.py. No browser API: runs in Node.
//
// Points are MediaPipe's 478 landmarks in image pixels, flat row-major (x, y, z) — as
// lpstream.face's FaceLandmarks.points (z in pixel scale, negative towards the camera).

import {
  CONTROL_POINTS, EXP_LIMIT, GAZE, MODEL_VERTICES, NUM_LANDMARKS, RATIO_POINTS, RIGID_IDS,
  RIGID_WEIGHTS, SCALE_RANGE, TRANSLATION_LIMIT,
} from './face_data.js';

export const NUM_KEYPOINTS = 21;
const DEGREES = 180.0 / Math.PI;
const EPS = 1e-6;

const clip = (value, low, high) => Math.min(high, Math.max(low, value));

/**
 * A motion as lpstream.motion.Motion. t, exp and eyeRatio hold float32-rounded values, as the
 * Python dataclass stores them, so both runtimes hand the codec the same numbers.
 * @typedef {{pitch: number, yaw: number, roll: number, t: Float64Array, scale: number,
 *   exp: Float64Array, eyeRatio: Float64Array|null, lipRatio: number|null}} Motion
 */

/** Motion with float32 storage of its vectors (lpstream.motion.Motion.__post_init__). */
export function makeMotion({ pitch, yaw, roll, t, scale, exp, eyeRatio = null, lipRatio = null }) {
  const f32 = (values) => Float64Array.from(values, Math.fround);
  return {
    pitch: +pitch, yaw: +yaw, roll: +roll, t: f32(t), scale: +scale, exp: f32(exp),
    eyeRatio: eyeRatio == null ? null : f32(eyeRatio), lipRatio: lipRatio == null ? null : +lipRatio,
  };
}

export function copyMotion(motion) {
  return {
    ...motion, t: motion.t.slice(), exp: motion.exp.slice(),
    eyeRatio: motion.eyeRatio == null ? null : motion.eyeRatio.slice(),
  };
}

function checkPoints(points) {
  if (!points || points.length !== NUM_LANDMARKS * 3) {
    throw new RangeError(`expected 478×3 MediaPipe landmarks (flat), got length ${points?.length}`);
  }
}

function distance(points, [a, b]) {
  return Math.hypot(points[3 * a] - points[3 * b], points[3 * a + 1] - points[3 * b + 1]);
}

/** [left, right] eyelid distance / eye-corner distance (lpstream.face.ratios). */
export function eyeOpenRatio(points) {
  checkPoints(points);
  const p = RATIO_POINTS;
  return Float64Array.of(
    distance(points, p.leftEyeLids) / Math.max(distance(points, p.leftEyeCorners), EPS),
    distance(points, p.rightEyeLids) / Math.max(distance(points, p.rightEyeCorners), EPS),
  );
}

/** Inner-lip distance / mouth-corner distance (lpstream.face.ratios). */
export function lipOpenRatio(points) {
  checkPoints(points);
  const p = RATIO_POINTS;
  return distance(points, p.innerLips) / Math.max(distance(points, p.mouthCorners), EPS);
}

// Largest-eigenvalue eigenvector of a symmetric 4×4 matrix (cyclic Jacobi, to round-off).
function dominantEigenvector4(m) {
  const a = m.map((row) => row.slice());
  const v = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < 4; i++) {
      diag += a[i][i] * a[i][i];
      for (let j = i + 1; j < 4; j++) off += a[i][j] * a[i][j];
    }
    if (off <= 1e-32 * diag) break;
    for (let p = 0; p < 3; p++) {
      for (let q = p + 1; q < 4; q++) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < 4; k++) {
          const akp = a[k][p];
          const akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < 4; k++) {
          const apk = a[p][k];
          const aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < 4; k++) {
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  let best = 0;
  for (let i = 1; i < 4; i++) if (a[i][i] > a[best][best]) best = i;
  return [v[0][best], v[1][best], v[2][best], v[3][best]];
}

/**
 * Weighted least-squares similarity `observed ≈ scale · R · model + t` (lpstream pose.py's
 * Umeyama fit). The rotation maximising tr(Rᵀ C) over proper rotations is found with Horn's
 * quaternion method (the same optimum as SVD with the reflection correction; no 3×3 SVD in
 * JS), and the scale is tr(Rᵀ C) / model variance, which equals Σ singular · correction.
 * model, observed: flat (n, 3); weights: (n,).
 * @returns {{scale: number, rotation: Float64Array, translation: Float64Array}} rotation
 *   row-major 3×3.
 */
export function fitSimilarity(model, observed, weights) {
  const n = weights.length;
  let total = 0;
  for (let k = 0; k < n; k++) total += weights[k];
  const mMean = [0, 0, 0];
  const oMean = [0, 0, 0];
  for (let k = 0; k < n; k++) {
    const w = weights[k] / total;
    for (let i = 0; i < 3; i++) {
      mMean[i] += w * model[3 * k + i];
      oMean[i] += w * observed[3 * k + i];
    }
  }
  // C = Σ w (o - ō)(m - m̄)ᵀ, and the model's weighted variance.
  const c = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  let variance = 0;
  for (let k = 0; k < n; k++) {
    const w = weights[k] / total;
    const mc = [model[3 * k] - mMean[0], model[3 * k + 1] - mMean[1], model[3 * k + 2] - mMean[2]];
    const oc = [
      observed[3 * k] - oMean[0], observed[3 * k + 1] - oMean[1], observed[3 * k + 2] - oMean[2],
    ];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) c[i][j] += w * oc[i] * mc[j];
    variance += w * (mc[0] * mc[0] + mc[1] * mc[1] + mc[2] * mc[2]);
  }
  // Horn (1987): S = Cᵀ (S_ab = Σ m_a o_b); the rotation is the quaternion of N's top eigenvector.
  const s = (a, b) => c[b][a];
  const sxx = s(0, 0); const sxy = s(0, 1); const sxz = s(0, 2);
  const syx = s(1, 0); const syy = s(1, 1); const syz = s(1, 2);
  const szx = s(2, 0); const szy = s(2, 1); const szz = s(2, 2);
  const nMatrix = [
    [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
    [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
    [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
    [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
  ];
  let [qw, qx, qy, qz] = dominantEigenvector4(nMatrix);
  const norm = Math.hypot(qw, qx, qy, qz);
  qw /= norm; qx /= norm; qy /= norm; qz /= norm;
  const r = Float64Array.of(
    1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
    2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
    2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy),
  );
  let trace = 0;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) trace += r[3 * i + j] * c[i][j];
  const scale = trace / variance;
  const translation = new Float64Array(3);
  for (let i = 0; i < 3; i++) {
    translation[i] = oMean[i] - scale * (
      r[3 * i] * mMean[0] + r[3 * i + 1] * mMean[1] + r[3 * i + 2] * mMean[2]);
  }
  return { scale, rotation: r, translation };
}

/** (pitch, yaw, roll) in degrees of a row-major column-vector rotation (pose.py). */
export function eulerFromRotation(r) {
  const yaw = Math.asin(clip(-r[6], -1.0, 1.0));
  const pitch = Math.atan2(r[7], r[8]);
  const roll = Math.atan2(r[3], r[0]);
  return [pitch * DEGREES, yaw * DEGREES, roll * DEGREES];
}

// The rigid subsets of the canonical face, gathered once.
const RIGID_MODEL = new Float64Array(RIGID_IDS.length * 3);
RIGID_IDS.forEach((id, k) => {
  for (let i = 0; i < 3; i++) RIGID_MODEL[3 * k + i] = MODEL_VERTICES[3 * id + i];
});

/** lpstream.meshwarp.gaze.iris_offsets + put_gaze: each iris centre's offset in its eye
 * (along the corners, across), eye widths, into the lid rows' z of `exp`. */
function putGaze(exp, points) {
  GAZE.axes.forEach(([left, right], eye) => {
    const mx = (points[3 * left] + points[3 * right]) / 2;
    const my = (points[3 * left + 1] + points[3 * right + 1]) / 2;
    const ax = points[3 * right] - points[3 * left];
    const ay = points[3 * right + 1] - points[3 * left + 1];
    const norm = Math.max(ax * ax + ay * ay, 1e-9);
    const iris = GAZE.irisCentres[eye];
    const dx = points[3 * iris] - mx;
    const dy = points[3 * iris + 1] - my;
    const [alongRow, acrossRow] = GAZE.slots[eye];
    exp[3 * alongRow + 2] = clip((dx * ax + dy * ay) / norm, -GAZE.limit, GAZE.limit);
    exp[3 * acrossRow + 2] = clip((dx * -ay + dy * ax) / norm, -GAZE.limit, GAZE.limit);
  });
}

/**
 * The motion of one face (lpstream.meshwarp.face_motion.motion_from_landmarks).
 * @param {ArrayLike<number>} points flat 478×3 image pixels (x right, y down, z away)
 * @param {[number, number]} imageSize [width, height] of the analysed image
 * @returns {Motion}
 */
export function motionFromLandmarks(points, imageSize) {
  checkPoints(points);
  const [width, height] = imageSize;
  // Image frame -> model frame (y up, z towards the viewer): flip y and z.
  const observed = new Float64Array(RIGID_IDS.length * 3);
  RIGID_IDS.forEach((id, k) => {
    observed[3 * k] = points[3 * id];
    observed[3 * k + 1] = -points[3 * id + 1];
    observed[3 * k + 2] = -points[3 * id + 2];
  });
  const pose = fitSimilarity(RIGID_MODEL, observed, RIGID_WEIGHTS);
  const [pitch, yaw, roll] = eulerFromRotation(pose.rotation);
  const unit = Math.min(width, height) / 2.0;
  const centreX = pose.translation[0];
  const centreY = -pose.translation[1];
  const t = [
    clip((centreX - width / 2.0) / unit, -TRANSLATION_LIMIT, TRANSLATION_LIMIT),
    clip((centreY - height / 2.0) / unit, -TRANSLATION_LIMIT, TRANSLATION_LIMIT),
    0.0,
  ];
  // exp: the control points in the head-fixed frame (pose removed) minus the canonical face.
  const r = pose.rotation;
  const exp = new Float64Array(NUM_KEYPOINTS * 3);
  CONTROL_POINTS.forEach((id, row) => {
    const d = [
      points[3 * id] - pose.translation[0],
      -points[3 * id + 1] - pose.translation[1],
      -points[3 * id + 2] - pose.translation[2],
    ];
    for (let j = 0; j < 3; j++) {
      const shape = (d[0] * r[j] + d[1] * r[3 + j] + d[2] * r[6 + j]) / pose.scale;
      exp[3 * row + j] = clip(shape - MODEL_VERTICES[3 * id + j], -EXP_LIMIT, EXP_LIMIT);
    }
  });
  putGaze(exp, points);
  return makeMotion({
    pitch, yaw, roll, t,
    scale: clip(pose.scale / unit, SCALE_RANGE[0], SCALE_RANGE[1]),
    exp,
    eyeRatio: eyeOpenRatio(points),
    lipRatio: lipOpenRatio(points),
  });
}
