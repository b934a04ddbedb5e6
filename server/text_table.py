"""Plain-text tables and times for the CLI commands that list what a server holds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime


def table(head: Sequence[str], rows: Sequence[Sequence[str]], footer: str) -> str:
    """Columns padded to their widest cell; a row's cell past the header's count goes last,
    unpadded (summaries and errors are long)."""
    widths = [len(h) for h in head]
    for row in rows:
        for i, cell in enumerate(row[: len(head)]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[: len(head)])]
        return "  ".join([*padded, *cells[len(head) :]]).rstrip()

    return "\n".join([line(head), *(line(row) for row in rows), f"({footer})"])


def since(seconds: object, now: float, never: str = "-") -> str:
    """Returns: a Unix time as UTC RFC 3339 with its age, e.g. ``2026-01-02T03:04:05Z (5m ago)``."""
    if not isinstance(seconds, int | float):
        return never
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({age(now - seconds)} ago)"


def age(seconds: float) -> str:
    """Returns: a duration rounded to its largest unit: 90s, 12m, 5h, 3d."""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def number(value: object) -> str:
    """Returns: a number in six significant digits, "-" for none or NaN."""
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.6g}"


def duration(seconds: object) -> str:
    """Returns: a short duration in ms below a second, else in s; "-" for none."""
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    return f"{seconds:.3g}s"
