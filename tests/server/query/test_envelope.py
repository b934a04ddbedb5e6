"""Answer encoding: the remembered pairs of a range answer equal formatting each one."""

from __future__ import annotations

import math

import orjson

from server.query.envelope import _Pairs, format_float, format_time, success


def test_remembered_pairs_equal_formatting_each_pair() -> None:
    stamps = [1_000, 2_500, 1_000, 3_000, 4_000, 5_000, 6_000, 7_000]
    values = [0.0, -0.0, 0.0, math.nan, 60.0, 60.0, -0.0, 1e-7]
    pairs = _Pairs()
    first = pairs(stamps, values)
    again = pairs(stamps[::-1], values[::-1])  # the same formatter, now remembering
    assert first == [[format_time(s), format_float(v)] for s, v in zip(stamps, values, strict=True)]
    assert again == first[::-1]
    assert [text for _, text in first] == ["0", "-0", "0", "NaN", "60", "60", "-0", "1e-07"]


def test_answers_are_plain_json() -> None:
    body = success({"resultType": "vector", "result": []}, ["w"]).body
    assert orjson.loads(body) == {
        "status": "success",
        "data": {"resultType": "vector", "result": []},
        "warnings": ["w"],
    }
