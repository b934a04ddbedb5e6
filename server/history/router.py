"""GET /api/v1/history: one metric's series over time, JSON."""

from __future__ import annotations

import math
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agent.wire.schema import LABEL_NAME_RE, METRIC_NAME_RE
from server.deps import ServicesDep
from server.errors import ApiError
from server.history.service import HistoryLimits, HistoryQuery, query_history
from server.params import parse_time

router = APIRouter(tags=["history"])

_RESERVED_PARAMS = {"metric", "start", "end", "step"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DEFAULT_RANGE_SECONDS = 3600.0


class SeriesOut(BaseModel):
    labels: dict[str, str]
    points: list[tuple[float, float]]


class HistoryOut(BaseModel):
    metric: str
    start: float
    end: float
    step: float | None
    series: list[SeriesOut]


@router.get("/api/v1/history", response_model=HistoryOut)
async def history(
    request: Request,
    services: ServicesDep,
    metric: Annotated[str, Query(description="Metric name, e.g. DCGM_FI_DEV_GPU_UTIL")],
    start: Annotated[str | None, Query(description="Unix seconds or RFC 3339")] = None,
    end: Annotated[str | None, Query(description="Unix seconds or RFC 3339; default now")] = None,
    step: Annotated[str | None, Query(description="Seconds or a duration: 30s, 5m, 1h")] = None,
) -> HistoryOut:
    """Series of ``metric`` matching every other query parameter as ``label=value``."""
    if not METRIC_NAME_RE.match(metric):
        raise ApiError(422, "invalid_parameter", f"metric: {metric!r} is not a metric name")
    matchers: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in _RESERVED_PARAMS:
            continue
        if not LABEL_NAME_RE.match(name):
            raise ApiError(422, "invalid_parameter", f"{name}: not a label name")
        if name in matchers and matchers[name] != value:
            raise ApiError(422, "invalid_parameter", f"{name}: given twice with different values")
        matchers[name] = value
    end_s = parse_time(end, "end") if end is not None else services.clock()
    start_s = parse_time(start, "start") if start is not None else end_s - DEFAULT_RANGE_SECONDS
    step_s = _duration(step) if step is not None else None
    query = HistoryQuery(metric, matchers, start_s, end_s, step_s)
    limits = HistoryLimits(
        services.settings.history_max_points, services.settings.history_max_series
    )
    series = await run_in_threadpool(query_history, services.store, query, limits)
    return HistoryOut(
        metric=metric,
        start=start_s,
        end=end_s,
        step=step_s,
        series=[SeriesOut(labels=s.labels, points=s.points) for s in series],
    )


def _duration(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.match(value.strip())
        if match is None:
            raise ApiError(
                422, "invalid_parameter", f"step: {value!r} is not seconds or a duration like 30s"
            ) from None
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ApiError(422, "invalid_parameter", "step: must be a positive number of seconds")
    return seconds
