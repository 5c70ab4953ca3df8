"""The exact arithmetic coder: lossless for any symbol sequence, shortest flush."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.protocol.arith import ArithmeticDecoder, ArithmeticEncoder, FrequencyTable

tables = st.lists(st.integers(1, 5000), min_size=1, max_size=40).map(
    FrequencyTable.from_frequencies
)


@st.composite
def messages(draw):
    table = draw(tables)
    symbols = st.integers(0, len(table.cumulative) - 2)
    steps = draw(
        st.lists(
            st.one_of(
                symbols.map(lambda s: ("symbol", s, 0)),
                st.integers(1, 10**9).flatmap(
                    lambda n: st.integers(0, n - 1).map(lambda v: ("uniform", v, n))
                ),
            ),
            max_size=120,
        )
    )
    return table, steps


@settings(max_examples=150, deadline=None)
@given(messages())
def test_roundtrip_any_sequence(message) -> None:
    table, steps = message
    encoder = ArithmeticEncoder()
    bits = 0.0
    for kind, value, count in steps:
        if kind == "symbol":
            encoder.encode(table, value)
            cum = table.cumulative
            bits += math.log2(cum[-1] / (cum[value + 1] - cum[value]))
        else:
            encoder.encode_uniform(value, count)
            bits += math.log2(count)
    data = encoder.finish()
    # Shortest flush: at most one byte more than the information content, rounded up.
    assert len(data) <= math.ceil(bits / 8) + 1
    decoder = ArithmeticDecoder(data)
    for kind, value, count in steps:
        got = decoder.decode(table) if kind == "symbol" else decoder.decode_uniform(count)
        assert got == value


def test_certain_symbols_cost_nothing() -> None:
    table = FrequencyTable.from_frequencies([1, 65534, 1])
    encoder = ArithmeticEncoder()
    for _ in range(50):
        encoder.encode(table, 1)
    assert len(encoder.finish()) <= 1
