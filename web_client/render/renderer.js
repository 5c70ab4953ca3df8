// WebGL2 renderer of the built-in backend: the browser's twin of
// lpstream.meshwarp.renderer.MeshwarpRenderer, held to it by tests/test_browser_renderer.py.
//
// Frames live in image orientation inside framebuffers (row 0 = the image's top row, pixel
// (x, y) has its centre at x + 0.5, y + 0.5), exactly as the Python renderer's arrays; only
// the final blit to the canvas flips to GL's bottom-up convention.

import * as D from "./meshwarp_data.js";
import {
  irisTargets,
  coreSources,
  coreTargets,
  gaussianKernel,
  lidCoverStrength,
  openingRatio,
  parseSource,
  ringTargets,
  similarity2d,
  targetMesh,
} from "./geometry.js";

const MAX_POLY = 24;
const MAX_TAPS = 13;

const WARP_VS = `#version 300 es
layout(location = 0) in vec2 aTarget;
layout(location = 1) in vec2 aSource;
uniform vec2 uSize;
out vec2 vUV;
void main() {
  vUV = (aSource + 0.5) / uSize;
  gl_Position = vec4((aTarget + 0.5) / uSize * 2.0 - 1.0, 0.0, 1.0);
}`;

// Bilinear, clamped to the edge: cv2.remap(INTER_LINEAR, BORDER_REPLICATE).
const WARP_FS = `#version 300 es
precision highp float;
uniform sampler2D uImage;
in vec2 vUV;
out vec4 colour;
void main() { colour = vec4(texture(uImage, vUV).rgb, 1.0); }`;

const QUAD_VS = `#version 300 es
layout(location = 0) in vec2 aPos;
void main() { gl_Position = vec4(aPos, 0.0, 1.0); }`;

// Anti-aliased coverage of a filled polygon (R, plus an outline of half-width uOutline) and
// of an open polyline (G, half-width uLine), like cv2.fillPoly/polylines with LINE_AA.
const MASK_FS = `#version 300 es
precision highp float;
uniform vec2 uPoly[${MAX_POLY}];
uniform int uPolyCount;
uniform float uOutline;
uniform vec2 uLine[${MAX_POLY}];
uniform int uLineCount;
uniform float uLineHalf;
out vec4 colour;
float segment(vec2 p, vec2 a, vec2 b) {
  vec2 ab = b - a;
  float t = clamp(dot(p - a, ab) / max(dot(ab, ab), 1e-12), 0.0, 1.0);
  return length(p - a - t * ab);
}
void main() {
  vec2 p = gl_FragCoord.xy - 0.5;
  float edge = 1e9;
  bool inside = false;
  for (int i = 0; i < ${MAX_POLY}; i++) {
    if (i >= uPolyCount) break;
    vec2 a = uPoly[i];
    vec2 b = uPoly[i + 1 == uPolyCount ? 0 : i + 1];
    edge = min(edge, segment(p, a, b));
    if ((a.y > p.y) != (b.y > p.y) && p.x < a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x)) {
      inside = !inside;
    }
  }
  float signedDistance = inside ? edge : -edge;
  float fill = clamp(signedDistance + 0.5, 0.0, 1.0);
  if (uOutline > 0.0) fill = max(fill, clamp(uOutline + 0.5 - edge, 0.0, 1.0));
  float lash = 0.0;
  if (uLineCount > 1) {
    float near = 1e9;
    for (int i = 0; i < ${MAX_POLY} - 1; i++) {
      if (i + 1 >= uLineCount) break;
      near = min(near, segment(p, uLine[i], uLine[i + 1]));
    }
    lash = clamp(uLineHalf + 0.5 - near, 0.0, 1.0);
  }
  colour = vec4(fill, lash, 0.0, 1.0);
}`;

// Separable Gaussian (cv2.GaussianBlur), R and G with their own kernels.
const BLUR_FS = `#version 300 es
precision highp float;
uniform sampler2D uMask;
uniform ivec2 uStep;
uniform float uWeightsR[${MAX_TAPS}];
uniform float uWeightsG[${MAX_TAPS}];
uniform int uTapsR;
uniform int uTapsG;
out vec4 colour;
void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  ivec2 size = textureSize(uMask, 0) - 1;
  float r = 0.0, g = 0.0;
  for (int i = 0; i < ${MAX_TAPS}; i++) {
    if (i < uTapsR) {
      ivec2 q = clamp(p + uStep * (i - uTapsR / 2), ivec2(0), size);
      r += uWeightsR[i] * texelFetch(uMask, q, 0).r;
    }
    if (i < uTapsG) {
      ivec2 q = clamp(p + uStep * (i - uTapsG / 2), ivec2(0), size);
      g += uWeightsG[i] * texelFetch(uMask, q, 0).g;
    }
  }
  colour = vec4(r, g, 0.0, 1.0);
}`;

