// Per-frame geometry of the built-in backend's renderer, ported from lpstream/meshwarp/
// (renderer.py target_mesh and render, retarget.py, pose.py, stitching.py): a few thousand
// multiply-adds a frame on the CPU. The per-pixel warp and painting are in renderer.js.

import * as D from "./meshwarp_data.js";

const DEG = Math.PI / 180;

/** Column-vector rotation Rz(roll)·Ry(yaw)·Rx(pitch), degrees; row-major 3×3. */
export function rotationFromEuler(pitch, yaw, roll) {
  const [p, y, r] = [pitch * DEG, yaw * DEG, roll * DEG];
  const rx = [1, 0, 0, 0, Math.cos(p), -Math.sin(p), 0, Math.sin(p), Math.cos(p)];
  const ry = [Math.cos(y), 0, Math.sin(y), 0, 1, 0, -Math.sin(y), 0, Math.cos(y)];
  const rz = [Math.cos(r), -Math.sin(r), 0, Math.sin(r), Math.cos(r), 0, 0, 0, 1];
  return matMul3(rz, matMul3(ry, rx));
}

export function matMul3(a, b) {
  const out = new Float64Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      out[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
    }
  }
  return out;
}

export function transpose3(a) {
  return Float64Array.of(a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8]);
}

/** The rotation about the same axis by `factor` times the angle (head-motion control). */
export function scaleRotation(rot, factor) {
  if (factor === 1) return rot;
  const trace = rot[0] + rot[4] + rot[8];
  const angle = Math.acos(Math.min(Math.max((trace - 1) / 2, -1), 1));
  if (angle < 1e-9) return Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1);
  let axis = [rot[7] - rot[5], rot[2] - rot[6], rot[3] - rot[1]];
  let norm = Math.hypot(...axis);
  if (norm < 1e-12) {
    axis = [rot[0], rot[4], rot[8]].map((d) => Math.sqrt(Math.max((d + 1) / 2, 0)));
    norm = Math.hypot(...axis);
  }
  const [x, y, z] = axis.map((v) => v / norm);
  const theta = angle * factor;
  const k = [0, -z, y, z, 0, -x, -y, x, 0];
  const kk = matMul3(k, k);
  const s = Math.sin(theta);
  const c = 1 - Math.cos(theta);
  const out = new Float64Array(9);
  for (let i = 0; i < 9; i++) out[i] = (i % 4 === 0 ? 1 : 0) + s * k[i] + c * kk[i];
  return out;
}

const ROW = new Map(D.CONTROL_POINTS.map((vertex, row) => [vertex, row]));

function gap(shape, [a, b]) {
  return shape[a * 3 + 1] - shape[b * 3 + 1];
}

function width3(shape, [a, b]) {
  return Math.hypot(shape[a * 3] - shape[b * 3], shape[a * 3 + 1] - shape[b * 3 + 1]);
}

/** retarget.set_eye_openness: `delta` (21·3) adjusted in place so both eyes open to `ratio`. */
export function setEyeOpenness(shape, delta, ratio) {
  for (const eye of D.EYES) {
    const upper = ROW.get(eye.lids[0]);
    const lower = ROW.get(eye.lids[1]);
    const current = gap(shape, eye.lids) + delta[upper * 3 + 1] - delta[lower * 3 + 1];
    const change = Math.max(ratio, 0) * width3(shape, eye.corners) - current;
    delta[upper * 3 + 1] += D.UPPER_LID_SHARE * change;
    delta[lower * 3 + 1] -= (1 - D.UPPER_LID_SHARE) * change;
  }
}

/** retarget.set_lip_openness, in place. */
export function setLipOpenness(shape, delta, ratio) {
  const upper = ROW.get(D.INNER_LIPS[0]);
  const lower = ROW.get(D.INNER_LIPS[1]);
  const current = gap(shape, D.INNER_LIPS) + delta[upper * 3 + 1] - delta[lower * 3 + 1];
  const change = Math.max(ratio, 0) * width3(shape, D.MOUTH_CORNERS) - current;
  for (const [row, share] of D.MOUTH_OPENING) delta[row * 3 + 1] += share * change;
}

