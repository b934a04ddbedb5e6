"""Query-parameter parsing shared by the read APIs: times and time ranges.

Every refusal is a 422 ``invalid_parameter`` whose message starts with the parameter's name.
"""

from __future__ import annotations

import math
from datetime import datetime

from server.errors import ApiError


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
