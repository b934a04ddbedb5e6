"""GET /api/v1/latest: the newest value of each matching series, from the latest-value cache."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from server.auth import READ
from server.deps import ServicesDep
from server.errors import ApiError
from server.history.select import visible_labels
from server.params import parse_matchers, parse_metric
from server.rollup.matchers import matches_all
from server.timing import server_timing

router = APIRouter(tags=["history"], dependencies=[Depends(READ)])

_RESERVED_PARAMS = {"metric", "match", "stale"}


class LatestSample(BaseModel):
    labels: dict[str, str]
    value: float
    timestamp: float
    up: bool


class LatestOut(BaseModel):
    metric: str
    series: list[LatestSample]


@router.get("/api/v1/latest", response_model=LatestOut)
def latest(
    request: Request,
    response: Response,
    services: ServicesDep,
    metric: Annotated[str, Query(description="Metric name")],
    stale: Annotated[
        bool, Query(description="Include nodes that stopped pushing (not yet forgotten)")
    ] = False,
    match: Annotated[
        list[str] | None, Query(description="Label matcher, repeatable (as for history)")
    ] = None,
) -> LatestOut:
    """Instant values: each matching series' value in its node's newest batch."""
    started = time.perf_counter()
    parse_metric(metric)
    matchers = parse_matchers(request.query_params.multi_items(), _RESERVED_PARAMS)
    del match
    now = services.clock()
    limit = services.settings.history_max_series * 100
    found: list[LatestSample] = []
    for node in services.latest.nodes():
        up = services.policy.is_up(node, now)
        if (not up and not stale) or services.policy.is_forgotten(node, now):
            continue
        for labels, value in node.families.get(metric, ()):
            visible = visible_labels(node.name, node.labels, labels)
            if matches_all(matchers, visible):
                found.append(
                    LatestSample(labels=visible, value=value, timestamp=node.batch_ts, up=up)
                )
        if len(found) > limit:
            raise ApiError(
                422,
                "too_many_series",
                f"match: more than {limit} series match; add label matchers",
            )
    found.sort(key=lambda sample: sorted(sample.labels.items()))
    response.headers["Server-Timing"] = server_timing(started)
    return LatestOut(metric=metric, series=found)
