// lpstream web client: deep link /?room=R&name=N&autojoin=1[&token=T] joins with no clicks.

import { NodeCall } from "./call.js";
import { KeypointDownlink } from "./keypoint_downlink.js";
import { KeypointUplink } from "./keypoint_uplink.js";
import { describeLink, describeVp8, linkStats } from "./link_stats.js";
import { fromFile, sendPortrait, snapshot } from "./portrait.js";
import { Signaling } from "./signaling.js";
import { browserStats, renderSelfStats, renderTileStats } from "./stats.js";
import { VoiceLevels } from "./voice_level.js";
import { measureVp8 } from "./vp8_reference.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// Everything a test (or a curious user in the console) may want to look at.
const state = (window.lpstream = {
  phase: "idle", backend: "", id: null, slots: [], stats: null, errors: [], portrait: null,
  restarts: 0, // media connections rebuilt within the signaling session (the others see nothing)
  rejoins: 0, // full rejoins scheduled (new signaling session)
});

let config;
let signaling = null;
let call = null;
let camera = null;
let microphone = null;
let speakingTimer = null;
let badgeTimer = null;
let statsTimer = null;
let leaving = false;
let retryTimer = null;
let restartTimer = null;
let kinds = null;
const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 8000;
let retryDelayMs = FIRST_RETRY_MS;
let voiceLevels = null;

function banner(text, kind = "error") {
  const element = $("banner");
  element.textContent = text;
  element.className = kind;
  element.hidden = !text;
  if (kind === "error" && text) state.errors.push(text);
}

function tileFor(slot) {
  let tile = document.querySelector(`.tile.remote[data-slot="${slot}"]`);
  if (!tile) {
    tile = $("tile-template").content.firstElementChild.cloneNode(true);
    tile.dataset.slot = slot;
    tile.hidden = true;
    $("tiles").append(tile);
  }
  return tile;
}

function currentControls() {
  return {
    type: "controls",
    eye: $("eye-follow").checked ? null : Number($("eye").value),
    lip: $("lip-follow").checked ? null : Number($("lip").value),
    head: Number($("head").value),
    stitching: $("stitching").checked,
    voice: $("voice-mouth").checked,
  };
}

function wireControls() {
  for (const id of ["eye", "lip", "head", "stitching", "eye-follow", "lip-follow", "voice-mouth"]) {
    $(id).addEventListener("input", () => {
      $("eye").disabled = $("eye-follow").checked;
      $("lip").disabled = $("lip-follow").checked;
      $("head-value").textContent = Number($("head").value).toFixed(1);
      if (call) call.send(currentControls());
    });
  }
  for (const radio of document.querySelectorAll("input[name=portrait]")) {
    radio.addEventListener("change", () => {
      $("portrait-file").hidden = radio.value !== "upload" || !radio.checked;
      if (call && radio.checked && radio.value === "snapshot") uploadPortrait();
    });
  }
  // A new portrait mid-call replaces the old one for everybody.
  $("portrait-file").addEventListener("change", () => { if (call) uploadPortrait(); });
}

async function startCamera() {
  if (camera) return camera;
  camera = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 25, max: 30 } },
    audio: false,
  });
  $("preview").srcObject = camera;
  setCameraOff(Boolean(state.cameraOff)); // turned off before joining: stays off
  await new Promise((resolve) => {
    const video = $("preview");
    if (video.videoWidth) resolve();
    else video.addEventListener("loadeddata", resolve, { once: true });
  });
  return camera;
}

// Speech, not music: the browser's echo canceller, noise suppressor and gain control all on.
const MICROPHONE = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };

/** The microphone, or null: a page without one (absent, denied) still joins, and hears. */
async function startMicrophone() {
  if (microphone) return microphone;
  try {
    microphone = await navigator.mediaDevices.getUserMedia({ audio: MICROPHONE, video: false });
    $("mic-banner").hidden = true;
  } catch (error) {
    microphone = null;
    $("mic-banner").textContent = `no microphone (${error.message}): you hear the others, they do not hear you`;
    $("mic-banner").hidden = false;
  }
  state.microphone = Boolean(microphone);
  $("mute").disabled = !microphone;
  return microphone;
}