/** Target (468·2) pixel positions and (468) depths (towards the viewer): renderer.target_mesh. */
export function targetMesh(source, motion, reference, controls, out) {
  const delta = new Float64Array(63);
  for (let i = 0; i < 63; i++) delta[i] = motion.exp[i] - reference.exp[i];
  // gaze.take_gaze: the lid rows' z carry each eye's gaze (along, across), then zeroed.
  D.GAZE_EYES.forEach((eye, k) => {
    out.gaze[k * 2] = delta[eye.slots[0] * 3 + 2];
    out.gaze[k * 2 + 1] = delta[eye.slots[1] * 3 + 2];
    delta[eye.slots[0] * 3 + 2] = 0;
    delta[eye.slots[1] * 3 + 2] = 0;
  });
  const shape = source.shape;
  if (controls.eyeOpen != null) setEyeOpenness(shape, delta, controls.eyeOpen);
  if (controls.lipOpen != null) setLipOpenness(shape, delta, controls.lipOpen);

  const gain = controls.headMotion;
  const driverNow = rotationFromEuler(motion.pitch, motion.yaw, motion.roll);
  const driverRef = rotationFromEuler(reference.pitch, reference.yaw, reference.roll);
  const rotation = matMul3(
    scaleRotation(matMul3(driverNow, transpose3(driverRef)), gain),
    source.pose.rotation,
  );
  const refScale = Math.max(reference.scale, 1e-6);
  const scale = source.pose.scale * (motion.scale / refScale) ** gain;
  const facePx = source.pose.scale;
  const tx = source.pose.translation[0] + gain * ((motion.t[0] - reference.t[0]) / refScale) * facePx;
  const ty = source.pose.translation[1] - gain * ((motion.t[1] - reference.t[1]) / refScale) * facePx;
  const tz = source.pose.translation[2];

  out.pose = { scale, rotation, tx, ty, tz };
  const P = D.PROPAGATION;
  const n = D.NUM_CONTROLS;
  const r = rotation;
  for (let v = 0; v < D.NUM_FACE; v++) {
    let x = shape[v * 3];
    let y = shape[v * 3 + 1];
    let z = shape[v * 3 + 2];
    const base = v * n;
    for (let j = 0; j < n; j++) {
      const w = P[base + j];
      if (w !== 0) {
        x += w * delta[j * 3];
        y += w * delta[j * 3 + 1];
        z += w * delta[j * 3 + 2];
      }
    }
    // model = scale · R · shape + t (y up, z towards the viewer); image = (x, -y).
    out.points[v * 2] = scale * (r[0] * x + r[1] * y + r[2] * z) + tx;
    out.points[v * 2 + 1] = -(scale * (r[3] * x + r[4] * y + r[5] * z) + ty);
    out.depth[v] = scale * (r[6] * x + r[7] * y + r[8] * z) + tz;
  }
  return out;
}

function eyeFrame(points, [left, right]) {
  const mx = (points[left * 2] + points[right * 2]) / 2;
  const my = (points[left * 2 + 1] + points[right * 2 + 1]) / 2;
  const ax = points[right * 2] - points[left * 2];
  const ay = points[right * 2 + 1] - points[left * 2 + 1];
  return { mx, my, ax, ay, nx: -ay, ny: ax, norm: Math.max(ax * ax + ay * ay, 1e-9) };
}

function acrossOf(points, f, v) {
  return ((points[v * 2] - f.mx) * f.nx + (points[v * 2 + 1] - f.my) * f.ny) / f.norm;
}

/** gaze.iris_targets: the two iris vertices' target pixels (2·2) into `out`; `gaze` is
 * each eye's (along, across) change (2·2). */
export function irisTargets(source, points, gaze, out) {
  D.GAZE_EYES.forEach((eye, k) => {
    const f = eyeFrame(points, eye.axis);
    const top = acrossOf(points, f, eye.lids[0]);
    const bottom = acrossOf(points, f, eye.lids[1]);
    const along = Math.min(Math.max(source.irisAlong[k] + gaze[k * 2], -D.GAZE_ALONG_LIMIT), D.GAZE_ALONG_LIMIT);
    const across = top + source.irisFraction[k] * (bottom - top) + D.GAZE_ACROSS_GAIN * gaze[k * 2 + 1];
    out[k * 2] = f.mx + along * f.ax + across * f.nx;
    out[k * 2 + 1] = f.my + along * f.ay + across * f.ny;
  });
  return out;
}

/** gaze.core_sources: both eyes' inner-ring source pixels (2·L·2), IRIS_CORE of the way from
 * each iris centre (`irises`, 2·2) to its opening's loop vertices in `points`. */
