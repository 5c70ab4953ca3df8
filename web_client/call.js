// One RTCPeerConnection to our media node, shaped by the uplink and downlink kinds
// (docs/protocol.md §9, §12): uplink `camera` sends the camera track, `keypoints` sends motion
// on `motion-up`; downlink `video` receives one avatar track per other participant (slot i =
// transceiver i), `keypoints` receives motion on `motion-down` and portraits on `portraits`.
// A reliable `control` channel carries portrait upload, sliders and stats either way.
// Sound, in every kind: one audio transceiver per tile (slot i = audio transceiver i); the
// first also sends this page's microphone, if it has one. Opus is tuned in the SDP
// (opus_sdp.js).
//
// A connection that fails, or stays disconnected for DISCONNECTED_GRACE_MS, says so once with
// a `stalled` event: app.js then reconnects the media over the same signaling session
// (docs/architecture.md, "Recovery").

import { tuneOpus } from "./opus_sdp.js";

/** A disconnection this long (ms) is not a blip: ask for a new connection. */
export const DISCONNECTED_GRACE_MS = 2000;

export class NodeCall extends EventTarget {
  constructor({ iceServers, slots, uplink, downlink, cameraTrack, cameraStream, microphone }) {
    super();
    this.pc = new RTCPeerConnection({ iceServers });
    this.slots = slots;
    this.remoteVideos = new Map(); // slot -> MediaStream
    if (uplink.kind === "camera") {
      // The camera rides on slot 0's transceiver, so no renegotiation is ever needed.
      const direction = downlink.kind === "video" ? "sendrecv" : "sendonly";
      this.pc.addTransceiver(cameraTrack, { direction, streams: [cameraStream] });
    }
    if (downlink.kind === "video") {
      const first = uplink.kind === "camera" ? 1 : 0;
      for (let i = first; i < slots; i += 1) this.pc.addTransceiver("video", { direction: "recvonly" });
    }
    this.audioTransceivers = [];
    for (let i = 0; i < slots; i += 1) {
      const mic = i === 0 && microphone ? microphone.getAudioTracks()[0] : null;
      this.audioTransceivers.push(mic
        ? this.pc.addTransceiver(mic, { direction: "sendrecv", streams: [microphone] })
        : this.pc.addTransceiver("audio", { direction: "recvonly" }));
    }
    this.control = this.pc.createDataChannel("control");
    this.control.binaryType = "arraybuffer";
    this.control.onopen = () => this.dispatchEvent(new Event("open"));
    this.control.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      const message = JSON.parse(event.data);
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    };
    if (uplink.openChannel) uplink.openChannel(this.pc);
    if (downlink.openChannels) downlink.openChannels(this.pc);
    this.pc.ontrack = (event) => {
      if (event.track.kind === "audio") {
        const slot = this.audioTransceivers.indexOf(event.transceiver);
        const stream = new MediaStream([event.track]);
        this.dispatchEvent(new CustomEvent("audio", { detail: { slot, stream } }));
        return;
      }
      const slot = this.pc.getTransceivers().indexOf(event.transceiver);
      const stream = new MediaStream([event.track]);
      this.remoteVideos.set(slot, stream);
      this.dispatchEvent(new CustomEvent("track", { detail: { slot, stream } }));
    };
    this.stalled = false;
    this.disconnectedTimer = null;
    this.pc.onconnectionstatechange = () => {
      this.dispatchEvent(new CustomEvent("state", { detail: this.pc.connectionState }));
      this.watch();
    };
    this.pc.oniceconnectionstatechange = () => this.watch();
  }

  /** `stalled` (once) when ICE or the connection failed, or stayed disconnected too long. */
  watch() {
    const { connectionState, iceConnectionState } = this.pc;
    if (connectionState === "failed" || iceConnectionState === "failed") {
      this.stall(`connection to the media node ${connectionState === "failed" ? "failed" : "lost (ICE failed)"}`);
    } else if (connectionState === "disconnected" || iceConnectionState === "disconnected") {
      if (!this.disconnectedTimer) {
        this.disconnectedTimer = setTimeout(() => {
          this.disconnectedTimer = null;
          this.stall(`no packets from the media node for ${DISCONNECTED_GRACE_MS / 1000} s`);
        }, DISCONNECTED_GRACE_MS);
      }
    } else {
      clearTimeout(this.disconnectedTimer);
      this.disconnectedTimer = null;
    }
  }

  stall(reason) {
    if (this.stalled || this.pc.signalingState === "closed") return;
    this.stalled = true;
    clearTimeout(this.disconnectedTimer);
    this.dispatchEvent(new CustomEvent("stalled", { detail: reason }));
  }

  /** Full offer (all ICE candidates included): the node does not use trickle ICE. */
  async offer() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription({ type: "offer", sdp: tuneOpus(offer.sdp) });
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 3000);
        this.pc.addEventListener("icegatheringstatechange", () => {
          if (this.pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
        });
      });
    }
    return this.pc.localDescription.sdp;
  }

  async answer(sdp) {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** How loud the voice on each tile is now (0–1, by slot), from inbound-rtp `audioLevel`
   * (the node forwards packets without the level header extension, so the decoded sound
   * is what tells). */
  async audioLevels() {
    const bySlot = new Map(this.audioTransceivers.map((t, slot) => [t.mid, slot]));
    const levels = this.audioTransceivers.map(() => 0);
    (await this.pc.getStats()).forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.kind === "audio" && bySlot.has(stat.mid)) {
        levels[bySlot.get(stat.mid)] = stat.audioLevel || 0;
      }
    });
    return levels;
  }

  send(message) {
    if (this.control.readyState === "open") this.control.send(JSON.stringify(message));
  }

  close() {
    clearTimeout(this.disconnectedTimer);
    this.stalled = true; // a closed call reports nothing more
    this.pc.close();
  }
}
