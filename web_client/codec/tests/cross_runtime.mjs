// Cross-runtime golden checks, run by tests/test_codec_cross_runtime.py:
//   node web_client/codec/tests/cross_runtime.mjs INPUT.json OUTPUT.json
// INPUT (written by Python): probability tables, golden fixtures, Python's lossy-loop
// schedules, a portrait exchange. OUTPUT: {checks: {name: [errors]}, jsRuns, fuzzCases,
// portraitFromJs, timing}. Exit code 1 if the script itself breaks (checks report mismatches).

import { readFileSync, writeFileSync } from "node:fs";
import {
  Bye,
  DecodeStatus,
  Feedback,
  Hello,
  KEYPOINTS,
  MotionDecoder,
  MotionEncoder,
  MotionPacket,
  PROFILES,
  PortraitChunk,
  PortraitReceiver,
  PortraitRejectedError,
  PortraitSender,
  ProtocolError,
  RejectCode,
  Stats,
  decodeMessage,
  encodeKeyframeRequest,
  makeMotion,
  motionToUnits,
  unitsToMotion,
} from "../index.js";
import { KEY_TABLES } from "../tables.js";

const [inputPath, outputPath] = process.argv.slice(2);
if (!outputPath) {
  console.error("usage: node cross_runtime.mjs INPUT.json OUTPUT.json (run by tests/test_codec_cross_runtime.py)");
  process.exit(2);
}
const input = JSON.parse(readFileSync(inputPath, "utf-8"));
const checks = {};
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));

function flat(m) {
  if (m === null || m === undefined) return null;
  return {
    pitch: m.pitch, yaw: m.yaw, roll: m.roll, t: Array.from(m.t), scale: m.scale,
    exp: Array.from(m.exp), eyeRatio: m.eyeRatio === null ? null : Array.from(m.eyeRatio),
    lipRatio: m.lipRatio,
  };
}

function same(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => same(a[k], b[k]));
}

function check(name, body) {
  const errors = [];
  try {
    body((message) => errors.length < 20 && errors.push(message));
  } catch (error) {
    errors.push(`threw ${error?.stack ?? error}`);
  }
  checks[name] = errors;
}

// --- the probability tables JS builds from the generated statistics ---------------------
check("tables", (fail) => {
  const compare = (label, ours, theirs) => {
    if (ours.length !== theirs.length) fail(`${label}: ${ours.length} levels, Python ${theirs.length}`);
    theirs.forEach((cum, level) => {
      if (!same(ours[level]?.table.cumulative, cum)) fail(`${label} level ${level} differs`);
    });
  };
  compare("key tables", KEY_TABLES, input.tables.key);
  for (const [id, delta] of Object.entries(input.tables.delta)) {
    compare(`profile ${id} delta tables`, PROFILES.get(Number(id)).deltaTables, delta);
  }
});

// --- quantiser inputs: float32 rounding, ties (Python's round), clamping ---------------
check("units", (fail) => {
  input.units.forEach(({ motion, values, decoded }, n) => {
    const units = motionToUnits(makeMotion(motion));
    if (!same(units.values, values)) fail(`case ${n}: units ${units.values} != ${values}`);
    else if (!same(flat(unitsToMotion(units)), decoded)) fail(`case ${n}: decoded motion differs`);
  });
});

