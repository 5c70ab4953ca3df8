"""Probability tables of the motion residuals and the context that picks one (docs/protocol.md §4).

A residual k is coded with a `MagnitudeTable` chosen by a *level* (expected |k| on a √2
grid). Keyframe tables are geometric shapes; delta tables blend a profile's trained
histograms (`ResidualStatistics`, fitted by table_fit.py) with the same shapes.

Everything a decoder must reproduce bit-exactly is done in Python integers, or in IEEE-754
double arithmetic restricted to + - * / and sqrt (correctly rounded on every platform), so
both ends build identical tables and contexts without shipping them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import ModuleType

from lpstream.protocol.arith import ArithmeticDecoder, ArithmeticEncoder, FrequencyTable


@dataclass(frozen=True)
class ResidualStatistics:
    """The trained constants of one codec profile, per field in wire order (motion_fields)
    and in quantiser steps. They are part of the wire format."""

    neutral: tuple[int, ...]
    """Keyframe prediction of each field, in base units (the profile's typical motion)."""
    mean_abs: tuple[float, ...]
    """Mean |delta residual| at reference gap 3."""
    mean_speed: tuple[float, ...]
    """Typical |residual| of the reference itself (the speed context)."""
    key_mean_abs: tuple[float, ...]
    """Mean |keyframe residual| against `neutral`."""
    gap_factor: tuple[float, ...]
    """Residual growth at reference gap g (index g, the last entry for longer gaps),
    relative to gap 3."""
    delta_magnitude_counts: tuple[tuple[int, ...], ...]
    """Histogram of |delta residual| per table level (levels past the end: none)."""

    @classmethod
    def from_module(cls, module: ModuleType) -> ResidualStatistics:
        """Read a generated statistics file (constants named after the fields, upper case)."""
        values = {}
        for item in fields(cls):
            value = getattr(module, item.name.upper())
            values[item.name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        return cls(**values)

    def gap_scale(self, gap: int) -> float:
        return self.gap_factor[min(gap, len(self.gap_factor) - 1)]


TABLE_TOTAL_BITS = 16
_ESCAPE_FREQ = 2
_LEVEL_RATIO = math.sqrt(2.0)  # built with sqrt: bit-exact on every IEEE-754 platform
_LEVEL_MIN = 0.01
_LEVEL_MAX = 4_000.0


def _level_thresholds() -> list[float]:
    thresholds = []
    value = _LEVEL_MIN
    while value < _LEVEL_MAX:
        thresholds.append(value)
        value *= _LEVEL_RATIO
    return thresholds


THRESHOLDS = _level_thresholds()
"""Expected |residual| → table level: level i covers [THRESHOLDS[i], THRESHOLDS[i+1])."""


def level_of(mean_abs: float) -> int:
    return max(0, bisect_right(THRESHOLDS, mean_abs) - 1)


def level_centre(level: int) -> float:
    return THRESHOLDS[level] * math.sqrt(_LEVEL_RATIO)


def geometric_magnitudes(mean_abs: float, width: int) -> list[float]:
    """P(|k| = j), j = 0..width, of a two-sided geometric residual with E|k| = mean_abs."""
    m = mean_abs
    a = (math.sqrt(1.0 + m * m) - 1.0) / m
    weights = [1.0]
    w = 1.0
    for _ in range(width):
        w *= a
        weights.append(2.0 * w)
    total = sum(weights)
    return [x / total for x in weights]


def magnitude_width(level: int) -> int:
    return min(1024, int(6.0 * level_centre(level)) + 8)


@dataclass(frozen=True)
class MagnitudeTable:
    """|k| in 0..width with a frequency table, 'width+1' escapes to a uniform raw magnitude;
    a uniform sign bit follows every non-zero k (residuals are symmetric)."""

    table: FrequencyTable
    width: int

    @classmethod
    def from_probabilities(cls, probabilities: list[float]) -> MagnitudeTable:
        budget = (1 << TABLE_TOTAL_BITS) - _ESCAPE_FREQ
        freqs = [max(1, int(budget * p)) for p in probabilities] + [_ESCAPE_FREQ]
        return cls(FrequencyTable.from_frequencies(freqs), len(probabilities) - 1)

    def encode(self, coder: ArithmeticEncoder, k: int, bound: int) -> None:
        magnitude = -k if k < 0 else k
        if magnitude <= self.width:
            coder.encode(self.table, magnitude)
        else:
            coder.encode(self.table, self.width + 1)
            coder.encode_uniform(magnitude - self.width - 1, bound)
        if magnitude:
            coder.encode_uniform(int(k < 0), 2)

    def decode(self, coder: ArithmeticDecoder, bound: int) -> int:
        magnitude = coder.decode(self.table)
        if magnitude > self.width:
            magnitude = self.width + 1 + coder.decode_uniform(bound)
        if magnitude and coder.decode_uniform(2):
            return -magnitude
        return magnitude


FieldObserver = Callable[[int, MagnitudeTable, int], None]
"""Called with (field index, the table that coded it, residual) for every coded field, by
an encoder or decoder given one (table fitting, cost analysis)."""


def _geometric_table(level: int) -> MagnitudeTable:
    return MagnitudeTable.from_probabilities(
        geometric_magnitudes(level_centre(level), magnitude_width(level))
    )


def _trained_table(level: int, statistics: ResidualStatistics) -> MagnitudeTable:
    """Delta residual table: trained magnitude counts where there were enough samples,
    blended with the geometric shape so unseen magnitudes stay codable."""
    width = magnitude_width(level)
    shape = geometric_magnitudes(level_centre(level), width)
    trained = statistics.delta_magnitude_counts
    counts = trained[level] if level < len(trained) else ()
    n = sum(counts)
    if n == 0:
        return MagnitudeTable.from_probabilities(shape)
    weight = n / (n + 400.0)
    probabilities = [
        weight * (counts[j] / n if j < len(counts) else 0.0) + (1.0 - weight) * shape[j]
        for j in range(width + 1)
    ]
    return MagnitudeTable.from_probabilities(probabilities)


KEY_TABLES = tuple(_geometric_table(level) for level in range(len(THRESHOLDS)))
"""Keyframe and timestamp residuals: geometric shape only, the same for every profile."""


def build_delta_tables(statistics: ResidualStatistics) -> tuple[MagnitudeTable, ...]:
    """The delta tables of one profile's trained statistics (see profiles.CodecProfile)."""
    return tuple(_trained_table(level, statistics) for level in range(len(THRESHOLDS)))


TRAINED_LEVEL_MAX_MEAN = 40.0
"""Levels whose expected |k| exceeds this use the geometric shape only (too few samples)."""
TRAINED_MAGNITUDE_MAX = 32
"""Trained histograms stop at this magnitude; the geometric shape covers the tail."""


class DeltaContext:
    """Expected |residual| of each field of a delta frame, from acknowledged state only.

    Two signals: how fast the field moved when the reference itself was coded (its
    residuals, known to both ends), and how active the fields already coded in this packet
    were. Neither depends on packets the receiver might have lost.
    """

    def __init__(
        self,
        gap: int,
        ref_residuals: list[int] | None,
        ref_gap: int,
        statistics: ResidualStatistics,
    ) -> None:
        self.statistics = statistics
        self.gap_scale = statistics.gap_scale(gap)
        self.ref_residuals = ref_residuals
        self.speed_ratio = gap / ref_gap if ref_gap else 0.0
        self.coded_abs = 5.0
        self.expected_abs = 5.0
        self._last_base = 0.0

    def expected(self, field: int) -> float:
        base = self.statistics.mean_abs[field] * self.gap_scale
        if self.ref_residuals is not None:
            typical = self.statistics.mean_speed[field]
            speed = abs(self.ref_residuals[field]) * self.speed_ratio
            base *= math.sqrt((speed + typical) / (2.0 * typical))
        self._last_base = base
        return base * self.coded_abs / self.expected_abs

    def update(self, residual: int) -> None:
        self.coded_abs += abs(residual)
        self.expected_abs += self._last_base
