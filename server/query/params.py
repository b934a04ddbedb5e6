"""Request parameters in Prometheus' formats: times, durations, limits, repeated ``match[]``.

Times are float Unix seconds (rounded to the millisecond) or RFC 3339 with a zone, or the
exact strings Prometheus' clients send for its minimum and maximum time. Durations are float
seconds or Prometheus durations (``1h30m``, units ``ms s m h d w y``). Every refusal is a
``bad_data`` error naming the parameter, as Prometheus words it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from server.query.errors import bad_param

# Prometheus' API MinTime/MaxTime, as its client libraries format them.
MIN_TIME_TEXT: Final = "-292273086-05-16T16:47:04.192Z"
MAX_TIME_TEXT: Final = "292277025-08-18T07:12:54.999Z"
# Times this API accepts, in ms: far beyond any sample, far inside int64 once offsets and
# lookback are added to them.
MIN_MS: Final = -(2**61)
MAX_MS: Final = 2**61
_DURATION: Final = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_MS: Final = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


@dataclass(frozen=True)
class Params:
    """A request's parameters, in order, repeated names kept (query string, then form body)."""

    items: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, items: Iterable[tuple[str, str]]) -> Params:
        return cls(tuple(items))

    def get(self, name: str) -> str | None:
        """Returns: the last value of ``name`` (a form value overrides the query string's)."""
        found = None
        for key, value in self.items:
            if key == name:
                found = value
        return found

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.items if key == name]


def parse_time(value: str, name: str) -> int:
    """Returns: ``value`` as Unix ms. Raises: QueryError (bad_data) naming ``name``."""
    if value == MIN_TIME_TEXT:
        return MIN_MS
    if value == MAX_TIME_TEXT:
        return MAX_MS
    try:
        seconds = float(value)
    except ValueError:
        seconds = _rfc3339(value, name)
    if not math.isfinite(seconds):
        raise bad_param(name, f"cannot parse {value!r} to a valid timestamp")
    ms = round(seconds * 1000)
    if not MIN_MS <= ms <= MAX_MS:
        raise bad_param(name, f"timestamp {value!r} is out of range")
    return ms


def _rfc3339(value: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_param(name, f"cannot parse {value!r} to a valid timestamp")
    return moment.timestamp()


def parse_duration(value: str, name: str) -> int:
    """Returns: ``value`` as ms (float seconds or ``1h30m``). Raises: QueryError (bad_data)."""
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.fullmatch(value)
        if match is None or value == "":
            raise bad_param(name, f"cannot parse {value!r} to a valid duration") from None
        ms = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_MS, strict=True) if n)
    else:
        if not math.isfinite(seconds):
            raise bad_param(name, f"cannot parse {value!r} to a valid duration")
        ms = round(seconds * 1000)
    if abs(ms) > MAX_MS:
        raise bad_param(name, f"cannot parse {value!r} to a valid duration. It overflows int64")
    return ms


def parse_limit(value: str | None) -> int:
    """Returns: the ``limit`` parameter, 0 (no limit) when absent. Raises: QueryError."""
    if value is None or value == "":
        return 0
    try:
        limit = int(value)
    except ValueError:
        raise bad_param("limit", f"cannot parse {value!r} to a valid limit") from None
    if limit < 0:
        raise bad_param("limit", "limit must be non-negative")
    return limit