// Mouth cavity (mouth.paint_cavity) or lid (eyelids.paint_lid) blended over the frame; the
// result is truncated to whole levels as the Python's astype(np.uint8).
const PAINT_FS = `#version 300 es
precision highp float;
uniform sampler2D uFrame;
uniform sampler2D uMask;
uniform int uMode;
uniform float uStrength;
uniform vec3 uColour;
uniform float uTop;
uniform float uOpening;
uniform vec2 uDarkness;
uniform vec3 uTeeth;
uniform float uTeethShade;
uniform vec3 uTeethBands;
uniform float uTeethMax;
uniform vec2 uTeethOpen;
uniform float uLashDarkness;
out vec4 colour;
void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  vec3 under = texelFetch(uFrame, p, 0).rgb * 255.0;
  vec2 mask = texelFetch(uMask, p, 0).rg;
  vec3 painted;
  if (uMode == 0) {
    float depth = clamp((gl_FragCoord.y - 0.5 - uTop) / max(uOpening, 1.0), 0.0, 1.0);
    vec3 cavity = uColour * (uDarkness.x + (uDarkness.y - uDarkness.x) * depth * depth);
    // mouth.teeth_amount: an upper and a lower row, shown more as the lips part.
    float teethVisibility = clamp((uOpening - uTeethOpen.x) / uTeethOpen.y, 0.0, uTeethMax);
    float upperTeeth = clamp((uTeethBands.x - depth) / uTeethBands.z, 0.0, 1.0);
    float lowerTeeth = clamp((depth - uTeethBands.y) / uTeethBands.z, 0.0, 1.0);
    float teeth = max(upperTeeth, lowerTeeth) * teethVisibility;
    vec3 shading = cavity * (1.0 - teeth) + uTeeth * uTeethShade * teeth;
    float alpha = mask.r * uStrength;
    painted = under * (1.0 - alpha) + shading * alpha;
  } else {
    float alpha = mask.r * uStrength;
    float lash = mask.g * uStrength * 0.8;
    painted = under * (1.0 - alpha) + uColour * alpha;
    painted = painted * (1.0 - lash) + uColour * uLashDarkness * lash;
  }
  colour = vec4(floor(painted + 1e-3) / 255.0, 1.0);
}`;

// The frame to the canvas, flipped to GL's bottom-up rows (a draw: cheaper than a blit on
// SwiftShader).
const PRESENT_FS = `#version 300 es
precision highp float;
uniform sampler2D uFrame;
out vec4 colour;
void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  colour = vec4(texelFetch(uFrame, ivec2(p.x, textureSize(uFrame, 0).y - 1 - p.y), 0).rgb, 1.0);
}`;

function compile(gl, vertex, fragment) {
  const program = gl.createProgram();
  for (const [type, text] of [[gl.VERTEX_SHADER, vertex], [gl.FRAGMENT_SHADER, fragment]]) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, text);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error(`shader: ${gl.getShaderInfoLog(shader)}`);
    }
    gl.attachShader(program, shader);
  }
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
    throw new Error(`program: ${gl.getProgramInfoLog(program)}`);
  }
  const uniforms = {};
  const count = gl.getProgramParameter(program, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < count; i++) {
    const name = gl.getActiveUniform(program, i).name.replace(/\[0\]$/, "");
    uniforms[name] = gl.getUniformLocation(program, name);
  }
  return { program, uniforms };
}

function pointList(points, ids) {
  const out = new Float32Array(ids.length * 2);
  ids.forEach((v, i) => {
    out[i * 2] = points[v * 2];
    out[i * 2 + 1] = points[v * 2 + 1];
  });
  return out;
}

function bounds(list) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < list.length; i += 2) {
    x0 = Math.min(x0, list[i]); x1 = Math.max(x1, list[i]);
    y0 = Math.min(y0, list[i + 1]); y1 = Math.max(y1, list[i + 1]);
  }
  return { x0, y0, x1, y1 };
}

