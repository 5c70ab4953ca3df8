// What a VP8 call of this camera would carry, measured in this page once: a clone of the
// camera track is encoded by a pair of local RTCPeerConnections (loopback, no server), VP8
// only, at the camera's own size and rate, for a few seconds; the sending side's getStats()
// gives the bytes on the wire the same way link_stats.js counts the call's link: the selected
// candidate pair's bytes plus 28 bytes of IPv4 + UDP header per packet, up (RTP, RTCP, DTLS,
// STUN) and back (the receiver's RTCP feedback). The first `warmupMs` are left out (the
// bandwidth estimate ramps up from its start value), the next `windowMs` are the figure.

const IP_UDP_HEADER_BYTES = 28;

function vp8Only(transceiver) {
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  const chosen = codecs.filter((c) => ["video/vp8", "video/rtx"].includes(c.mimeType.toLowerCase()));
  if (!chosen.some((c) => c.mimeType.toLowerCase() === "video/vp8")) throw new Error("this browser has no VP8 encoder");
  transceiver.setCodecPreferences(chosen);
}

/** The sending side's counters: wire bytes/packets both ways and what the encoder did. */
async function sample(pc) {
  const report = await pc.getStats();
  const out = { at: performance.now(), up: 0, down: 0, packetsUp: 0, packetsDown: 0, rtp: 0,
    frames: 0, width: 0, height: 0, fps: 0, codec: null, available: NaN };
  let pair = null;
  report.forEach((stat) => {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId) || pair;
  });
  report.forEach((stat) => {
    if (!pair && stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") pair = stat;
    if (stat.type === "outbound-rtp" && stat.kind === "video") {
      out.rtp += (stat.bytesSent || 0) + (stat.headerBytesSent || 0);
      out.frames += stat.framesEncoded || 0;
      out.width = stat.frameWidth || out.width;
      out.height = stat.frameHeight || out.height;
      out.fps = stat.framesPerSecond || out.fps;
      const codec = stat.codecId && report.get(stat.codecId);
      if (codec) out.codec = codec.mimeType;
    }
  });
  if (pair) {
    out.packetsUp = pair.packetsSent || 0;
    out.packetsDown = pair.packetsReceived || 0;
    out.up = (pair.bytesSent || 0) + IP_UDP_HEADER_BYTES * out.packetsUp;
    out.down = (pair.bytesReceived || 0) + IP_UDP_HEADER_BYTES * out.packetsDown;
    out.available = pair.availableOutgoingBitrate ?? NaN;
  }
  return out;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function connect(sender, receiver, timeoutMs) {
  sender.onicecandidate = (e) => e.candidate && receiver.addIceCandidate(e.candidate).catch(() => {});
  receiver.onicecandidate = (e) => e.candidate && sender.addIceCandidate(e.candidate).catch(() => {});
  await sender.setLocalDescription(await sender.createOffer());
  await receiver.setRemoteDescription(sender.localDescription);
  await receiver.setLocalDescription(await receiver.createAnswer());
  await sender.setRemoteDescription(receiver.localDescription);
  const deadline = performance.now() + timeoutMs;
  while (sender.connectionState !== "connected") {
    if (sender.connectionState === "failed" || performance.now() > deadline) {
      throw new Error(`local VP8 pair did not connect (${sender.connectionState})`);
    }
    await sleep(50);
  }
}

/**
 * Encode `track` (a camera track; cloned, the original is untouched) as a VP8 call would.
 * @returns {Promise<{upKbps: number, downKbps: number, rtpKbps: number, packetsPerSecond: number,
 *   seconds: number, frames: number, width: number, height: number, fps: number,
 *   codec: string, availableKbps: number}>} rates over the window, from getStats only.
 */
export async function measureVp8(track, { warmupMs = 2000, windowMs = 4000, timeoutMs = 10000 } = {}) {
  const sender = new RTCPeerConnection();
  const receiver = new RTCPeerConnection();
  const clone = track.clone();
  try {
    vp8Only(sender.addTransceiver(clone, { direction: "sendonly" }));
    await connect(sender, receiver, timeoutMs);
    await sleep(warmupMs);
    const first = await sample(sender);
    await sleep(windowMs);
    const last = await sample(sender);
    const seconds = (last.at - first.at) / 1000;
    const kbps = (bytes) => (bytes * 8) / 1000 / seconds;
    const frames = last.frames - first.frames;
    if (frames <= 0 || last.up <= first.up) throw new Error("the local VP8 pair sent no frames");
    return {
      upKbps: kbps(last.up - first.up),
      downKbps: kbps(last.down - first.down),
      rtpKbps: kbps(last.rtp - first.rtp),
      packetsPerSecond: (last.packetsUp - first.packetsUp) / seconds,
      seconds,
      frames,
      width: last.width,
      height: last.height,
      fps: frames / seconds,
      codec: last.codec,
      availableKbps: last.available / 1000,
    };
  } finally {
    clone.stop();
    sender.close();
    receiver.close();
  }
}