export function coreSources(points, irises) {
  const out = [];
  D.GAZE_EYES.forEach((eye, k) => {
    for (const v of eye.loop) {
      out.push(irises[k * 2] + D.IRIS_CORE * (points[v * 2] - irises[k * 2]));
      out.push(irises[k * 2 + 1] + D.IRIS_CORE * (points[v * 2 + 1] - irises[k * 2 + 1]));
    }
  });
  return Float64Array.from(out);
}

function eyeWidth(points, [left, right]) {
  return Math.hypot(points[right * 2] - points[left * 2], points[right * 2 + 1] - points[left * 2 + 1]);
}

/** gaze.core_targets: the inner rings' target pixels (2·L·2) into `out`, on each target ray
 * from the iris vertex (`irises`, 2·2) to its loop vertex, at IRIS_CORE of the ray or of the
 * source ray times the eye's change of width, whichever is shorter. */
export function coreTargets(source, points, irises, out) {
  let i = 0;
  D.GAZE_EYES.forEach((eye, k) => {
    const scale = eyeWidth(points, eye.axis) / Math.max(eyeWidth(source.points, eye.axis), 1e-6);
    const ix = irises[k * 2], iy = irises[k * 2 + 1];
    const sx = source.irisPoints[k * 2], sy = source.irisPoints[k * 2 + 1];
    for (const v of eye.loop) {
      const rx = points[v * 2] - ix, ry = points[v * 2 + 1] - iy;
      const length = Math.max(Math.hypot(rx, ry), 1e-6);
      const held = Math.hypot(source.points[v * 2] - sx, source.points[v * 2 + 1] - sy) * scale;
      const reach = D.IRIS_CORE * Math.min(length, held);
      out[i++] = ix + rx * (reach / length);
      out[i++] = iy + ry * (reach / length);
    }
  });
  return out;
}

/** 2×3 least-squares similarity mapping `target` points onto `source` points, over `ids`
 * (renderer._similarity_2d, closed form). Row-major [a, -b, c, b, a, d]. */
export function similarity2d(source, target, ids) {
  let sx = 0, sy = 0, tx = 0, ty = 0;
  for (const i of ids) {
    sx += source[i * 2]; sy += source[i * 2 + 1];
    tx += target[i * 2]; ty += target[i * 2 + 1];
  }
  const count = ids.length;
  sx /= count; sy /= count; tx /= count; ty /= count;
  let dot = 0, cross = 0, norm = 0;
  for (const i of ids) {
    const px = target[i * 2] - tx, py = target[i * 2 + 1] - ty;
    const qx = source[i * 2] - sx, qy = source[i * 2 + 1] - sy;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  }
  const a = dot / norm, b = cross / norm;
  return [a, -b, sx - a * tx + b * ty, b, a, sy - b * tx - a * ty];
}

export function invertAffine([a, b, c, d, e, f]) {
  const det = a * e - b * d;
  return [e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det];
}

/** stitching.ring_anchors: each ring vertex's head-frame point (R·K·3, face units). */
export function ringAnchors(shape) {
  const K = D.OVAL.length;
  let cx = 0, cy = 0;
  for (const v of D.OVAL) {
    cx += shape[v * 3] / K;
    cy += shape[v * 3 + 1] / K;
  }
  const anchors = new Float64Array(D.RING_EXTENT.length * K * 3);
  D.RING_EXTENT.forEach((extent, ring) => {
    const depthShare = Math.min(extent / D.SILHOUETTE_AT, 1);
    D.OVAL.forEach((v, k) => {
      const i = (ring * K + k) * 3;
      anchors[i] = cx + (shape[v * 3] - cx) * (1 + extent);
      anchors[i + 1] = cy + (shape[v * 3 + 1] - cy) * (1 + extent);
      anchors[i + 2] = shape[v * 3 + 2] + (D.SILHOUETTE_DEPTH - shape[v * 3 + 2]) * depthShare;
    });
  });
  return anchors;
}

/** Ring target positions (R·K·2) for the contour's motion and the head's pose change
 * (`pose`: targetMesh's out.pose): Skirt.targets. */
