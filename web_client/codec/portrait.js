// Source portrait transfer (docs/protocol.md §6), port of lpstream/protocol/portrait.py:
// content-addressed by sha256, chunked to ≤ 1100-byte packets, validated by the receiver.
//
// Hashing is async (the browser has crypto.subtle only): PortraitSender.create and
// PortraitReceiver.onPacket return promises. The default `sha256` is globalThis.crypto.subtle
// (browsers, Node ≥ 19). Pixel decoding is a hook: `decodeImage(bytes)` resolving to
// {width, height} (e.g. createImageBitmap in the browser) or throwing when undecodable;
// without it the receiver checks hash, header, size and pixel limits only.

import { PortraitRejectedError, ProtocolError } from "./errors.js";
import { Kind, MAX_PACKET_BYTES, Reader, bytesEqual, concat, expectKind, header, textField, u16, u32 } from "./wire.js";

export const SHA_BYTES = 32;
export const CHUNK_HEADER_BYTES = 2 + SHA_BYTES + 4;
export const MAX_CHUNK_DATA = MAX_PACKET_BYTES - CHUNK_HEADER_BYTES;
export const MAX_CHUNKS = 0xffff;
export const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_SIDE = 4096;
export const DEFAULT_MAX_PIXELS = 16 * 1024 * 1024;
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
export const MAX_PENDING_TRANSFERS = 2;

export const RejectCode = Object.freeze({
  TOO_LARGE: 1,
  BAD_HASH: 2,
  UNSUPPORTED_FORMAT: 3,
  TOO_MANY_PIXELS: 4,
  UNDECODABLE: 5,
  BUSY: 6,
});
const REJECT_CODES = new Set(Object.values(RejectCode));

/** sha256 via WebCrypto: Uint8Array → Promise<Uint8Array(32)>. */
export async function webCryptoSha256(data) {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data));
}

