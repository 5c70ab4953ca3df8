// Exact arithmetic coder (docs/protocol.md §4), port of lpstream/protocol/arith.py.
// The interval is exact, so it needs big integers: BigInt here, Python ints there.

/** Static symbol model: symbol s has probability freq[s] / total. */
export class FrequencyTable {
  /** @param {number[]} cumulative cumulative[s] = sum(freq[:s]); length = symbols + 1 */
  constructor(cumulative) {
    this.cumulative = cumulative;
    this.big = cumulative.map(BigInt);
    this.total = cumulative[cumulative.length - 1];
    this.bigTotal = this.big[this.big.length - 1];
  }

  static fromFrequencies(freqs) {
    const cumulative = [0];
    for (const f of freqs) {
      if (!(f > 0)) throw new RangeError("every symbol needs a positive frequency");
      cumulative.push(cumulative[cumulative.length - 1] + f);
    }
    return new FrequencyTable(cumulative);
  }

  /** The largest s with cumulative[s] <= target (Python's bisect_right - 1). */
  symbolAt(target) {
    const cum = this.cumulative;
    let lo = 0;
    let hi = cum.length - 1; // cum[lo] <= target < cum[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] <= target) lo = mid;
      else hi = mid;
    }
    return lo;
  }
}

function bitLength(x) {
  return x === 0n ? 0 : x.toString(2).length;
}

export class ArithmeticEncoder {
  constructor() {
    this.low = 0n;
    this.range = 1n;
    this.scale = 1n;
  }

  encode(table, symbol) {
    const cum = table.big;
    this.low = this.low * table.bigTotal + this.range * cum[symbol];
    this.range *= cum[symbol + 1] - cum[symbol];
    this.scale *= table.bigTotal;
  }

  /** `value` in [0, count) with equal probability (escapes, raw fields). */
  encodeUniform(value, count) {
    const c = BigInt(count);
    this.low = this.low * c + this.range * BigInt(value);
    this.scale *= c;
  }

  /** The fewest bytes whose value (zero-padded) lies in the final interval. */
  finish() {
    const low = this.low;
    const scale = this.scale;
    const high = low + this.range;
    let nbytes = Math.max(0, Math.floor((bitLength(scale) - bitLength(this.range)) / 8) - 1);
    for (;;) {
      const unit = 1n << BigInt(8 * nbytes);
      const value = (low * unit + scale - 1n) / scale; // ceil(low / scale * 256^n)
      if (value * scale < high * unit) {
        const out = new Uint8Array(nbytes);
        let v = value;
        for (let i = nbytes - 1; i >= 0; i--) {
          out[i] = Number(v & 0xffn);
          v >>= 8n;
        }
        return out;
      }
      nbytes += 1;
    }
  }
}

export class ArithmeticDecoder {
  /** Bytes past the end read as zeros: any byte string decodes to something. */
  constructor(data) {
    let offset = 0n;
    for (const byte of data) offset = (offset << 8n) | BigInt(byte);
    this.offset = offset;
    this.range = 1n << BigInt(8 * data.length);
  }

  decode(table) {
    const cum = table.big;
    const total = table.bigTotal;
    const target = Number((this.offset * total) / this.range);
    const symbol = table.symbolAt(target);
    this.offset = this.offset * total - this.range * cum[symbol];
    this.range *= cum[symbol + 1] - cum[symbol];
    return symbol;
  }

  decodeUniform(count) {
    const c = BigInt(count);
    const value = (this.offset * c) / this.range;
    this.offset = this.offset * c - this.range * value;
    return Number(value);
  }
}