export function ringTargets(source, target, background, pose, out) {
  const K = D.OVAL.length;
  const rings = source.rings;
  const anchors = source.anchors;
  const forward = background ? invertAffine(background) : null;
  const from = source.pose;
  const r0 = from.rotation, r1 = pose.rotation;
  for (let ring = 0; ring < D.RING_FOLLOW.length; ring++) {
    const share = D.RING_FOLLOW[ring];
    const head = D.RING_HEAD_FOLLOW[ring];
    for (let k = 0; k < K; k++) {
      const v = D.OVAL[k];
      const i = (ring * K + k) * 2;
      const x = rings[i], y = rings[i + 1];
      let bx = 0, by = 0;
      if (forward) {
        bx = forward[0] * x + forward[1] * y + forward[2] - x;
        by = forward[3] * x + forward[4] * y + forward[5] - y;
      }
      // The anchor re-posed (model frame, y up) minus where the source pose put it; turned
      // and shifted with the head but kept at the source's scale (renderer.render).
      const a = (ring * K + k) * 3;
      const ax = anchors[a], ay = anchors[a + 1], az = anchors[a + 2];
      const hx = from.scale * (r1[0] * ax + r1[1] * ay + r1[2] * az) + pose.tx
        - (from.scale * (r0[0] * ax + r0[1] * ay + r0[2] * az) + from.translation[0]);
      const hy = from.scale * (r1[3] * ax + r1[4] * ay + r1[5] * az) + pose.ty
        - (from.scale * (r0[3] * ax + r0[4] * ay + r0[5] * az) + from.translation[1]);
      const rest = 1 - share - head;
      out[i] = x + share * (target[v * 2] - source.points[v * 2]) + rest * bx + head * hx;
      out[i + 1] = y + share * (target[v * 2 + 1] - source.points[v * 2 + 1]) + rest * by - head * hy;
    }
  }
  return out;
}

export function openingRatio(points, [ga, gb], [wa, wb]) {
  const opening = Math.hypot(points[ga * 2] - points[gb * 2], points[ga * 2 + 1] - points[gb * 2 + 1]);
  const span = Math.hypot(points[wa * 2] - points[wb * 2], points[wa * 2 + 1] - points[wb * 2 + 1]);
  return opening / Math.max(span, 1e-6);
}

/** eyelids.lid_cover_strength */
export function lidCoverStrength(targetRatio, sourceRatio) {
  if (sourceRatio <= 1e-6) return 0;
  const relative = targetRatio / sourceRatio;
  const s = (D.LID_UNCOVERED - relative) / (D.LID_UNCOVERED - D.LID_FULLY_COVERED);
  return Math.min(Math.max(s, 0), 1);
}

/** cv2.getGaussianKernel(ksize, sigma) for a float image: ksize = round(8σ + 1) | 1. */
export function gaussianKernel(sigma) {
  const size = Math.round(sigma * 8 + 1) | 1;
  const half = (size - 1) / 2;
  const weights = [];
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const w = Math.exp(-((i - half) ** 2) / (2 * sigma * sigma));
    weights.push(w);
    sum += w;
  }
  return weights.map((w) => w / sum);
}

/** Parse and check the JSON made by lpstream.meshwarp.browser_source. */
export function parseSource(geometry) {
  if (geometry.format !== "lpstream-meshwarp-source" || geometry.version !== 1) {
    throw new Error(`not a version-1 meshwarp source geometry: ${geometry.format} ${geometry.version}`);
  }
  const rings = Float64Array.from(geometry.rings);
  if (geometry.points.length !== D.NUM_FACE * 2 || rings.length !== D.RING_FOLLOW.length * D.OVAL.length * 2) {
    throw new Error("meshwarp source geometry has the wrong number of points");
  }
  const shape = Float64Array.from(geometry.shape);
  return {
    width: geometry.width,
    height: geometry.height,
    points: Float64Array.from(geometry.points),
    shape,
    anchors: ringAnchors(shape),
    pose: {
      scale: geometry.pose.scale,
      rotation: Float64Array.from(geometry.pose.rotation),
      translation: Float64Array.from(geometry.pose.translation),
    },
    rings,
    lipRgb: geometry.lipRgb,
    mouthRatio: geometry.mouthRatio,
    lidRgb: [geometry.lidRgb.slice(0, 3), geometry.lidRgb.slice(3, 6)],
    eyeRatios: geometry.eyeRatios,
    faceBox: geometry.faceBox,
    irisPoints: Float64Array.from(geometry.irisPoints),
    irisAlong: geometry.irisAlong,
    irisFraction: geometry.irisFraction,
  };
}
