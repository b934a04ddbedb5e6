"""promtool's series notation: ``metric{a="b"}`` and values like ``1+2x3 _ stale _x2``.

``a+bxN`` is a, a+b, ..., a+N·b (N+1 values); ``axN`` repeats a N+1 times; ``_`` is a missing
sample and ``_xN`` N of them; ``stale`` is a stale marker. Labels are read by the engine's own
parser, so quoting and escapes are PromQL's.
"""

from __future__ import annotations

import re

from server.promql.errors import PromQLError
from server.promql.parse import parse
from server.promql.plan import MatchOp, VectorSelector
from server.promql.values import Labels, make_labels, stale_nan

_NUMBER = (
    r"(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|Inf|inf|NaN|nan)"
)
_ITEM = re.compile(rf"^(?P<a>[+-]?{_NUMBER}|stale)(?:(?P<b>[+-]{_NUMBER})?x(?P<n>[0-9]+))?$")
_BLANK = re.compile(r"^_(?:x(?P<n>[0-9]+))?$")


def parse_metric(text: str) -> Labels:
    """Returns: the labels of ``metric{a="b"}``. Raises: ValueError."""
    try:
        node = parse(text)
    except PromQLError as exc:
        raise ValueError(f"{text!r}: {exc.message}") from exc
    if not isinstance(node, VectorSelector) or node.offset_ms or node.at is not None:
        raise ValueError(f"{text!r} is not a series description")
    pairs = []
    for matcher in node.matchers:
        if matcher.op is not MatchOp.EQUAL:
            raise ValueError(f"{text!r}: a series description takes only '=' matchers")
        pairs.append((matcher.name, matcher.value))
    return make_labels(pairs)


def parse_values(text: str) -> list[float | None]:
    """Returns: one entry per interval: a value (maybe the stale marker) or None for ``_``."""
    points: list[float | None] = []
    for item in text.split():
        blank = _BLANK.match(item)
        if blank is not None:
            points.extend([None] * (int(blank["n"]) if blank["n"] else 1))
            continue
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"bad series value {item!r}: expected a number, '_' or 'stale'")
        if match["a"] == "stale":
            if match["n"] is not None:
                raise ValueError(f"bad series value {item!r}: 'stale' does not repeat")
            points.append(stale_nan())
            continue
        first = float(match["a"])
        if match["n"] is None:
            points.append(first)
            continue
        increment = float(match["b"]) if match["b"] else 0.0
        value = first  # accumulated as promtool does, so 0.1 steps round the same way
        points.append(value)
        for _ in range(int(match["n"])):
            value += increment
            points.append(value)
    return points
