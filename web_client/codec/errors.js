// The one error type every decoder of this package throws on bad input (docs/protocol.md).

/** A packet is malformed, of an unknown version or kind, or breaks a size limit. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** The receiver refused our portrait; `code` (RejectCode) and the message say why. */
export class PortraitRejectedError extends ProtocolError {
  constructor(code, reason) {
    super(`receiver rejected the portrait (${REJECT_NAMES[code] ?? code}): ${reason}`);
    this.name = "PortraitRejectedError";
    this.code = code;
    this.reason = reason;
  }
}

const REJECT_NAMES = {
  1: "TOO_LARGE",
  2: "BAD_HASH",
  3: "UNSUPPORTED_FORMAT",
  4: "TOO_MANY_PIXELS",
  5: "UNDECODABLE",
  6: "BUSY",
};
