"""GET /metrics: the fleet's latest samples, the benchmark and hint series and the server's own
metrics, text format 0.0.4."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.auth import READ
from server.deps import Services, ServicesDep
from server.exposition.bench import bench_text
from server.exposition.hints import hint_text
from server.exposition.page import Page
from server.rebalancing.router import HintsDep
from server.rebalancing.service import HintService

router = APIRouter(tags=["exposition"], dependencies=[Depends(READ)])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render_all(services: Services, hints: HintService, timestamps: bool = False) -> Page:
    """Returns: the whole page, in bytes pieces (tens of megabytes for a large fleet: never
    one string to encode, nor one buffer to copy it all into)."""
    own = services.metrics.process_lines()
    nodes = services.renderer.render(services.latest.nodes(), services.clock(), timestamps, own)
    derived = bench_text(services.bench.samples, services.catalog) + hint_text(
        hints, services.leader.is_leader, services.catalog
    )
    return Page([*nodes, derived.encode(), services.metrics.render().encode()])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(
    services: ServicesDep,
    hints: HintsDep,
    timestamps: Annotated[
        bool,
        Query(
            description="end each node sample with its batch time (ms), as federation does; "
            "scrape with honor_timestamps to store samples at dcmon's own times"
        ),
    ] = False,
) -> StreamingResponse:
    """Prometheus scrape target (scrape with honor_labels: true to keep each node's instance)."""
    page = await run_in_threadpool(render_all, services, hints, timestamps)
    return StreamingResponse(
        page.stream(), media_type=CONTENT_TYPE, headers={"Content-Length": str(page.size)}
    )
