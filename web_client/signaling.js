// Websocket to the signaling server: join a room, exchange SDP with our media node.

export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot reach signaling at ${this.url}`));
      ws.onclose = (event) => this.dispatchEvent(new CustomEvent("close", { detail: event }));
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
      };
    });
  }

  isOpen() {
    return Boolean(this.ws) && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Resolves with the next message of `type`, or rejects on an error message. */
  next(type, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.removeEventListener(type, onMessage);
        this.removeEventListener("error", onError);
      };
      const onMessage = (event) => { done(); resolve(event.detail); };
      const onError = (event) => { done(); reject(new Error(`${event.detail.code}: ${event.detail.message}`)); };
      const timer = setTimeout(() => { done(); reject(new Error(`no '${type}' from signaling`)); }, timeoutMs);
      this.addEventListener(type, onMessage);
      this.addEventListener("error", onError);
    });
  }

  close() {
    if (this.ws) {
      this.send({ type: "leave" });
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
  }
}
