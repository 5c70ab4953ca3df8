// One RTCPeerConnection to our media node, shaped by the uplink and downlink kinds
// (docs/protocol.md §9, §12): uplink `camera` sends the camera track, `keypoints` sends motion
// on `motion-up`; downlink `video` receives one avatar track per other participant (slot i =
// transceiver i), `keypoints` receives motion on `motion-down` and portraits on `portraits`.
// A reliable `control` channel carries portrait upload, sliders and stats either way.

export class NodeCall extends EventTarget {
  constructor({ iceServers, slots, uplink, downlink, cameraTrack, cameraStream }) {
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
      const slot = this.pc.getTransceivers().indexOf(event.transceiver);
      const stream = new MediaStream([event.track]);
      this.remoteVideos.set(slot, stream);
      this.dispatchEvent(new CustomEvent("track", { detail: { slot, stream } }));
    };
    this.pc.onconnectionstatechange = () => {
      this.dispatchEvent(new CustomEvent("state", { detail: this.pc.connectionState }));
    };
  }

  /** Full offer (all ICE candidates included): the node does not use trickle ICE. */
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
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

  send(message) {
    if (this.control.readyState === "open") this.control.send(JSON.stringify(message));
  }

  close() {
    this.pc.close();
  }
}