const NUM_RING_VERTICES = D.RING_FOLLOW.length * D.OVAL.length;
const NUM_VERTICES = D.NUM_FACE + NUM_RING_VERTICES;
const NUM_FACE_TRIANGLES = D.FACE_TRIANGLES.length / 3;
const NUM_SKIRT_INDICES = D.SKIRT_TRIANGLES.length;
// The two iris vertices come after the 4 background corners, then their inner rings
// (gaze.fan_triangles); their fans are drawn last.
const IRIS_VERTEX = NUM_VERTICES + 4;
const CORE_VERTEX = IRIS_VERTEX + 2;
const NUM_CORE_VERTICES = D.GAZE_EYES.reduce((sum, eye) => sum + eye.loop.length, 0);
const NUM_ALL_VERTICES = CORE_VERTEX + NUM_CORE_VERTICES;
const FAN_INDICES = Uint16Array.from(
  D.GAZE_EYES.flatMap((eye, k) => {
    const n = eye.loop.length;
    const start = CORE_VERTEX + D.GAZE_EYES.slice(0, k).reduce((sum, e) => sum + e.loop.length, 0);
    const core = (i) => start + (i % n);
    const ring = (i) => eye.loop[i % n];
    return [
      ...eye.loop.flatMap((_, i) => [IRIS_VERTEX + k, core(i), core(i + 1)]),
      ...eye.loop.flatMap((_, i) => [core(i), ring(i), ring(i + 1)]),
      ...eye.loop.flatMap((_, i) => [core(i), ring(i + 1), core(i + 1)]),
    ];
  }),
);
const MOUTH_KERNEL = gaussianKernel(D.MOUTH_FEATHER_PX);
const LID_KERNEL = gaussianKernel(D.LID_FEATHER_PX);
const LASH_KERNEL = gaussianKernel(0.8);

/**
 * The source portrait animated by decoded motion, drawn with WebGL2.
 *
 * Motion: {pitch, yaw, roll, t: Float64Array(3), scale, exp: Float64Array(63) (21×3
 * row-major), eyeRatio, lipRatio}. Controls: {eyeOpen, lipOpen: null or 0-1, headMotion,
 * stitching} (lpstream.backend.Controls).
 */
