// Several participants on one data channel: [u8 n][n bytes: participant id, UTF-8][packet]
// (lpstream/node/framing.py, docs/protocol.md §10). An empty id means the channel's own peer.

import { ProtocolError } from "./errors.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function framePacket(participantId, packet) {
  const name = encoder.encode(participantId);
  if (name.length > 255) throw new RangeError("participant id too long");
  const out = new Uint8Array(1 + name.length + packet.length);
  out[0] = name.length;
  out.set(name, 1);
  out.set(packet, 1 + name.length);
  return out;
}

/** [participant id, packet]; throws ProtocolError on a truncated frame or a bad id. */
export function unframePacket(message) {
  if (!(message instanceof Uint8Array) || message.length < 1 || message.length < 1 + message[0]) {
    throw new ProtocolError("truncated frame");
  }
  let participantId;
  try {
    participantId = decoder.decode(message.subarray(1, 1 + message[0]));
  } catch {
    throw new ProtocolError("participant id is not UTF-8");
  }
  return [participantId, message.subarray(1 + message[0])];
}