function sha(value) {
  if (!(value instanceof Uint8Array) || value.length !== SHA_BYTES) {
    throw new ProtocolError(`sha256 must be ${SHA_BYTES} bytes, got ${value?.length}`);
  }
  return value;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export class PortraitOffer {
  constructor(sha256, size) {
    this.sha256 = sha256;
    this.size = size;
  }

  encode() {
    return concat(header(Kind.PORTRAIT_OFFER), sha(this.sha256), u32(this.size));
  }

  static decode(packet) {
    const [, , offset] = expectKind(packet, Kind.PORTRAIT_OFFER);
    const reader = new Reader(packet, offset, "portrait offer");
    const digest = reader.take(SHA_BYTES);
    const size = reader.u32();
    reader.end();
    return new PortraitOffer(digest, size);
  }
}

export class PortraitChunk {
  constructor(sha256, index, count, data) {
    this.sha256 = sha256;
    this.index = index;
    this.count = count;
    this.data = data;
  }

  encode() {
    if (!(this.index >= 0 && this.index < this.count && this.count <= MAX_CHUNKS)) {
      throw new ProtocolError(`portrait chunk ${this.index} of ${this.count} out of range`);
    }
    if (this.data.length > MAX_CHUNK_DATA) {
      throw new ProtocolError(`portrait chunk data of ${this.data.length} > ${MAX_CHUNK_DATA}`);
    }
    return concat(header(Kind.PORTRAIT_CHUNK), sha(this.sha256), u16(this.index), u16(this.count), this.data);
  }

  static decode(packet) {
    const [, , offset] = expectKind(packet, Kind.PORTRAIT_CHUNK);
    const reader = new Reader(packet, offset, "portrait chunk");
    const digest = reader.take(SHA_BYTES);
    const index = reader.u16();
    const count = reader.u16();
    if (!(index < count)) throw new ProtocolError(`portrait chunk: index ${index} not below count ${count}`);
    return new PortraitChunk(digest, index, count, reader.rest());
  }
}

/** PORTRAIT_NEED / PORTRAIT_ACCEPTED / PORTRAIT_REJECTED (code, reason). */
export class PortraitReply {
  constructor(kind, sha256, code = null, reason = "") {
    this.kind = kind;
    this.sha256 = sha256;
    this.code = code;
    this.reason = reason;
  }

  encode() {
    const parts = [header(this.kind), sha(this.sha256)];
    if (this.kind === Kind.PORTRAIT_REJECTED) {
      const reason = Array.from(this.reason).slice(0, 200).join(""); // Python's [:200]
      parts.push(Uint8Array.of(this.code), textField(reason, 255, "reason"));
    }
    return concat(...parts);
  }

  static decode(packet) {
    const [kind, , offset] = expectKind(packet, Kind.PORTRAIT_NEED, Kind.PORTRAIT_ACCEPTED, Kind.PORTRAIT_REJECTED);
    const reader = new Reader(packet, offset, "portrait reply");
    const digest = reader.take(SHA_BYTES);
    let code = null;
    let reason = "";
    if (kind === Kind.PORTRAIT_REJECTED) {
      code = reader.u8();
      if (!REJECT_CODES.has(code)) throw new ProtocolError(`portrait reply: unknown reject code ${code}`);
      reason = reader.text(255);
    }
    reader.end();
    return new PortraitReply(kind, digest, code, reason);
  }
}

/** Offers one encoded image (PNG/JPEG bytes) and answers the receiver's replies. */
export class PortraitSender {
  /** Use `await PortraitSender.create(bytes)` (hashing is async). */
  constructor(imageBytes, sha256, chunkBytes = MAX_CHUNK_DATA) {
    if (!(chunkBytes >= 1 && chunkBytes <= MAX_CHUNK_DATA)) throw new RangeError(`chunkBytes must be in 1..${MAX_CHUNK_DATA}`);
    if (!imageBytes.length) throw new RangeError("imageBytes is empty");
    this.data = imageBytes;
    this.sha256 = sha256;
    this.chunkBytes = chunkBytes;
    if (this.chunkCount > MAX_CHUNKS) throw new RangeError("image too large for one transfer");
    this.accepted = false;
    this.chunksSent = 0;
  }

  /** @param {Uint8Array} imageBytes @param {{chunkBytes?: number, sha256?: Function}} options */
  static async create(imageBytes, { chunkBytes = MAX_CHUNK_DATA, sha256 = webCryptoSha256 } = {}) {
    const data = Uint8Array.from(imageBytes);
    return new PortraitSender(data, await sha256(data), chunkBytes);
  }

  get chunkCount() {
    return Math.ceil(this.data.length / this.chunkBytes);
  }

  offer() {
    return new PortraitOffer(this.sha256, this.data.length).encode();
  }

  chunks() {
    const count = this.chunkCount;
    const out = [];
    for (let i = 0; i < count; i++) {
      const part = this.data.slice(i * this.chunkBytes, (i + 1) * this.chunkBytes);
      out.push(new PortraitChunk(this.sha256, i, count, part).encode());
    }
    return out;
  }

  /** Packets to send next. Throws PortraitRejectedError if the receiver refused. */
  onReply(packet) {
    const reply = PortraitReply.decode(packet);
    if (!bytesEqual(reply.sha256, this.sha256)) return [];
    if (reply.kind === Kind.PORTRAIT_ACCEPTED) {
      this.accepted = true;
      return [];
    }
    if (reply.kind === Kind.PORTRAIT_REJECTED) throw new PortraitRejectedError(reply.code, reply.reason);
    const chunks = this.chunks();
    this.chunksSent += chunks.length;
    return chunks;
  }
}

/** {format, width, height} from a PNG or JPEG header without decoding pixels, or null. */
export function imageDimensions(data) {
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  const be16 = (p) => (data[p] << 8) | data[p + 1];
  const be32 = (p) => data[p] * 0x1000000 + ((data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3]);
  if (data.length >= 24 && png.every((b, i) => data[i] === b) &&
      data[12] === 0x49 && data[13] === 0x48 && data[14] === 0x44 && data[15] === 0x52) {
    return { format: "png", width: be32(16), height: be32(20) };
  }
  if (data.length >= 2 && data[0] === 0xff && data[1] === 0xd8) {
    let pos = 2;
    while (pos + 4 <= data.length) {
      if (data[pos] !== 0xff) return null;
      const marker = data[pos + 1];
      if (marker === 0xff) {
        pos += 1;
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker < 0xd8)) {
        pos += 2;
        continue;
      }
      const length = be16(pos + 2);
      if (length < 2) return null;
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        if (pos + 9 > data.length) return null;
        return { format: "jpeg", width: be16(pos + 7), height: be16(pos + 5) };
      }
      pos += 2 + length;
    }
  }
  return null;
}