// --- golden fixtures (tests/test_protocol_golden.py's expectations) ------------------------
check("fixtures", (fail) => {
  const F = (name) => unhex(input.fixtures[name]);
  const near = (a, b, tol, what) => Math.abs(a - b) <= tol || fail(`${what}: ${a} vs ${b}`);
  const decoder = new MotionDecoder();
  const key = decoder.decode(F("motion_keyframe.bin"));
  if (decoder.lastStatus !== DecodeStatus.DECODED || decoder.lastTimestampMs !== 1000) fail("keyframe status/timestamp");
  near(key.yaw, -7.25, 0.021, "keyframe yaw");
  near(key.lipRatio, 0.05, 5e-3, "keyframe lip");
  if (key.eyeRatio === null) fail("keyframe lost its eye ratio");
  const delta = decoder.decode(F("motion_delta.bin"));
  if (decoder.lastStatus !== DecodeStatus.DECODED || decoder.lastTimestampMs !== 1033) fail("delta status/timestamp");
  near(delta.pitch, 3.5, 0.021, "delta pitch");
  if (decoder.decode(F("motion_no_face.bin")) !== null || decoder.senderHasFace || decoder.lastTimestampMs !== 1066) {
    fail("no-face fixture");
  }
  const meshwarp = new MotionDecoder();
  meshwarp.decode(F("motion_meshwarp_keyframe.bin"));
  const md = meshwarp.decode(F("motion_meshwarp_delta.bin"));
  if (meshwarp.lastStatus !== DecodeStatus.DECODED || meshwarp.lastTimestampMs !== 2033) fail("meshwarp delta");
  near(md.pitch, -3.4, 0.051, "meshwarp delta pitch");
  if (!same(Feedback.decode(F("feedback.bin")).acked, [0])) fail("feedback fixture");
  if (!Feedback.decode(F("feedback_keyframe_request.bin")).keyframeRequest) fail("keyframe-request fixture");
  const hello = decodeMessage(F("hello.bin"));
  if (!(hello instanceof Hello) || hello.backend !== "liveportrait" || !same(hello.capabilities, ["eye_ratio", "lip_ratio"])) fail("hello fixture");
  if (decodeMessage(F("bye.bin")).reason !== "call ended") fail("bye fixture");
  const stats = Stats.decode(F("stats.bin"));
  if (!same({ ...stats }, { fps: 29.97, bytesSent: 123456, framesSent: 3000, extractMs: 41, rttMs: null })) fail("stats fixture");
  const chunk = PortraitChunk.decode(F("portrait_chunk.bin"));
  if (chunk.index !== 1 || chunk.count !== 3 || Buffer.from(chunk.data).toString("latin1") !== "\x89PNG-part") fail("chunk fixture");
  // The JS encoders produce the golden bytes from the same inputs.
  const encodes = {
    "hello.bin": new Hello("liveportrait", ["eye_ratio", "lip_ratio"]).encode(),
    "bye.bin": new Bye("call ended").encode(),
    "stats.bin": new Stats(29.97, 123456, 3000, 41.0, null).encode(),
    "feedback_keyframe_request.bin": new Feedback(null, [], true).encode(),
    "portrait_chunk.bin": new PortraitChunk(Uint8Array.from({ length: 32 }, (_, i) => i), 1, 3,
      new Uint8Array(Buffer.from("\x89PNG-part", "latin1"))).encode(),
  };
  for (const [name, bytes] of Object.entries(encodes)) if (hex(bytes) !== input.fixtures[name]) fail(`${name} encodes differently`);
  for (const [profile, names] of [[KEYPOINTS, ["motion_keyframe.bin", "motion_delta.bin"]], [PROFILES.get(1), ["motion_meshwarp_keyframe.bin", "motion_meshwarp_delta.bin"]]]) {
    const encoder = new MotionEncoder({ profile });
    const receiver = new MotionDecoder();
    const base = profile.profileId ? 2000 : 1000;
    const motions = input.goldenMotions[profile.profileId];
    const first = encoder.encode(makeMotion(motions[0]), base);
    receiver.decode(first);
    const fb = receiver.feedback();
    encoder.onFeedback(fb);
    const second = encoder.encode(makeMotion(motions[1]), base + 33);
    if (hex(first) !== input.fixtures[names[0]]) fail(`${names[0]} encodes differently`);
    if (hex(second) !== input.fixtures[names[1]]) fail(`${names[1]} encodes differently`);
    if (profile === KEYPOINTS) {
      if (hex(fb) !== input.fixtures["feedback.bin"]) fail("feedback.bin encodes differently");
      if (hex(encoder.encode(null, 1066)) !== input.fixtures["motion_no_face.bin"]) fail("no-face encodes differently");
    }
  }
});

// --- feedback round trip -------------------------------------------------------------
check("feedback", (fail) => {
  const rand = mulberry32(5);
  for (let n = 0; n < 2000; n++) {
    const newest = rand() < 0.05 ? null : Math.floor(rand() * 4096);
    const acked = newest === null ? [] : [newest];
    if (newest !== null) for (let i = 0; i < 32; i++) if (rand() < 0.5) acked.push((newest - 1 - i + 4096) % 4096);
    const fb = new Feedback(newest, acked, rand() < 0.3);
    const bytes = fb.encode();
    const back = Feedback.decode(bytes);
    if (bytes.length !== 9 || !same({ ...back }, { ...fb }) || hex(back.encode()) !== hex(bytes)) {
      fail(`round trip of ${JSON.stringify(fb)}`);
    }
  }
});