function setMuted(muted) {
  state.muted = muted;
  // A disabled track sends silence (with DTX: one small packet every 400 ms), and no
  // renegotiation is needed to unmute.
  if (microphone) for (const track of microphone.getAudioTracks()) track.enabled = !muted;
  $("mute").setAttribute("aria-pressed", String(muted));
  $("mute").textContent = muted ? "Unmute microphone" : "Mute microphone";
}

function setCameraOff(off) {
  state.cameraOff = off;
  // A disabled track: the keypoint uplink stops sending motion, a camera uplink sends black
  // (no face); either way the others see the portrait at rest, not a frozen frame.
  if (camera) for (const track of camera.getVideoTracks()) track.enabled = !off;
  $("camera-off").setAttribute("aria-pressed", String(off));
  $("camera-off").textContent = off ? "Turn camera on" : "Turn camera off";
}

// A voice this loud (inbound audioLevel, 0–1) lights its tile.
const SPEAKING_LEVEL = 0.03;

async function pollSpeaking() {
  if (!call) return;
  const levels = await call.audioLevels();
  state.audioLevels = levels;
  levels.forEach((level, slot) => { tileFor(slot).dataset.speaking = level > SPEAKING_LEVEL ? "yes" : "no"; });
}

/** The "mouth follows voice" badge of each tile, while the mouth is synthesised from sound:
 * this page's renderer says so (keypoint downlink), else the node's stats (video downlink). */
function showVoiceMouths() {
  const poses = [];
  for (let slot = 0; slot < config.slots; slot += 1) {
    let pose = kinds && kinds.downlink.tilePose ? kinds.downlink.tilePose(slot) : null;
    if (kinds && !kinds.downlink.tilePose && state.stats) {
      const tile = state.stats.tiles.find((t) => t.slot === slot);
      // The node's stats are up to 2 s old; a switch turned off here hides the badge at once.
      pose = tile ? { neutral: null, voice: Boolean(tile.voice_mouth) && $("voice-mouth").checked } : null;
    }
    poses.push(pose);
    tileFor(slot).querySelector(".voice-badge").hidden = !(pose && pose.voice);
  }
  state.tilePoses = poses;
}

async function portraitBytes() {
  const mode = document.querySelector("input[name=portrait]:checked").value;
  if (mode === "upload") return fromFile($("portrait-file").files[0]);
  await new Promise((resolve) => setTimeout(resolve, 500)); // let auto-exposure settle
  return snapshot($("preview"));
}

