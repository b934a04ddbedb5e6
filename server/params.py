"""Query-parameter parsing shared by the read APIs: times, durations, label matchers.

Every refusal is a 422 ``invalid_parameter`` whose message starts with the parameter's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime

from agent.wire.schema import LABEL_NAME_RE, METRIC_NAME_RE
from server.errors import ApiError
from server.rollup.matchers import Matcher, MatcherError, parse_matcher

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_MATCHERS = 32


def parse_time(value: str, name: str) -> float:
    """Returns: ``value`` (Unix seconds or RFC 3339) as Unix seconds.

    Raises:
        ApiError: 422 naming ``name`` when the value is not a time.
    """
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = datetime.fromisoformat(value).timestamp()
        except ValueError:
            raise ApiError(
                422, "invalid_parameter", f"{name}: {value!r} is neither Unix seconds nor RFC 3339"
            ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ApiError(422, "invalid_parameter", f"{name}: {value!r} is not a time")
    return seconds


def parse_range(start: str | None, end: str | None) -> tuple[float | None, float | None]:
    """Returns: the optional ``start`` and ``end`` as Unix seconds.

    Raises:
        ApiError: 422 when either is not a time or ``end`` is before ``start``.
    """
    start_s = None if start is None else parse_time(start, "start")
    end_s = None if end is None else parse_time(end, "end")
    if start_s is not None and end_s is not None and end_s < start_s:
        raise ApiError(422, "invalid_parameter", "end: before start")
    return start_s, end_s


def parse_duration(value: str, name: str) -> float:
    """Returns: seconds from ``30``, ``30s``, ``5m``, ``1h``, ``1d`` or ``250ms``."""
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.match(value.strip())
        if match is None:
            raise ApiError(
                422,
                "invalid_parameter",
                f"{name}: {value!r} is not seconds or a duration like 30s, 5m, 1h",
            ) from None
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ApiError(422, "invalid_parameter", f"{name}: must be a positive number of seconds")
    return seconds


def parse_metric(value: str, name: str = "metric") -> str:
    if not METRIC_NAME_RE.fullmatch(value):
        raise ApiError(422, "invalid_parameter", f"{name}: {value!r} is not a metric name")
    return value


def parse_matchers(items: Iterable[tuple[str, str]], reserved: Iterable[str]) -> list[Matcher]:
    """Matchers from query parameters: each ``match=<label><op><value>`` (op ``=``, ``!=``,
    ``=~``, ``!~``; regexes fully anchored) and each other ``<label>=<value>`` (equality)."""
    skip = set(reserved)
    matchers: list[Matcher] = []
    for name, value in items:
        if name == "match":
            try:
                matchers.append(parse_matcher(value))
            except MatcherError as exc:
                raise ApiError(422, "invalid_parameter", f"match: {exc}") from None
        elif name not in skip:
            if not LABEL_NAME_RE.fullmatch(name):
                raise ApiError(422, "invalid_parameter", f"{name}: not a label name")
            matchers.append(Matcher(name, "=", value))
        if len(matchers) > MAX_MATCHERS:
            raise ApiError(
                422, "invalid_parameter", f"match: more than {MAX_MATCHERS} label matchers"
            )
    return matchers


def parse_label_list(value: str, name: str) -> tuple[str, ...]:
    """Returns: label names from a comma-separated list (empty string: no labels)."""
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    for label in names:
        if not LABEL_NAME_RE.fullmatch(label):
            raise ApiError(422, "invalid_parameter", f"{name}: {label!r} is not a label name")
    return names