// --- schedules -----------------------------------------------------------------------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The other runtime's schedule through the JS encoder and decoder: the differences. */
function replay(scenario, fail) {
  const profile = PROFILES.get(scenario.profile);
  const motions = scenario.motions.map((m) => (m === null ? null : makeMotion(m)));
  const { steps, timestamps } = scenario;
  const encoder = new MotionEncoder({ profile });
  const decoder = new MotionDecoder();
  steps.forEach((step, i) => {
    for (const packet of step.feedbackIn) encoder.onFeedback(unhex(packet));
    const packet = hex(encoder.encode(motions[i], timestamps[i]));
    if (packet !== step.packet) fail(`frame ${i}: packet ${packet} != ${step.packet}`);
    for (const d of step.deliveries) {
      const shown = flat(decoder.decode(unhex(steps[d.frame].packet)));
      if (decoder.lastStatus !== d.status) fail(`frame ${i}: decoding frame ${d.frame} gave ${decoder.lastStatus}, expected ${d.status}`);
      else if (!same(shown, d.shown)) fail(`frame ${i}: decoded motion of frame ${d.frame} differs`);
    }
    if (!step.deliveries.length) {
      const shown = decoder.senderHasFace ? flat(decoder.conceal(timestamps[i])) : null;
      if (!same(shown, step.shown)) fail(`frame ${i}: concealment differs`);
    }
    const reply = decoder.feedback();
    if ((reply === null ? null : hex(reply)) !== step.feedbackOut) fail(`frame ${i}: feedback ${reply && hex(reply)} != ${step.feedbackOut}`);
  });
}

/** JS's own lossy loop, as lpstream.protocol.FeedbackLoop runs (feedback 3 frames late). */
function jsLoop(scenario, { loss, reorder, seed, keyframeAt }, delay = 3) {
  const profile = PROFILES.get(scenario.profile);
  const motions = scenario.motions.map((m) => (m === null ? null : makeMotion(m)));
  const rand = mulberry32(seed);
  const encoder = new MotionEncoder({ profile });
  const decoder = new MotionDecoder();
  const replies = [];
  let inFlight = [];
  const steps = [];
  motions.forEach((motion, frame) => {
    const t = scenario.timestamps[frame];
    if (frame === keyframeAt) replies.push([frame - 1 + delay, encodeKeyframeRequest()]);
    const applied = [];
    while (replies.length && replies[0][0] <= frame) {
      const packet = replies.shift()[1];
      applied.push(hex(packet));
      encoder.onFeedback(packet);
    }
    const packet = encoder.encode(motion, t);
    if (!(rand() < loss)) {
      let d = 0;
      if (reorder > 0 && rand() < reorder) d = 1 + Math.min(2, Math.floor(rand() * 3));
      inFlight.push([frame + d, packet, frame]);
    }
    const due = inFlight.filter((p) => p[0] <= frame).sort((a, b) => a[0] - b[0]);
    inFlight = inFlight.filter((p) => p[0] > frame);
    const deliveries = due.map(([, data, source]) => {
      const shown = decoder.decode(data);
      return { frame: source, status: decoder.lastStatus, shown: flat(shown) };
    });
    const shown = deliveries.length
      ? deliveries[deliveries.length - 1].shown
      : decoder.senderHasFace ? flat(decoder.conceal(t)) : null;
    const reply = decoder.feedback();
    if (reply !== null) replies.push([frame + delay, reply]);
    steps.push({ feedbackIn: applied, packet: hex(packet), deliveries, shown, feedbackOut: reply && hex(reply) });
  });
  return { ...scenario, steps };
}

for (const scenario of input.scenarios) check(`python→js ${scenario.name}`, (fail) => replay(scenario, fail));
const jsRuns = input.scenarios.map((scenario) => jsLoop(scenario, scenario.js));
check("js loop self-consistent", (fail) => jsRuns.forEach((run) => replay(run, fail)));

