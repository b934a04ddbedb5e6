"""limit_ratio: a deterministic sample of series by Prometheus' label hash."""

from __future__ import annotations

import pytest
import xxhash

from server.promql.aggregations import labels_hash
from server.promql.engine import Engine
from server.promql.errors import EvalError
from server.promql.seam import MemorySeries
from server.promql.values import Vector


def _engine(n: int = 200) -> Engine:
    source = MemorySeries()
    for i in range(n):
        source.add({"__name__": "m", "i": str(i)}, [0], [float(i)])
    return Engine(source)


def _kept(engine: Engine, expr: str) -> set[str]:
    value = engine.instant(expr, 0).value
    assert isinstance(value, Vector)
    return {dict(s.labels)["i"] for s in value.series if s.present[0]}


def test_hash_is_xxhash64_of_length_prefixed_names_and_values() -> None:
    assert labels_hash((("a", "b"),)) == xxhash.xxh64_intdigest(b"\x01a\x01b")
    long = "x" * 300
    expected = xxhash.xxh64_intdigest(b"\x01a\xff\x2c\x01\x00" + long.encode())
    assert labels_hash((("a", long),)) == expected


def test_a_ratio_and_its_complement_partition_the_series() -> None:
    engine = _engine()
    low = _kept(engine, "limit_ratio(0.3, m)")
    high = _kept(engine, "limit_ratio(-0.7, m)")
    assert not low & high
    assert len(low | high) == 200
    assert 30 < len(low) < 90  # a hash spreads 200 series roughly evenly
    assert _kept(engine, "limit_ratio(0.3, m)") == low  # deterministic
    assert low <= _kept(engine, "limit_ratio(0.6, m)")


def test_edge_ratios() -> None:
    engine = _engine(20)
    assert len(_kept(engine, "limit_ratio(1, m)")) == 20
    assert len(_kept(engine, "limit_ratio(1.5, m)")) == 20  # capped to 1, with a warning
    assert _kept(engine, "limit_ratio(0, m)") == set()
    with pytest.raises(EvalError, match="Ratio value is NaN"):
        engine.instant("limit_ratio(NaN, m)", 0)
