"""Prometheus durations (``1h30m``, ``5m``, ``0``): parsed to milliseconds and printed back.

The same grammar as Prometheus' ``model.ParseDuration`` and ``model.Duration.String``: units
y (365 d), w, d, h, m, s, ms, each at most once and in that order; a bare ``0`` is zero.
"""

from __future__ import annotations

import re

_UNITS: tuple[tuple[str, int], ...] = (
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)
_PATTERN = re.compile("^" + "".join(f"(?:([0-9]+){unit})?" for unit, _ in _UNITS) + "$")


def parse_duration(text: str) -> int:
    """Returns: ``text`` in milliseconds. Raises: ValueError with Prometheus' message."""
    if text == "0":
        return 0
    match = _PATTERN.match(text)
    if text == "" or match is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    total = 0
    for group, (_, unit_ms) in zip(match.groups(), _UNITS, strict=True):
        if group is not None:
            total += int(group) * unit_ms
    return total


def format_duration(ms: int) -> str:
    """Returns: ``ms`` as Prometheus prints a duration (``1m30s``, ``0s``)."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    rest = abs(ms)
    parts = []
    for unit, unit_ms in _UNITS:
        count, rest = divmod(rest, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
