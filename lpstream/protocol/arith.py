"""Exact arithmetic coder on Python integers: no renormalisation, shortest possible flush.

A packet holds ~80 symbols, so the exact interval fits easily in a big integer; the flush
writes the fewest bytes whose value (zero-padded) falls in the final interval, which saves
the 2-4 bytes a fixed-precision range coder spends on termination. The decoder treats the
bytes after the end as zeros, so any byte string decodes (hostile input cannot desynchronise
it into an exception), and the packet boundary of the data channel marks the end.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class FrequencyTable:
    """Static symbol model: symbol s has probability freq[s] / total."""

    cumulative: tuple[int, ...]
    """cumulative[s] = sum(freq[:s]); length = number of symbols + 1."""

    @property
    def total(self) -> int:
        return self.cumulative[-1]

    @classmethod
    def from_frequencies(cls, freqs: list[int]) -> FrequencyTable:
        if any(f <= 0 for f in freqs):
            raise ValueError("every symbol needs a positive frequency")
        cumulative = [0]
        for f in freqs:
            cumulative.append(cumulative[-1] + f)
        return cls(tuple(cumulative))


class ArithmeticEncoder:
    def __init__(self) -> None:
        self._low = 0
        self._range = 1
        self._scale = 1

    def encode(self, table: FrequencyTable, symbol: int) -> None:
        cum = table.cumulative
        self._low = self._low * cum[-1] + self._range * cum[symbol]
        self._range *= cum[symbol + 1] - cum[symbol]
        self._scale *= cum[-1]

    def encode_uniform(self, value: int, count: int) -> None:
        """`value` in [0, count) with equal probability (escapes, raw fields)."""
        self._low = self._low * count + self._range * value
        self._scale *= count

    def finish(self) -> bytes:
        low, high, scale = self._low, self._low + self._range, self._scale
        nbytes = max(0, (scale.bit_length() - self._range.bit_length()) // 8 - 1)
        while True:
            unit = 1 << (8 * nbytes)
            value = -((-low * unit) // scale)  # ceil(low / scale * 256^n)
            if value * scale < high * unit:
                return value.to_bytes(nbytes, "big") if nbytes else b""
            nbytes += 1


class ArithmeticDecoder:
    def __init__(self, data: bytes) -> None:
        self._offset = int.from_bytes(data, "big") if data else 0
        self._range = 1 << (8 * len(data))

    def decode(self, table: FrequencyTable) -> int:
        cum = table.cumulative
        total = cum[-1]
        target = (self._offset * total) // self._range
        symbol = bisect_right(cum, target) - 1
        self._offset = self._offset * total - self._range * cum[symbol]
        self._range *= cum[symbol + 1] - cum[symbol]
        return symbol

    def decode_uniform(self, count: int) -> int:
        value = (self._offset * count) // self._range
        self._offset = self._offset * count - self._range * value
        return value
