// One RTCPeerConnection to our media node: camera up, one avatar track per other participant
// down (slot i = transceiver i), a reliable `control` channel for portrait, sliders and stats.

export class NodeCall extends EventTarget {
  constructor({ iceServers, slots, cameraTrack, cameraStream }) {
    super();
    this.pc = new RTCPeerConnection({ iceServers });
    this.slots = slots;
    this.remoteVideos = new Map(); // slot -> MediaStream
    // The camera rides on slot 0's transceiver, so no renegotiation is ever needed.
    this.pc.addTransceiver(cameraTrack, { direction: "sendrecv", streams: [cameraStream] });
    for (let i = 1; i < slots; i += 1) this.pc.addTransceiver("video", { direction: "recvonly" });
    this.control = this.pc.createDataChannel("control");
    this.control.binaryType = "arraybuffer";
    this.control.onopen = () => this.dispatchEvent(new Event("open"));
    this.control.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      const message = JSON.parse(event.data);
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    };
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