// --- portrait transfer ---------------------------------------------------------------
const portrait = input.portrait;
const image = unhex(portrait.image);
const portraitErrors = [];
const portraitFail = (m) => portraitErrors.length < 20 && portraitErrors.push(m);
const jsSender = await PortraitSender.create(image);
const portraitFromJs = { offer: hex(jsSender.offer()), chunks: jsSender.onReply(unhex(portrait.need)).map(hex) };
try {
  const receiver = new PortraitReceiver();
  const first = await receiver.onPacket(unhex(portrait.offer));
  if (!same(first.map(hex), [portrait.need])) portraitFail("offer not answered with NEED");
  const replies = [];
  for (const chunk of portrait.chunks) replies.push(...(await receiver.onPacket(unhex(chunk))));
  if (!same(replies.map(hex), [portrait.accepted])) portraitFail(`chunks answered ${replies.map(hex)}`);
  if (!receiver.has(jsSender.sha256) || hex(receiver.image(jsSender.sha256)) !== portrait.image) portraitFail("not cached");
  const again = await receiver.onPacket(unhex(portrait.offer));
  if (!same(again.map(hex), [portrait.accepted])) portraitFail("cached portrait re-offered: not ACCEPTED");
  // A corrupted transfer is rejected with BAD_HASH (a fresh receiver).
  const fresh = new PortraitReceiver();
  await fresh.onPacket(unhex(portrait.offer));
  const out = [];
  for (const [i, chunk] of portrait.chunks.entries()) {
    const bytes = unhex(chunk);
    if (i === 1) bytes[100] ^= 0x55;
    out.push(...(await fresh.onPacket(bytes)));
  }
  if (out.length !== 1 || fresh.lastRejection?.code !== RejectCode.BAD_HASH) portraitFail("corrupted transfer not BAD_HASH");
  const small = new PortraitReceiver({ maxSide: 100 });
  await small.onPacket(unhex(portrait.offer));
  for (const chunk of portrait.chunks) await small.onPacket(unhex(chunk));
  if (small.lastRejection?.code !== RejectCode.TOO_MANY_PIXELS) portraitFail("large portrait not TOO_MANY_PIXELS");
  // Two senders of the same portrait at once (two participants with the same picture): both
  // get ACCEPTED, nothing throws — also when the chunks are handled without waiting for each
  // other (as a page's message events are), the later ones arriving while the first check runs.
  for (const wait of [true, false]) {
    const twice = new PortraitReceiver();
    await twice.onPacket(unhex(portrait.offer));
    await twice.onPacket(unhex(portrait.offer));
    const handled = [];
    for (const chunk of portrait.chunks) {
      for (let sender = 0; sender < 2; sender++) {
        const result = twice.onPacket(unhex(chunk)).then((r) => r.map((reply) => [sender, hex(reply)]));
        handled.push(wait ? await result : result);
      }
    }
    const answers = (await Promise.all(handled)).flat();
    if (!same(answers, [[0, portrait.accepted], [1, portrait.accepted]])) {
      portraitFail(`same portrait from two senders (wait ${wait}) answered ${JSON.stringify(answers)}`);
    }
  }
  // The JS sender against Python's replies.
  if (jsSender.onReply(unhex(portrait.accepted)).length || !jsSender.accepted) portraitFail("ACCEPTED not taken");
  try {
    jsSender.onReply(unhex(portrait.rejected));
    portraitFail("REJECTED did not throw");
  } catch (error) {
    if (!(error instanceof PortraitRejectedError) || error.code !== RejectCode.TOO_MANY_PIXELS) portraitFail(`REJECTED threw ${error}`);
  }
} catch (error) {
  portraitFail(`threw ${error?.stack ?? error}`);
}
checks.portrait = portraitErrors;