/** Reassembles, validates and caches portraits; LRU cache bounded in bytes. */
export class PortraitReceiver {
  constructor({
    cacheBytes = DEFAULT_CACHE_BYTES,
    maxBytes = DEFAULT_MAX_BYTES,
    maxSide = DEFAULT_MAX_SIDE,
    maxPixels = DEFAULT_MAX_PIXELS,
    sha256 = webCryptoSha256,
    decodeImage = null,
  } = {}) {
    if (maxBytes > cacheBytes) throw new RangeError("maxBytes must not exceed cacheBytes");
    Object.assign(this, { cacheBytes, maxBytes, maxSide, maxPixels, sha256, decodeImage });
    this.cache = new Map(); // hex sha -> bytes, oldest first
    this.cachedBytes = 0;
    this.pending = new Map(); // hex sha -> {size, count, chunks: Map, received}
    this.finishing = new Map(); // hex sha -> the promise of its finish() (hash, image checks)
    /** sha256 (Uint8Array) of the portrait most recently accepted (or found in the cache). */
    this.latest = null;
    /** The last PortraitReply of kind PORTRAIT_REJECTED sent, or null. */
    this.lastRejection = null;
  }

  has(sha256) {
    return this.cache.has(hex(sha256));
  }

  /** The cached encoded image bytes (PNG/JPEG), marked recently used; undefined if absent. */
  image(sha256) {
    const key = hex(sha256);
    const data = this.cache.get(key);
    if (data !== undefined) {
      this.cache.delete(key);
      this.cache.set(key, data);
    }
    return data;
  }

  /** Handle an offer or chunk: resolves to the replies to send back. Rejects with
   * ProtocolError only (malformed packets, chunks of unknown portraits). */
  async onPacket(packet) {
    const [kind] = expectKind(packet, Kind.PORTRAIT_OFFER, Kind.PORTRAIT_CHUNK);
    if (kind === Kind.PORTRAIT_OFFER) return this.onOffer(PortraitOffer.decode(packet));
    return this.onChunk(PortraitChunk.decode(packet));
  }

  onOffer(offer) {
    const key = hex(offer.sha256);
    if (this.cache.has(key)) {
      this.image(offer.sha256);
      this.latest = offer.sha256;
      return [new PortraitReply(Kind.PORTRAIT_ACCEPTED, offer.sha256).encode()];
    }
    if (offer.size === 0 || offer.size > this.maxBytes) {
      return this.reject(offer.sha256, RejectCode.TOO_LARGE,
        `portrait of ${offer.size} bytes; this receiver accepts 1..${this.maxBytes}`);
    }
    if (!this.pending.has(key) && this.pending.size >= MAX_PENDING_TRANSFERS) {
      return this.reject(offer.sha256, RejectCode.BUSY, "too many portrait transfers");
    }
    this.pending.set(key, { size: offer.size, count: null, chunks: new Map(), received: 0 });
    return [new PortraitReply(Kind.PORTRAIT_NEED, offer.sha256).encode()];
  }

