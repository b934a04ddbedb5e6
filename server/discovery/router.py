"""GET /api/v1/series, /api/v1/labels and /api/v1/labels/{name}/values, from the series index.

Labels here are the visible ones (a series' own, ``instance`` and its node's labels). Series of
nodes the server has forgotten are not listed.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from agent.wire.schema import LABEL_NAME_RE
from server.auth import READ
from server.deps import ServicesDep
from server.errors import ApiError
from server.history.select import select_series
from server.params import parse_matchers, parse_metric
from server.timing import server_timing

router = APIRouter(tags=["discovery"], dependencies=[Depends(READ)])

_RESERVED_PARAMS = {"metric", "match", "limit"}
MAX_LIMIT = 100_000


class SeriesItem(BaseModel):
    metric: str
    labels: dict[str, str]


class SeriesListOut(BaseModel):
    series: list[SeriesItem]
    truncated: bool


class NamesOut(BaseModel):
    names: list[str]


class ValuesOut(BaseModel):
    name: str
    values: list[str]


@router.get("/api/v1/series", response_model=SeriesListOut)
def series(
    request: Request,
    response: Response,
    services: ServicesDep,
    metric: Annotated[str | None, Query(description="Metric name; default every metric")] = None,
    match: Annotated[list[str] | None, Query(description="Label matcher, repeatable")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10_000,
) -> SeriesListOut:
    """Series that exist, with their visible labels (``truncated`` when over ``limit``)."""
    started = time.perf_counter()
    matchers = parse_matchers(request.query_params.multi_items(), _RESERVED_PARAMS)
    del match
    names = [parse_metric(metric)] if metric is not None else services.store.index.metrics()
    nodes = services.store.node_naming()
    found: list[SeriesItem] = []
    truncated = False
    for name in names:
        for item in select_series(services.store.index, nodes, name, matchers):
            if len(found) >= limit:
                truncated = True
                break
            found.append(SeriesItem(metric=name, labels=item.labels))
        if truncated:
            break
    found.sort(key=lambda s: (s.metric, sorted(s.labels.items())))
    response.headers["Server-Timing"] = server_timing(started)
    return SeriesListOut(series=found, truncated=truncated)


@router.get("/api/v1/labels", response_model=NamesOut)
def labels(
    response: Response,
    services: ServicesDep,
    metric: Annotated[str | None, Query(description="Only labels of this metric")] = None,
) -> NamesOut:
    """Label names, including ``instance`` and the nodes' configured labels."""
    started = time.perf_counter()
    index = services.store.index
    names = index.label_names(parse_metric(metric) if metric is not None else None)
    names.add("instance")
    for node in services.store.node_naming().values():
        names.update(node.labels)
    response.headers["Server-Timing"] = server_timing(started)
    return NamesOut(names=sorted(names))


@router.get("/api/v1/labels/{name}/values", response_model=ValuesOut)
def label_values(
    response: Response,
    services: ServicesDep,
    name: Annotated[str, Path(description="Label name")],
) -> ValuesOut:
    """Every value a label takes across stored series and nodes."""
    started = time.perf_counter()
    if not LABEL_NAME_RE.fullmatch(name):
        raise ApiError(422, "invalid_parameter", f"name: {name!r} is not a label name")
    values = services.store.index.label_values(name)
    for node in services.store.node_naming().values():
        if name == "instance":
            values.add(node.name)
        elif name in node.labels:
            values.add(node.labels[name])
    response.headers["Server-Timing"] = server_timing(started)
    return ValuesOut(name=name, values=sorted(values))
