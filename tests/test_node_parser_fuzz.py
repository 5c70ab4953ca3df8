"""A short run of `bench/fuzz_node_parsers.py` in CI: only the documented error escapes the
node's and signaling's parsers of outside bytes (the full run: a million inputs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fuzz_node_parsers.py"


def test_the_node_parsers_raise_only_their_documented_errors() -> None:
    spec = importlib.util.spec_from_file_location("fuzz_node_parsers", BENCH)
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    result = fuzz.run(4000, seed=7)
    assert result["unexpected_exceptions"] == 0, result["failures"][:3]
    for name, outcomes in result["per_entry_point"].items():
        assert sum(outcomes.values()) == 4000, name
