// Opus for speech on a thin link, as SDP says it (the same table as lpstream/node/opus_sdp.py,
// which explains each figure): applied to this page's offer, so the node knows how this page
// wants to receive; the node's answer tells this page's encoder how to send.

export const OPUS_SPEECH = {
  minptime: "10",
  ptime: "60",
  maxaveragebitrate: "16000",
  maxplaybackrate: "16000",
  "sprop-maxcapturerate": "16000",
  stereo: "0",
  "sprop-stereo": "0",
  useinbandfec: "1",
  usedtx: "1",
};
export const PTIME_MS = 60;

/** `sdp` with every Opus payload type's fmtp set to `params` and `a=ptime` per audio section. */
export function tuneOpus(sdp, params = OPUS_SPEECH, ptimeMs = PTIME_MS) {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(eol);
  const trailing = lines.at(-1) === "";
  if (trailing) lines.pop();
  const sections = [[]];
  for (const line of lines) {
    if (line.startsWith("m=")) sections.push([]);
    sections.at(-1).push(line);
  }
  const out = [...sections[0]];
  for (const section of sections.slice(1)) {
    out.push(...(section[0].startsWith("m=audio") ? tuneSection(section, params, ptimeMs) : section));
  }
  return out.join(eol) + (trailing ? eol : "");
}

const RTPMAP = /^a=rtpmap:(\d+) opus\/48000/i;

function tuneSection(section, wanted, ptimeMs) {
  const opus = new Set(section.map((l) => RTPMAP.exec(l)).filter(Boolean).map((m) => m[1]));
  const out = [];
  for (const line of section) {
    if (line.startsWith("a=ptime:") || line.startsWith("a=maxptime:")) continue;
    if (line.startsWith("a=fmtp:") && opus.has(line.slice(7).split(" ")[0])) continue;
    out.push(line);
    const match = RTPMAP.exec(line);
    if (match) {
      const pt = match[1];
      const existing = section.find((l) => l.startsWith(`a=fmtp:${pt} `)) || `a=fmtp:${pt} `;
      const params = {};
      for (const item of existing.slice(existing.indexOf(" ") + 1).split(";")) {
        const [key, value = ""] = item.trim().split("=");
        if (key) params[key] = value;
      }
      Object.assign(params, wanted);
      out.push(`a=fmtp:${pt} ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(";")}`);
    }
  }
  if (opus.size) out.push(`a=ptime:${ptimeMs}`);
  return out;
}