  async onChunk(chunk) {
    const key = hex(chunk.sha256);
    const transfer = this.pending.get(key);
    if (transfer === undefined) {
      const finishing = this.finishing.get(key);
      if (finishing !== undefined) await finishing.catch(() => null);
      if (this.cache.has(key)) return this.lateChunk(chunk);
      throw new ProtocolError("portrait chunk for a portrait that was never offered");
    }
    if (transfer.count === null) transfer.count = chunk.count;
    if (chunk.count !== transfer.count) throw new ProtocolError("portrait chunk: chunk count changed during a transfer");
    if (!transfer.chunks.has(chunk.index)) {
      transfer.received += chunk.data.length;
      transfer.chunks.set(chunk.index, chunk.data);
    }
    if (transfer.received > transfer.size) {
      this.pending.delete(key);
      return this.reject(chunk.sha256, RejectCode.TOO_LARGE, "more bytes arrived than were offered");
    }
    if (transfer.chunks.size < transfer.count) return [];
    this.pending.delete(key);
    const parts = [];
    for (let i = 0; i < transfer.count; i++) parts.push(transfer.chunks.get(i));
    const done = this.finish(chunk.sha256, concat(...parts));
    this.finishing.set(key, done); // chunks arriving while it is checked wait for it (lateChunk)
    try {
      return await done;
    } finally {
      this.finishing.delete(key);
    }
  }

  /** A chunk of a portrait already cached: two senders offered the same bytes at once (two
   * participants with the same picture), their transfers shared one pending entry and the
   * other sender's completed it. This sender's remaining chunks are redundant; its last one
   * is answered ACCEPTED so the sender learns the portrait arrived (a transfer's chunks arrive
   * in order on the reliable channel). As lpstream/protocol/portrait.py. */
  lateChunk(chunk) {
    if (chunk.index !== chunk.count - 1) return [];
    this.image(chunk.sha256);
    this.latest = chunk.sha256;
    return [new PortraitReply(Kind.PORTRAIT_ACCEPTED, chunk.sha256).encode()];
  }

  async finish(digest, data) {
    if (!bytesEqual(await this.sha256(data), digest)) {
      return this.reject(digest, RejectCode.BAD_HASH, "bytes do not match their sha256");
    }
    const dims = imageDimensions(data);
    if (dims === null) return this.reject(digest, RejectCode.UNSUPPORTED_FORMAT, "not a PNG or JPEG image; send one");
    const { width, height } = dims;
    if (width > this.maxSide || height > this.maxSide || width * height > this.maxPixels) {
      return this.reject(digest, RejectCode.TOO_MANY_PIXELS,
        `${width}x${height} exceeds ${this.maxSide}px a side / ${this.maxPixels} pixels`);
    }
    if (this.decodeImage !== null) {
      let decoded;
      try {
        decoded = await this.decodeImage(data);
      } catch (error) {
        return this.reject(digest, RejectCode.UNDECODABLE, String(error?.message ?? error));
      }
      if (decoded.width !== width || decoded.height !== height) {
        return this.reject(digest, RejectCode.UNDECODABLE, "image header and pixels disagree");
      }
    }
    this.store(hex(digest), data);
    this.latest = digest;
    return [new PortraitReply(Kind.PORTRAIT_ACCEPTED, digest).encode()];
  }

  store(key, data) {
    this.cache.set(key, data);
    this.cachedBytes += data.length;
    while (this.cachedBytes > this.cacheBytes) {
      const [oldest, evicted] = this.cache.entries().next().value;
      this.cache.delete(oldest);
      this.cachedBytes -= evicted.length;
    }
  }

  reject(digest, code, reason) {
    const reply = new PortraitReply(Kind.PORTRAIT_REJECTED, digest, code, reason);
    this.lastRejection = reply;
    return [reply.encode()];
  }
}
