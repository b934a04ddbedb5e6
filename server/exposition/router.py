"""GET /metrics: the fleet's latest samples plus the server's own metrics, text format 0.0.4."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from server.auth import READ
from server.deps import Services, ServicesDep

router = APIRouter(tags=["exposition"], dependencies=[Depends(READ)])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render_all(services: Services) -> str:
    nodes = services.renderer.render(services.latest.nodes(), services.clock())
    return nodes + services.metrics.render()


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: ServicesDep) -> PlainTextResponse:
    """Prometheus scrape target (scrape with honor_labels: true to keep each node's instance)."""
    body = await run_in_threadpool(render_all, services)
    return PlainTextResponse(body, media_type=CONTENT_TYPE)