export class MeshwarpGLRenderer {
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", {
      alpha: false, antialias: false, depth: false, stencil: false,
      premultipliedAlpha: false, preserveDrawingBuffer: true,
    });
    if (!gl) throw new Error("WebGL2 is not available");
    this.canvas = canvas;
    this.gl = gl;
    this.warp = compile(gl, WARP_VS, WARP_FS);
    this.mask = compile(gl, QUAD_VS, MASK_FS);
    this.blur = compile(gl, QUAD_VS, BLUR_FS);
    this.paint = compile(gl, QUAD_VS, PAINT_FS);
    this.present = compile(gl, QUAD_VS, PRESENT_FS);

    this.quad = gl.createVertexArray();
    gl.bindVertexArray(this.quad);
    const quadBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, quadBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 3, -1, -1, 3]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);

    // Mesh: every vertex's target (per frame) and source position; then 4 background corners.
    this.mesh = gl.createVertexArray();
    gl.bindVertexArray(this.mesh);
    this.targetBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.targetBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, NUM_ALL_VERTICES * 8, gl.DYNAMIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    this.sourceBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.sourceBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, NUM_ALL_VERTICES * 8, gl.DYNAMIC_DRAW);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 2, gl.FLOAT, false, 0, 0);
    this.indexBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.indexBuffer);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, (NUM_SKIRT_INDICES + D.FACE_TRIANGLES.length + FAN_INDICES.length + 6) * 2, gl.DYNAMIC_DRAW);
    gl.bindVertexArray(null);

    this.indices = new Uint16Array(NUM_SKIRT_INDICES + D.FACE_TRIANGLES.length + FAN_INDICES.length);
    this.indices.set(D.SKIRT_TRIANGLES);
    this.indices.set(FAN_INDICES, NUM_SKIRT_INDICES + D.FACE_TRIANGLES.length);
    this.order = new Uint16Array(NUM_FACE_TRIANGLES);
    this.faceDepth = new Float64Array(NUM_FACE_TRIANGLES);
    this.frameMesh = {
      points: new Float64Array(D.NUM_FACE * 2), depth: new Float64Array(D.NUM_FACE), gaze: new Float64Array(4),
    };
    this.irises = new Float64Array(4);
    this.cores = new Float64Array(NUM_CORE_VERTICES * 2);
    this.targets = new Float32Array(NUM_ALL_VERTICES * 2);
    this.rings = new Float64Array(NUM_RING_VERTICES * 2);
    this.source = null;
    this.reference = null;
    this.targetsList = [];
  }

  /** `geometry`: lpstream.meshwarp.browser_source's JSON; `image`: the same portrait as an
   * ImageData, ImageBitmap, HTMLImageElement, canvas or {data: RGBA bytes, width, height}. */
  setSource(geometry, image) {
    const source = parseSource(geometry);
    const { width, height } = source;
    if (image.width !== width || image.height !== height) {
      throw new Error(`portrait is ${image.width}×${image.height}, geometry ${width}×${height}`);
    }
    const gl = this.gl;
    this._freeTargets();
    this.canvas.width = width;
    this.canvas.height = height;
    this.image = this._texture(width, height, gl.LINEAR);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    if (image.data && !(typeof ImageData !== "undefined" && image instanceof ImageData)) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, width, height, 0, gl.RGBA, gl.UNSIGNED_BYTE, image.data);
    } else {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, image);
    }
    // The portrait as a framebuffer too: with stitching the background is the portrait
    // itself, copied (copyTexSubImage2D: a memory copy on SwiftShader, where a blit or a
    // full-frame draw costs as much as shading every pixel).
    this.imageFb = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.imageFb);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.image, 0);
    this.targetsList[this.targetsList.length - 1].fb = this.imageFb;
    this.frame = this._target(width, height);
    this.scratch = this._target(width, height);
    this.maskA = this._target(width, height);
    this.maskB = this._target(width, height);

    const sources = new Float32Array(NUM_ALL_VERTICES * 2);
    sources.set(source.points);
    sources.set(source.rings, D.NUM_FACE * 2);
    sources.set(source.irisPoints, IRIS_VERTEX * 2);
    sources.set(coreSources(source.points, source.irisPoints), CORE_VERTEX * 2);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.sourceBuffer);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, sources);
    this.sources = sources;
    this.source = source;
    this.reference = null;
    this.shownBox = null; // the canvas was cleared: redraw all of it
    this.paintedBoxes = [];
  }

  resetReference() {
    this.reference = null;
  }

  /** Draw the frame for `motion`; returns the target face points (468·2 pixels). */
  render(motion, controls = {}) {
    const source = this.source;
    if (!source) throw new Error("call setSource() before render()");
    const numbers = [motion.pitch, motion.yaw, motion.roll, motion.scale, ...motion.t, ...motion.exp];
    if (!numbers.every(Number.isFinite) || !(motion.scale > 0)) {
      throw new Error("motion has non-finite values or a non-positive scale");
    }
    if (!this.reference) {
      this.reference = {
        pitch: motion.pitch, yaw: motion.yaw, roll: motion.roll, scale: motion.scale,
        t: Float64Array.from(motion.t), exp: Float64Array.from(motion.exp),
      };
    }
    const c = {
      eyeOpen: controls.eyeOpen ?? null,
      lipOpen: controls.lipOpen ?? null,
      headMotion: controls.headMotion ?? 1,
      stitching: controls.stitching ?? true,
    };
    const { points, depth, gaze, pose } = targetMesh(source, motion, this.reference, c, this.frameMesh);
    const background = c.stitching ? null : similarity2d(source.points, points, D.RIGID_IDS);
    ringTargets(source, points, background, pose, this.rings);

    const gl = this.gl;
    const { width, height } = source;
    // Background quad corners (pixel-edge coordinates) and where they come from.
    const corners = [-0.5, -0.5, width - 0.5, -0.5, -0.5, height - 0.5, width - 0.5, height - 0.5];
    const targets = this.targets;
    targets.set(points);
    targets.set(this.rings, D.NUM_FACE * 2);
    targets.set(corners, NUM_VERTICES * 2);
    targets.set(irisTargets(source, points, gaze, this.irises), IRIS_VERTEX * 2);
    targets.set(coreTargets(source, points, this.irises, this.cores), CORE_VERTEX * 2);
    const sources = this.sources;
    const b = background ?? [1, 0, 0, 0, 1, 0];
    for (let i = 0; i < 4; i++) {
      const x = corners[i * 2], y = corners[i * 2 + 1];
      sources[(NUM_VERTICES + i) * 2] = b[0] * x + b[1] * y + b[2];
      sources[(NUM_VERTICES + i) * 2 + 1] = b[3] * x + b[4] * y + b[5];
    }
    // Skirt first (behind), then face triangles far to near so the nearer surface wins.
    const tri = D.FACE_TRIANGLES;
    for (let i = 0; i < NUM_FACE_TRIANGLES; i++) {
      this.faceDepth[i] = (depth[tri[i * 3]] + depth[tri[i * 3 + 1]] + depth[tri[i * 3 + 2]]) / 3;
      this.order[i] = i;
    }
    const faceDepth = this.faceDepth;
    this.order.sort((p, q) => faceDepth[p] - faceDepth[q]);
    for (let i = 0; i < NUM_FACE_TRIANGLES; i++) {
      const t = this.order[i] * 3;
      const o = NUM_SKIRT_INDICES + i * 3;
      this.indices[o] = tri[t];
      this.indices[o + 1] = tri[t + 1];
      this.indices[o + 2] = tri[t + 2];
    }

    gl.bindFramebuffer(gl.FRAMEBUFFER, this.frame.fb);
    gl.viewport(0, 0, width, height);
    gl.disable(gl.SCISSOR_TEST);
    gl.disable(gl.BLEND);
    gl.useProgram(this.warp.program);
    gl.uniform2f(this.warp.uniforms.uSize, width, height);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.image);
    gl.uniform1i(this.warp.uniforms.uImage, 0);
    gl.bindVertexArray(this.mesh);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.targetBuffer);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, targets);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.sourceBuffer);
    gl.bufferSubData(gl.ARRAY_BUFFER, NUM_VERTICES * 8, sources, NUM_VERTICES * 2, 8);
    gl.bufferSubData(gl.ELEMENT_ARRAY_BUFFER, 0, this.indices);
    const v = NUM_VERTICES;
    gl.bufferSubData(gl.ELEMENT_ARRAY_BUFFER, this.indices.length * 2, Uint16Array.of(v, v + 1, v + 2, v + 1, v + 3, v + 2));
    if (background) {
      gl.drawElements(gl.TRIANGLES, 6, gl.UNSIGNED_SHORT, this.indices.length * 2);
    } else { // the identity: the portrait's own pixels (bilinear at pixel centres = a copy)
      gl.bindFramebuffer(gl.READ_FRAMEBUFFER, this.imageFb);
      gl.bindTexture(gl.TEXTURE_2D, this.frame.texture);
      gl.copyTexSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 0, 0, width, height);
      gl.bindTexture(gl.TEXTURE_2D, this.image);
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.frame.fb);
    }
    gl.drawElements(gl.TRIANGLES, this.indices.length, gl.UNSIGNED_SHORT, 0);
    gl.bindVertexArray(null);

    this._paintMouth(points);
    this._paintLids(points);

    // To the canvas (which keeps its pixels: preserveDrawingBuffer), only what can differ from
    // what it shows: with stitching, everything outside the mesh's box is the portrait itself.
    const box = this._presentBox(background === null);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, width, height);
    gl.enable(gl.SCISSOR_TEST);
    gl.scissor(box.x0, height - box.y1, box.x1 - box.x0, box.y1 - box.y0);
    gl.useProgram(this.present.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.frame.texture);
    gl.uniform1i(this.present.uniforms.uFrame, 0);
    gl.bindVertexArray(this.quad);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindVertexArray(null);
    gl.disable(gl.SCISSOR_TEST);
    return points;
  }

  /** The box [x0, x1) × [y0, y1) of the canvas to redraw: this frame's mesh (face, skirt,
   * irises) ∪ the last frame's; the whole canvas after a new portrait or a moved background. */
  _presentBox(stitched) {
    const { width, height } = this.source;
    const whole = { x0: 0, y0: 0, x1: width, y1: height };
    if (!stitched) {
      this.shownBox = whole;
      return whole;
    }
    const t = this.targets;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < NUM_ALL_VERTICES; i++) {
      if (i === NUM_VERTICES) i += 4; // the background corners
      x0 = Math.min(x0, t[i * 2]); x1 = Math.max(x1, t[i * 2]);
      y0 = Math.min(y0, t[i * 2 + 1]); y1 = Math.max(y1, t[i * 2 + 1]);
    }
    for (const painted of this.paintedBoxes) {
      x0 = Math.min(x0, painted.x0); x1 = Math.max(x1, painted.x1);
      y0 = Math.min(y0, painted.y0); y1 = Math.max(y1, painted.y1);
    }
    this.paintedBoxes = [];
    const mesh = {
      x0: Math.max(Math.floor(x0) - 1, 0), y0: Math.max(Math.floor(y0) - 1, 0),
      x1: Math.min(Math.ceil(x1) + 2, width), y1: Math.min(Math.ceil(y1) + 2, height),
    };
    const last = this.shownBox ?? whole;
    this.shownBox = mesh;
    return {
      x0: Math.min(mesh.x0, last.x0), y0: Math.min(mesh.y0, last.y0),
      x1: Math.max(mesh.x1, last.x1), y1: Math.max(mesh.y1, last.y1),
    };
  }

  /** RGBA bytes of the last frame's box [x, x+w) × [y, y+h), rows top to bottom. */
  readPixels(x = 0, y = 0, w = this.source.width, h = this.source.height) {
    const gl = this.gl;
    const out = new Uint8Array(w * h * 4);
    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, this.frame.fb);
    gl.readPixels(x, y, w, h, gl.RGBA, gl.UNSIGNED_BYTE, out);
    return out;
  }

  close() {
    this._freeTargets();
    this.source = null;
    const ext = this.gl.getExtension("WEBGL_lose_context");
    if (ext) ext.loseContext();
  }

  // -- painting --------------------------------------------------------------------------
  _paintMouth(points) {
    const source = this.source;
    const ratio = openingRatio(points, D.INNER_LIPS, D.MOUTH_CORNERS);
    if (ratio <= source.mouthRatio) return;
    let strength = Math.min((ratio - source.mouthRatio) / D.CAVITY_FULL_AT, 1);
    strength *= 1 - Math.min(source.mouthRatio / D.SOURCE_OPEN_RATIO, 1) * 0.6;
    const [a, b] = D.INNER_LIPS;
    const opening = Math.hypot(points[a * 2] - points[b * 2], points[a * 2 + 1] - points[b * 2 + 1]);
    if (strength <= 0 || opening < 1) return;
    const polygon = pointList(points, D.MOUTH_LOOP);
    const box = bounds(polygon);
    const pad = Math.ceil(3 * D.MOUTH_FEATHER_PX) + 1;
    this._paint(polygon, box, pad, { outline: 0, line: null, kernels: [MOUTH_KERNEL, [1]] }, (gl, u) => {
      gl.uniform1i(u.uMode, 0);
      gl.uniform1f(u.uStrength, strength);
      gl.uniform3fv(u.uColour, source.lipRgb);
      gl.uniform1f(u.uTop, box.y0);
      gl.uniform1f(u.uOpening, opening);
      gl.uniform2fv(u.uDarkness, D.CAVITY_DARKNESS);
      gl.uniform3fv(u.uTeeth, D.TEETH_COLOUR);
      gl.uniform1f(u.uTeethShade, D.TEETH_SHADE);
      gl.uniform3fv(u.uTeethBands, D.TEETH_BANDS);
      gl.uniform1f(u.uTeethMax, D.TEETH_MAX);
      gl.uniform2fv(u.uTeethOpen, D.TEETH_OPEN_PX);
    });
  }

  _paintLids(points) {
    const source = this.source;
    D.EYES.forEach((eye, index) => {
      const strength = lidCoverStrength(openingRatio(points, eye.lids, eye.corners), source.eyeRatios[index]);
      if (strength <= 0) return;
      const ring = [...eye.upper, ...eye.lower.slice(1, -1).reverse()];
      const polygon = pointList(points, ring);
      const lower = pointList(points, eye.lower);
      const box = bounds(polygon);
      const thickness = Math.max(1, Math.round((box.x1 - box.x0) / 30));
      const pad = D.LID_DILATE_PX + Math.ceil(3 * D.LID_FEATHER_PX) + 1;
      const mask = { outline: (1 + 2 * D.LID_DILATE_PX) / 2, line: lower, lineHalf: thickness / 2, kernels: [LID_KERNEL, LASH_KERNEL] };
      this._paint(polygon, box, pad, mask, (gl, u) => {
        gl.uniform1i(u.uMode, 1);
        gl.uniform1f(u.uStrength, strength);
        gl.uniform3fv(u.uColour, source.lidRgb[index]);
        gl.uniform1f(u.uLashDarkness, D.LASH_DARKNESS);
      });
    });
  }

  _paint(polygon, box, pad, mask, setUniforms) {
    const gl = this.gl;
    const { width, height } = this.source;
    const x0 = Math.max(Math.floor(box.x0) - pad, 0);
    const y0 = Math.max(Math.floor(box.y0) - pad, 0);
    const x1 = Math.min(Math.ceil(box.x1) + pad + 1, width);
    const y1 = Math.min(Math.ceil(box.y1) + pad + 1, height);
    if (x1 <= x0 || y1 <= y0) return;
    this.paintedBoxes.push({ x0, y0, x1, y1 });
    const w = x1 - x0, h = y1 - y0;
    gl.bindVertexArray(this.quad);
    gl.enable(gl.SCISSOR_TEST);
    const margin = MAX_TAPS;
    for (const target of [this.maskA, this.maskB]) {
      gl.bindFramebuffer(gl.FRAMEBUFFER, target.fb);
      gl.scissor(x0 - margin, y0 - margin, w + 2 * margin, h + 2 * margin);
      gl.clearColor(0, 0, 0, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
    }
    gl.scissor(x0, y0, w, h);

    gl.bindFramebuffer(gl.FRAMEBUFFER, this.maskA.fb);
    let u = this.mask.uniforms;
    gl.useProgram(this.mask.program);
    gl.uniform2fv(u.uPoly, polygon);
    gl.uniform1i(u.uPolyCount, polygon.length / 2);
    gl.uniform1f(u.uOutline, mask.outline);
    gl.uniform1i(u.uLineCount, mask.line ? mask.line.length / 2 : 0);
    if (mask.line) {
      gl.uniform2fv(u.uLine, mask.line);
      gl.uniform1f(u.uLineHalf, mask.lineHalf);
    }
    gl.drawArrays(gl.TRIANGLES, 0, 3);

    u = this.blur.uniforms;
    gl.useProgram(this.blur.program);
    const [kr, kg] = mask.kernels;
    gl.uniform1fv(u.uWeightsR, Float32Array.from({ length: MAX_TAPS }, (_, i) => kr[i] ?? 0));
    gl.uniform1fv(u.uWeightsG, Float32Array.from({ length: MAX_TAPS }, (_, i) => kg[i] ?? 0));
    gl.uniform1i(u.uTapsR, kr.length);
    gl.uniform1i(u.uTapsG, kg.length);
    gl.uniform1i(u.uMask, 0);
    gl.activeTexture(gl.TEXTURE0);
    for (const [from, to, step] of [[this.maskA, this.maskB, [1, 0]], [this.maskB, this.maskA, [0, 1]]]) {
      gl.bindFramebuffer(gl.FRAMEBUFFER, to.fb);
      gl.bindTexture(gl.TEXTURE_2D, from.texture);
      gl.uniform2i(u.uStep, step[0], step[1]);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }

    u = this.paint.uniforms;
    gl.useProgram(this.paint.program);
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.scratch.fb);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.frame.texture);
    gl.uniform1i(u.uFrame, 0);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.maskA.texture);
    gl.uniform1i(u.uMask, 1);
    setUniforms(gl, u);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.activeTexture(gl.TEXTURE0);

    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, this.scratch.fb);
    gl.bindFramebuffer(gl.DRAW_FRAMEBUFFER, this.frame.fb);
    gl.blitFramebuffer(x0, y0, x1, y1, x0, y0, x1, y1, gl.COLOR_BUFFER_BIT, gl.NEAREST);
    gl.disable(gl.SCISSOR_TEST);
    gl.bindVertexArray(null);
  }

  // -- resources -------------------------------------------------------------------------
  _texture(width, height, filter) {
    const gl = this.gl;
    const texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.targetsList.push({ texture });
    return texture;
  }

  _target(width, height) {
    const gl = this.gl;
    const texture = this._texture(width, height, gl.NEAREST);
    gl.texStorage2D(gl.TEXTURE_2D, 1, gl.RGBA8, width, height);
    const fb = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
    this.targetsList[this.targetsList.length - 1].fb = fb;
    return { texture, fb };
  }

  _freeTargets() {
    const gl = this.gl;
    for (const { texture, fb } of this.targetsList) {
      gl.deleteTexture(texture);
      if (fb) gl.deleteFramebuffer(fb);
    }
    this.targetsList = [];
  }
}
