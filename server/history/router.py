"""GET /api/v1/history: one metric's series over time, JSON."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.auth import READ
from server.deps import ServicesDep
from server.history.service import HistoryLimits, HistoryQuery, query_history
from server.params import (
    parse_duration,
    parse_label_list,
    parse_matchers,
    parse_metric,
    parse_time,
)
from server.timing import server_timing

router = APIRouter(tags=["history"], dependencies=[Depends(READ)])

_RESERVED_PARAMS = {"metric", "start", "end", "step", "aggregation", "by", "group", "match"}
DEFAULT_RANGE_SECONDS = 3600.0


class SeriesOut(BaseModel):
    labels: dict[str, str]
    points: list[tuple[float, float]]


class HistoryOut(BaseModel):
    metric: str
    start: float
    end: float
    step: float | None
    tier: str
    aggregation: str | None
    series: list[SeriesOut]


@router.get("/api/v1/history", response_model=HistoryOut)
async def history(
    request: Request,
    response: Response,
    services: ServicesDep,
    metric: Annotated[str, Query(description="Metric name, e.g. DCGM_FI_DEV_GPU_UTIL")],
    start: Annotated[str | None, Query(description="Unix seconds or RFC 3339")] = None,
    end: Annotated[str | None, Query(description="Unix seconds or RFC 3339; default now")] = None,
    step: Annotated[
        str | None,
        Query(description="Seconds or a duration (30s, 5m, 1h); without it, raw samples"),
    ] = None,
    aggregation: Annotated[
        str,
        Query(description="Per step: avg, min, max, sum, count, last, rate, increase"),
    ] = "last",
    by: Annotated[
        str | None, Query(description="Comma-separated labels to group series by")
    ] = None,
    group: Annotated[
        str | None, Query(description="How grouped series combine: sum, avg, min, max, count")
    ] = None,
    match: Annotated[
        list[str] | None,
        Query(description="Label matcher, repeatable: gpu=0, instance=~node-1.*, gpu!~0|1"),
    ] = None,
) -> HistoryOut:
    """Series of ``metric`` matching every ``match`` and every other ``label=value`` parameter.

    With ``step``, one point per step window, from the coarsest tier that answers it exactly
    (1-hour or 1-minute rollups, else raw samples); the response names the tier.
    """
    started = time.perf_counter()
    parse_metric(metric)
    matchers = parse_matchers(request.query_params.multi_items(), _RESERVED_PARAMS)
    del match  # read through query_params above, in order with the label=value parameters
    end_s = parse_time(end, "end") if end is not None else services.clock()
    start_s = parse_time(start, "start") if start is not None else end_s - DEFAULT_RANGE_SECONDS
    step_s = parse_duration(step, "step") if step is not None else None
    query = HistoryQuery(
        metric=metric,
        matchers=matchers,
        start=start_s,
        end=end_s,
        step=step_s,
        aggregation=aggregation,
        by=parse_label_list(by, "by") if by is not None else None,
        group=group,
    )
    limits = HistoryLimits(
        services.settings.history_max_points, services.settings.history_max_series
    )
    result = await run_in_threadpool(
        query_history, services.store, services.reader, services.plan, query, limits
    )
    out = HistoryOut(
        metric=metric,
        start=result.start,
        end=result.end,
        step=result.step,
        tier=result.tier,
        aggregation=result.aggregation,
        series=[SeriesOut(labels=s.labels, points=s.points) for s in result.series],
    )
    response.headers["Server-Timing"] = server_timing(started)
    return out