// --- fuzz: hostile bytes raise ProtocolError and nothing else ---------------------------
const fuzzCases = [];
{
  const errors = [];
  const rand = mulberry32(1234);
  const golden = Object.values(input.fixtures).map(unhex);
  const stream = input.scenarios.flatMap((s) => s.steps.slice(0, 40).map((st) => unhex(st.packet)));
  const seeds = [...golden, ...stream, ...portrait.chunks.slice(0, 2).map(unhex), unhex(portrait.offer)];
  const prefixes = [[], ...input.scenarios.map((s) => s.steps.slice(0, 6).map((st) => st.packet))];
  const laters = input.scenarios.map((s) => s.steps.slice(12, 40).map((st) => unhex(st.packet)));
  const mutate = (bytes) => {
    const choice = rand();
    if (choice < 0.2) return Uint8Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256));
    if (choice < 0.4) return bytes.slice(0, Math.floor(rand() * bytes.length));
    const out = Uint8Array.from(bytes);
    const flips = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < flips && out.length; i++) out[Math.floor(rand() * out.length)] ^= 1 << Math.floor(rand() * 8);
    if (choice > 0.9 && out.length > 1) out[0] = 1; // keep the version: reach the bodies
    return out;
  };
  const only = async (label, bytes, call) => {
    try {
      await call();
    } catch (error) {
      if (!(error instanceof ProtocolError) && errors.length < 20) errors.push(`${label} ${hex(bytes)}: ${error?.stack ?? error}`);
    }
  };
  const receiver = new PortraitReceiver();
  const encoder = new MotionEncoder();
  for (let n = 0; n < 4000; n++) {
    const prefix = prefixes[n % prefixes.length];
    const later = laters[n % laters.length];
    // Every 8th: an intact packet whose reference the prefix never saw (CONCEALED/WAITING).
    const bytes = n % 8 === 0 ? later[Math.floor(rand() * later.length)] : mutate(seeds[Math.floor(rand() * seeds.length)]);
    const decoder = new MotionDecoder();
    for (const p of prefix) decoder.decode(unhex(p));
    let result;
    try {
      const shown = decoder.decode(bytes);
      result = { status: decoder.lastStatus, shown: flat(shown) };
    } catch (error) {
      if (!(error instanceof ProtocolError) && errors.length < 20) errors.push(`decode ${hex(bytes)}: ${error?.stack ?? error}`);
      result = { error: true };
    }
    if (n < 800) fuzzCases.push({ prefix, packet: hex(bytes), result });
    await only("fresh decode", bytes, () => new MotionDecoder().decode(bytes));
    await only("parse", bytes, () => MotionPacket.parse(bytes));
    await only("decodeMessage", bytes, () => decodeMessage(bytes));
    await only("feedback", bytes, () => Feedback.decode(bytes));
    await only("onFeedback", bytes, () => encoder.onFeedback(bytes));
    await only("portrait", bytes, () => receiver.onPacket(bytes));
  }
  for (const bad of [null, undefined, "text", [1, 2], 42, new ArrayBuffer(4)]) {
    await only("non-bytes", new Uint8Array(), () => new MotionDecoder().decode(bad));
    await only("non-bytes", new Uint8Array(), () => decodeMessage(bad));
  }
  checks.fuzz = errors;
}

// --- timing (reported, not asserted) --------------------------------------------------
function timeClip(scenario) {
  const profile = PROFILES.get(scenario.profile);
  const motions = scenario.motions.map((m) => (m === null ? null : makeMotion(m)));
  const times = [];
  for (let pass = 0; pass < 3; pass++) {
    const encoder = new MotionEncoder({ profile });
    const decoder = new MotionDecoder();
    const replies = [];
    motions.forEach((motion, frame) => {
      while (replies.length && replies[0][0] <= frame) encoder.onFeedback(replies.shift()[1]);
      const start = process.hrtime.bigint();
      decoder.decode(encoder.encode(motion, scenario.timestamps[frame]));
      const end = process.hrtime.bigint();
      if (pass === 2) times.push(Number(end - start) / 1e6);
      const reply = decoder.feedback();
      if (reply) replies.push([frame + 3, reply]);
    });
  }
  times.sort((a, b) => a - b);
  return { frames: times.length, medianMs: times[Math.floor(times.length / 2)], p95Ms: times[Math.floor(times.length * 0.95)] };
}
const timing = Object.fromEntries(input.scenarios.map((s) => [s.name, timeClip(s)]));
for (const [name, t] of Object.entries(timing)) {
  console.log(`JS encode+decode ${name}: median ${t.medianMs.toFixed(3)} ms, p95 ${t.p95Ms.toFixed(3)} ms (${t.frames} frames)`);
}

writeFileSync(outputPath, JSON.stringify({ checks, jsRuns, fuzzCases, portraitFromJs, timing }));
