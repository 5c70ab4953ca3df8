// What this page's own link carries, up and down, by kind — measured from getStats(), not
// estimated: the selected candidate pair's bytes plus 28 bytes of IPv4 + UDP header per
// packet are the total; RTP (audio, video: payload + RTP headers) and data-channel messages
// (motion, control) are what is inside; the rest is transport overhead (STUN, DTLS, SCTP,
// SRTP tags, acknowledgements, IP/UDP headers).

const IP_UDP_HEADER_BYTES = 28;
const MOTION_CHANNELS = new Set(["motion-up", "motion-down"]);

function totals(report) {
  const sums = {
    up: { total: 0, motion: 0, control: 0, audio: 0, video: 0, packets: 0 },
    down: { total: 0, motion: 0, control: 0, audio: 0, video: 0, packets: 0 },
  };
  let pair = null;
  report.forEach((stat) => {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId) || pair;
  });
  report.forEach((stat) => {
    if (!pair && stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") pair = stat;
    if (stat.type === "outbound-rtp") sums.up[stat.kind] += (stat.bytesSent || 0) + (stat.headerBytesSent || 0);
    if (stat.type === "inbound-rtp") sums.down[stat.kind] += (stat.bytesReceived || 0) + (stat.headerBytesReceived || 0);
    if (stat.type === "data-channel") {
      const kind = MOTION_CHANNELS.has(stat.label) ? "motion" : "control";
      sums.up[kind] += stat.bytesSent || 0;
      sums.down[kind] += stat.bytesReceived || 0;
    }
  });
  if (pair) {
    sums.up.packets = pair.packetsSent || 0;
    sums.down.packets = pair.packetsReceived || 0;
    sums.up.total = (pair.bytesSent || 0) + IP_UDP_HEADER_BYTES * sums.up.packets;
    sums.down.total = (pair.bytesReceived || 0) + IP_UDP_HEADER_BYTES * sums.down.packets;
  }
  return sums;
}

/** kbit/s per direction and kind since `previous` (the value this returned last time). */
export async function linkStats(pc, previous = null) {
  const now = performance.now();
  const sums = totals(await pc.getStats());
  const sample = { at: now, sums, rates: null };
  if (previous) {
    const seconds = (now - previous.at) / 1000;
    const rate = (direction) => {
      const out = {};
      for (const key of Object.keys(sums[direction])) {
        const delta = sums[direction][key] - previous.sums[direction][key];
        out[key] = key === "packets" ? delta / seconds : (delta * 8) / 1000 / seconds;
      }
      out.overhead = Math.max(0, out.total - out.motion - out.control - out.audio - out.video);
      return out;
    };
    if (seconds > 0.2) sample.rates = { up: rate("up"), down: rate("down"), seconds };
  }
  return sample;
}

const fmt = (value) => (Number.isFinite(value) ? value.toFixed(1) : "–");

/** The overlay line for vp8_reference.js's measurement (null: none asked for), next to the
 * live uplink figure `rates` (linkStats().rates, or null before the first period). */
export function describeVp8(reference, rates) {
  if (!reference) return "";
  const what = "a VP8 call of this camera";
  if (reference.pending) return `${what}: measuring here…`;
  if (reference.error) return `${what}: not measured (${reference.error})`;
  const times = rates && rates.up.total > 0 ? ` = ${Math.round(reference.upKbps / rates.up.total)}× your ↑` : "";
  return `${what} would carry ↑ ${fmt(reference.upKbps)} kbit/s (↓ ${fmt(reference.downKbps)} feedback)${times}\n` +
    `          measured here: local loopback pair, ${reference.width}×${reference.height} at ${fmt(reference.fps)} fps, ${fmt(reference.seconds)} s`;
}

export function describeLink(rates) {
  if (!rates) return "your link: measuring…";
  const line = (arrow, r) =>
    `${arrow} ${fmt(r.total)} kbit/s (motion ${fmt(r.motion)}, control ${fmt(r.control)}, ` +
    `audio ${fmt(r.audio)} (${r.total > 0 ? Math.round((100 * r.audio) / r.total) : 0}%), video ${fmt(r.video)}, overhead ${fmt(r.overhead)}; ${fmt(r.packets)} pkt/s)`;
  return `your link ${line("↑", rates.up)}\n          ${line("↓", rates.down)}`;
}