/** Send the portrait; a camera snapshot is retaken if the node finds no face in it. */
async function uploadPortrait() {
  const mode = document.querySelector("input[name=portrait]:checked").value;
  const attempts = mode === "snapshot" ? 6 : 1;
  state.portraitOk = false;
  for (let attempt = 1; attempt <= attempts && call; attempt += 1) {
    try {
      const bytes = await portraitBytes();
      const verdict = waitForPortraitVerdict(call);
      state.portrait = await sendPortrait(call.control, bytes);
      await verdict;
      state.portraitOk = true;
      banner("", "info");
      return;
    } catch (error) {
      if (attempt === attempts) banner(`portrait: ${error.message}`);
      else await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function waitForPortraitVerdict(current) {
  return new Promise((resolve, reject) => {
    const done = () => {
      current.removeEventListener("portrait-ok", onOk);
      current.removeEventListener("error", onError);
    };
    const onOk = () => { done(); resolve(); };
    const onError = (event) => {
      if (event.detail.code !== "portrait") return;
      done();
      reject(new Error(event.detail.message));
    };
    current.addEventListener("portrait-ok", onOk);
    current.addEventListener("error", onError);
  });
}

function onSlots(slots) {
  state.slots = slots;
  const used = new Set(slots.map((s) => s.slot));
  for (let slot = 0; slot < config.slots; slot += 1) {
    const tile = tileFor(slot);
    tile.hidden = !used.has(slot);
  }
  for (const { slot, name } of slots) {
    const tile = tileFor(slot);
    tile.dataset.name = name;
    labelTile(tile, false);
  }
}

// A sender whose camera shows no face for this long is said to be away (shorter dropouts
// are bridged by the tracker and are not worth a flickering label).
const FACE_HIDDEN_S = 1.0;

function labelTile(tile, faceHidden) {
  tile.dataset.face = faceHidden ? "hidden" : "visible";
  tile.querySelector(".label").textContent = faceHidden
    ? `${tile.dataset.name} — face not visible (portrait at rest)`
    : `${tile.dataset.name} — avatar rendered from keypoints`;
}

function showFaceVisibility(stats) {
  for (const tile of stats.tiles) {
    const element = tileFor(tile.slot);
    if (element.dataset.name === tile.name) labelTile(element, tile.face_hidden_s >= FACE_HIDDEN_S);
  }
  const hidden = stats.self.face_hidden_s >= FACE_HIDDEN_S;
  const local = document.querySelector(".tile.local");
  local.dataset.face = hidden ? "hidden" : "visible";
  local.querySelector(".label").textContent = hidden
    ? "you — your face is not visible: the others see your portrait at rest"
    : "you — the node turns your camera into motion; the others see your portrait animated by it";
}

let linkSample = null;

/** Once per page, in keypoint uplink mode: what a VP8 call of this camera would carry, for
 * the overlay (measured here, vp8_reference.js). */
function measureVp8Once() {
  if (state.vp8 || !camera) return;
  state.vp8 = { pending: true };
  measureVp8(camera.getVideoTracks()[0])
    .then((result) => { state.vp8 = result; })
    .catch((error) => { state.vp8 = { error: error.message }; });
}

async function pollStats() {
  const current = call;
  if (!current) return;
  linkSample = await linkStats(current.pc, linkSample);
  state.link = linkSample.rates;
  if (!state.stats) return;
  const local = await browserStats(current.pc);
  const stats = state.stats; // a hang-up during the awaits left it null
  if (!stats || call !== current) return;
  state.browser = { rttMs: local.rttMs };
  const own = kinds && kinds.uplink.kind === "keypoints"
    ? `you send motion from this page, extract ${kinds.uplink.medianExtractMs().toFixed(1)} ms`
    : null;
  renderSelfStats($("self-stats"), stats.self, stats.backend, local, own);
  $("self-stats").textContent += `\n${describeLink(linkSample.rates)}`;
  if (state.vp8) $("self-stats").textContent += `\n${describeVp8(state.vp8, linkSample.rates)}`;
  for (const tile of stats.tiles) {
    const page = kinds && kinds.downlink.tileFigures ? kinds.downlink.tileFigures(tile.slot) : null;
    renderTileStats(tileFor(tile.slot).querySelector(".overlay"), tile, local, page);
  }
}

function webgl2Available() {
  try {
    return Boolean(document.createElement("canvas").getContext("webgl2"));
  } catch {
    return false;
  }
}

/** The uplink and downlink to ask the node for: the URL or the switches force one, else the
 * first the node offers that this page can run; the reasons are shown to the user. */
async function chooseKinds(kept = null) {
  const offered = { up: config.uplinks || ["camera"], down: config.downlinks || ["video"] };
  const forced = {
    up: params.get("uplink") || ($("uplink-kind").value !== "auto" ? $("uplink-kind").value : null),
    down: params.get("downlink") || ($("downlink-kind").value !== "auto" ? $("downlink-kind").value : null),
  };
  const why = [];
  let uplink = { kind: "camera" };
  const upWanted = forced.up || offered.up[0];
  if (kept) { // a restart: the same uplink, and its encoder, go on (the others' decoders too)
    uplink = kept.uplink;
    why.push(kept.why[0]);
  } else if (upWanted === "keypoints" && offered.up.includes("keypoints")) {
    try {
      uplink = await KeypointUplink.create();
      why.push(forced.up ? "keypoints up: asked for" : "keypoints up: this page finds your face");
    } catch (error) {
      why.push(`camera up: face landmarks cannot run in this page (${error.message})`);
    }
  } else {
    why.push(offered.up.includes("keypoints") ? "camera up: asked for" : `camera up: the ${config.backend || "node's"} backend needs your camera`);
  }
  let downlink = { kind: "video" };
  const downWanted = forced.down || offered.down[0];
  if (downWanted === "keypoints" && offered.down.includes("keypoints")) {
    if (webgl2Available()) {
      voiceLevels ??= new VoiceLevels();
      downlink = new KeypointDownlink({
        canvasFor: (slot) => tileFor(slot).querySelector("canvas"),
        controls: () => {
          const c = currentControls();
          return { eyeOpen: c.eye, lipOpen: c.lip, headMotion: c.head, stitching: c.stitching, voiceMouth: c.voice };
        },
        voiceLevel: (slot) => (voiceLevels ? voiceLevels.level(slot) : null),
        audioReceiver: (slot) => (call && call.audioTransceivers[slot] ? call.audioTransceivers[slot].receiver : null),
        lipSync: params.get("lipsync") !== "0",
      });
      why.push(forced.down ? "keypoints down: asked for" : "keypoints down: this page renders the others");
    } else {
      why.push("video down: this browser has no WebGL2");
    }
  } else {
    why.push(offered.down.includes("keypoints") ? "video down: asked for" : "video down: the node renders the others");
  }
  return { uplink, downlink, why };
}

function showMode() {
  const up = kinds.uplink.kind;
  const down = kinds.downlink.kind;
  const summary = up === "keypoints" && down === "keypoints"
    ? "only motion crosses your link: your camera stays here, the others are rendered here"
    : up === "keypoints" ? "your motion goes up; the others come down as video"
      : down === "keypoints" ? "your camera goes up as video; the others come down as motion"
        : "video both ways: the node extracts your motion and renders the others";
  $("mode").textContent = `${summary} (${kinds.why.join("; ")})`;
  state.mode = { uplink: up, downlink: down, why: kinds.why };
  for (let slot = 0; slot < config.slots; slot += 1) {
    const tile = tileFor(slot);
    tile.querySelector("video").hidden = down === "keypoints";
    tile.querySelector("canvas").hidden = down !== "keypoints";
  }
}

async function join(event) {
  if (event) event.preventDefault();
  leaving = false;
  clearTimeout(retryTimer);
  retryTimer = null;
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  if (!room || !name) { banner("enter a room and a name"); return; }
  $("join").disabled = true;
  $("leave").disabled = false;
  state.phase = "joining";
  try {
    await startCamera();
  } catch (error) {
    banner(`camera: ${error.message} — allow the camera and join again`);
    leave();
    return;
  }
  try {
    // Afresh at every attempt: a restarted server may run a node of another id, and TURN
    // credentials are minted per fetch.
    config = await loadConfig();
    const url = config.signaling || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    signaling = new Signaling(url);
    await signaling.open();
    signaling.addEventListener("close", () => reconnectSoon("signaling connection lost"));
    // The server is shutting down (draining): say so; the retry after it closes rejoins.
    signaling.addEventListener("notice", (e) => banner(e.detail.message, "info"));
    signaling.addEventListener("error", (e) => {
      banner(`${e.detail.code}: ${e.detail.message}`);
      if (["replaced", "room-full", "bad-token", "name-taken"].includes(e.detail.code)) {
        leaving = true;
        if (state.phase === "in-call") stopTrying(); // e.g. the same name joined elsewhere
      }
    });
    // A name is unique in a room; the secret of our last join makes this one a reconnect.
    const resumeKey = `lpstream-resume:${room}:${name}`;
    signaling.send({
      type: "join", room, name, node: config.node, token: params.get("token") || undefined,
      resume: sessionStorage.getItem(resumeKey) || undefined,
    });
    const joined = await signaling.next("joined");
    sessionStorage.setItem(resumeKey, joined.resume);
    state.id = joined.id;
    // The address bar becomes this call's deep link: reloading the tab rejoins it.
    history.replaceState(null, "", `?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}` +
      (params.get("token") ? `&token=${encodeURIComponent(params.get("token"))}` : "") +
      ["uplink", "downlink"].map((k) => (params.get(k) ? `&${k}=${encodeURIComponent(params.get(k))}` : "")).join("") +
      "&autojoin=1");

    await startMicrophone();
    await connectMedia(joined.node);
  } catch (error) {
    banner(error.message);
    if (leaving) stopTrying(); // room full, bad token, replaced: retrying cannot help
    else reconnectSoon(error.message);
  }
}

/** A peer connection to our node, over the signaling session we have. A restart keeps the
 * participant in the room (same id, tile, portrait on the node): the others see no change. */
async function connectMedia(nodeId, kept = null) {
  const restart = Boolean(kept);
  const track = camera.getVideoTracks()[0];
  kinds = await chooseKinds(kept);
  if (!signaling) { closeMedia(); return; } // hung up while a keypoint uplink loaded
  showMode();
  const current = (call = new NodeCall({
    iceServers: config.iceServers, slots: config.slots, uplink: kinds.uplink,
    downlink: kinds.downlink, cameraTrack: track, cameraStream: camera, microphone,
  }));
  // Motion stamped on the microphone's RTP clock (audio_clock.js); before the offer.
  if (kinds.uplink.useAudioClock && microphone && params.get("lipsync") !== "0" && call.audioTransceivers[0]) {
    kinds.uplink.audioClock.attach(call.audioTransceivers[0].sender);
  }
  const mine = kinds;
  setMuted(Boolean(state.muted));
  state.call = call;
  state.kinds = kinds;
  for (const type of ["source", "face"]) {
    call.addEventListener(type, (e) => { if (mine.downlink.onControl) mine.downlink.onControl(e.detail); });
  }
  call.addEventListener("track", (e) => { tileFor(e.detail.slot).querySelector("video").srcObject = e.detail.stream; });
  call.addEventListener("audio", (e) => {
    tileFor(e.detail.slot).querySelector("audio").srcObject = e.detail.stream;
    if (voiceLevels) voiceLevels.attach(e.detail.slot, e.detail.stream);
  });
  call.addEventListener("hello", (e) => { state.backend = e.detail.backend; });
  call.addEventListener("slots", (e) => {
    onSlots(e.detail.slots);
    if (mine.downlink.onSlots) mine.downlink.onSlots(e.detail.slots);
  });
  call.addEventListener("stats", (e) => { state.stats = e.detail; showFaceVisibility(e.detail); });
  call.addEventListener("error", (e) => {
    if (e.detail.code !== "portrait") banner(`${e.detail.code}: ${e.detail.message}`);
  });
  call.addEventListener("portrait-ok", () => banner("", "info"));
  call.addEventListener("open", () => {
    current.send(currentControls());
    // After a restart the node still has our portrait; a new node (full rejoin) has not.
    if (!restart || !state.portraitOk) uploadPortrait();
    if (mine.uplink.start) mine.uplink.start($("preview"), (message) => current.send(message));
  });
  call.addEventListener("state", (e) => {
    if (e.detail === "connected") {
      clearTimeout(restartTimer);
      restartTimer = null;
      retryDelayMs = FIRST_RETRY_MS;
      state.phase = "in-call";
      banner("", "info");
      if (mine.uplink.kind === "keypoints") measureVp8Once();
    }
  });
  call.addEventListener("stalled", (e) => restartMedia(nodeId, e.detail));
  const answer = signaling.next("signal", 20000);
  const offer = {
    kind: "offer", sdp: await call.offer(), uplink: kinds.uplink.kind, downlink: kinds.downlink.kind,
    ...(restart ? { restart: true } : {}),
  };
  signaling.send({ type: "signal", to: nodeId, data: offer });
  const reply = (await answer).data;
  if (call !== current) return; // replaced meanwhile (a rejoin or another restart)
  if (reply.kind === "refused") throw new Error(`the node refused: ${reply.message}`);
  await call.answer(reply.sdp);
  clearInterval(statsTimer);
  statsTimer = setInterval(pollStats, 1000);
  clearInterval(speakingTimer);
  speakingTimer = setInterval(pollSpeaking, 250);
  clearInterval(badgeTimer);
  badgeTimer = setInterval(showVoiceMouths, 100); // no getStats to wait for
}

// A media restart must connect within this long (ms), else the page rejoins from scratch.
const RESTART_TIMEOUT_MS = 20000;

/** The media connection stalled: a new one to the same node over the same signaling session
 * (aiortc cannot restart ICE in place, docs/architecture.md "Recovery"); a full rejoin only
 * if signaling is gone too or the new connection does not come up in time. */
function restartMedia(nodeId, reason) {
  if (leaving || retryTimer) return;
  if (!signaling || !signaling.isOpen() || restartTimer) {
    reconnectSoon(reason);
    return;
  }
  state.restarts += 1;
  const kept = closeMedia(true);
  banner(`${reason}; reconnecting…`, "info");
  state.phase = "reconnecting";
  restartTimer = setTimeout(() => {
    restartTimer = null;
    reconnectSoon("the media connection did not come back");
  }, RESTART_TIMEOUT_MS);
  connectMedia(nodeId, kept).catch((error) => {
    clearTimeout(restartTimer);
    restartTimer = null;
    reconnectSoon(error.message);
  });
}

/** Out of the call but ready to join again (the banner keeps saying why). */
function stopTrying() {
  hangUp();
  $("join").disabled = false;
  $("leave").disabled = true;
}

/** The peer connection and its downlink, not the signaling session; the uplink too unless
 * `keepUplink` (a restart: it is returned, stopped, to go on over the next connection). */
function closeMedia(keepUplink = false) {
  clearInterval(statsTimer);
  clearInterval(speakingTimer);
  clearInterval(badgeTimer);
  const kept = kinds;
  if (kinds) {
    if (keepUplink) { if (kinds.uplink.stop) kinds.uplink.stop(); } else if (kinds.uplink.close) kinds.uplink.close();
    if (kinds.downlink.close) kinds.downlink.close();
    kinds = null;
  }
  if (call) call.close();
  call = null;
  state.call = null;
  linkSample = null;
  return keepUplink ? kept : null;
}

function hangUp() {
  clearTimeout(restartTimer);
  restartTimer = null;
  closeMedia();
  if (signaling) signaling.close();
  signaling = null;
  state.phase = "idle";
  state.stats = null;
  onSlots([]);
}

/** Rejoin from scratch (new signaling session: the others see a leave and a join), after a
 * delay that doubles at each failed attempt up to LAST_RETRY_MS; a connection resets it. */
function reconnectSoon(reason) {
  if (leaving || retryTimer) return;
  hangUp();
  const delay = retryDelayMs;
  retryDelayMs = Math.min(retryDelayMs * 2, LAST_RETRY_MS);
  banner(`${reason}; reconnecting… (in ${(delay / 1000).toFixed(0)} s)`, "info");
  state.phase = "reconnecting";
  state.rejoins += 1;
  retryTimer = setTimeout(() => { retryTimer = null; join(); }, delay);
}

function leave() {
  leaving = true;
  clearTimeout(retryTimer);
  retryTimer = null;
  stopTrying();
  const url = new URL(location.href); // a reload after leaving must not rejoin
  url.searchParams.delete("autojoin");
  history.replaceState(null, "", url);
}

async function loadConfig() {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`cannot load /config.json (${response.status})`);
  state.config = await response.json();
  return state.config;
}

async function main() {
  config = await loadConfig();
  if (params.get("room")) $("room").value = params.get("room");
  $("name").value = params.get("name") || `guest-${Math.floor(Math.random() * 1000)}`;
  wireControls();
  $("join-form").addEventListener("submit", join);
  $("leave").addEventListener("click", leave);
  $("mute").addEventListener("click", () => setMuted(!state.muted));
  $("camera-off").addEventListener("click", () => setCameraOff(!state.cameraOff));
  addEventListener("pagehide", () => { leaving = true; hangUp(); });
  if (params.get("autojoin") === "1") join();
}

main().catch((error) => banner(`cannot start: ${error.message}`));
