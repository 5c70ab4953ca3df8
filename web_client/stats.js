// The numbers on each tile: what the node measured, plus what only the browser can see
// (network round trip, jitter buffer) for the end-to-end latency estimate.

const fmt = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : "–");

/** Round trip to the node and per-slot receive delay, from this browser's getStats(). */
export async function browserStats(pc, previous = {}) {
  const report = await pc.getStats();
  const result = { rttMs: NaN, inbound: new Map(), motionKbps: NaN, raw: report };
  // inbound-rtp names its transceiver by `mid` (Chromium) or by `trackIdentifier` (both).
  const transceivers = pc.getTransceivers();
  const slotByMid = new Map(transceivers.map((t, i) => [t.mid, i]));
  const slotByTrack = new Map(transceivers.map((t, i) => [t.receiver.track.id, i]));
  report.forEach((stat) => {
    if (stat.type === "candidate-pair" && stat.nominated && stat.currentRoundTripTime !== undefined) {
      result.rttMs = stat.currentRoundTripTime * 1000;
    }
    if (stat.type === "inbound-rtp" && stat.kind === "video") {
      const slot = stat.mid !== undefined ? slotByMid.get(stat.mid) : slotByTrack.get(stat.trackIdentifier);
      const buffered = stat.jitterBufferEmittedCount
        ? (stat.jitterBufferDelay / stat.jitterBufferEmittedCount) * 1000 : NaN;
      result.inbound.set(slot, { fps: stat.framesPerSecond, jitterMs: buffered, bytes: stat.bytesReceived });
    }
  });
  return result;
}

/** How this page lines up a tile's mouth with its voice (keypoint_downlink.syncFigures). */
function describeSync(sync) {
  if (!sync) return "lip sync off";
  if (sync.voiceClock === 0 && sync.arrival === 0) return "lip sync: waiting for motion";
  if (!Number.isFinite(sync.lateP50)) return "lip sync: by arrival + the voice's wait (no voice clock)";
  const lead = -sync.lateP50;
  return `lip sync: on the voice clock · motion arrives ${fmt(Math.abs(lead), 0)} ms ${lead >= 0 ? "before" : "after"}` +
    ` its sound (median) · voice held ${fmt(sync.holdMs, 0)} ms`;
}

export function renderTileStats(element, tile, local, page = null) {
  if (page) { // rendered by this page from relayed motion
    element.innerHTML =
      `<span class="good">motion ${fmt(tile.motion_kbps, 2)} kbit/s</span> relayed by the node\n` +
      `rendered here: ${page.frames} frames · ${fmt(page.renderMs)} ms each\n` +
      `${describeSync(page.sync)}\n` +
      `${tile.backend} · rtt ${fmt(local.rttMs, 0)} ms`;
    return;
  }
  const inbound = local.inbound.get(tile.slot) || {};
  // camera frame → node (≈ half the sender's round trip, its camera on the same node)
  // + node processing + node → us (half our round trip) + our jitter buffer.
  const networkMs = Number.isFinite(local.rttMs) ? local.rttMs : 0;
  const e2e = tile.node_latency_ms + networkMs + (inbound.jitterMs || 0);
  const ratio = tile.motion_kbps > 0 ? tile.camera_kbps / tile.motion_kbps : NaN;
  element.innerHTML =
    `<span class="good">motion ${fmt(tile.motion_kbps, 2)} kbit/s</span>` +
    ` · video ${fmt(tile.camera_kbps, 0)} kbit/s (${fmt(ratio, 0)}×)\n` +
    `${fmt(tile.fps)} fps · latency ≈${fmt(e2e, 0)} ms (node ${fmt(tile.node_latency_ms, 0)})\n` +
    `${tile.backend} · render ${fmt(tile.render_ms)} ms · shown ${fmt(inbound.fps)} fps`;
}

export function renderSelfStats(element, self, backend, local, own = null) {
  if (own) {
    element.textContent =
      `${own}\nyou send ${fmt(self.motion_kbps, 2)} kbit/s motion, ${fmt(self.sender_fps)} fps\n` +
      `${backend} · rtt ${fmt(local.rttMs, 0)} ms`;
    return;
  }
  element.textContent =
    `camera ${fmt(self.camera_fps)} fps = ${fmt(self.camera_kbps, 0)} kbit/s as video\n` +
    `you send ${fmt(self.motion_kbps, 2)} kbit/s motion, ${fmt(self.sender_fps)} fps\n` +
    `${backend} · extract ${fmt(self.extract_ms)} ms · rtt ${fmt(local.rttMs, 0)} ms`;
}
