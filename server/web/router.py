"""The web pages: fleet → node → GPU → job, and the alerts, hints and benchmarks lists.

Stage: web. Thin handlers: each gathers its model off the event loop (``server/web/pages.py``,
``server/web/fleet.py``) and renders it (``server/web/render.py``); the charts draw themselves
in the browser from the PromQL query API. Pages are reads: they need a read session (the login
page), a bearer token, or ``open_reads``; a browser without one is sent to ``/login``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from server.alerting.service import AlertingService
from server.auth import READ
from server.deps import Services, ServicesDep
from server.nodes.service import node_views
from server.rebalancing.service import HintService
from server.web import charts, pages
from server.web.alerts import active, alert_rows
from server.web.fleet import PER_PAGE_CHOICES, STATES, FleetQuery, fleet_model, rows_of
from server.web.render import make_templates, render

__all__ = ["make_templates", "router"]

router = APIRouter(tags=["web"], dependencies=[Depends(READ)], include_in_schema=False)

NodeKey = Annotated[str, Path(min_length=1, max_length=253)]
Text = Annotated[str, Query(max_length=200)]


def _alerting(request: Request) -> AlertingService | None:
    found: AlertingService | None = getattr(request.app.state, "alerting", None)
    return found


def _hints(request: Request) -> HintService | None:
    found: HintService | None = getattr(request.app.state, "hints", None)
    return found


def _not_found(request: Request, what: str) -> HTMLResponse:
    return render(request, "missing.html", page="missing", status_code=404, what=what)


def _fleet(
    services: Services, alerting: AlertingService | None, hints: HintService | None,
    query: FleetQuery,
) -> dict[str, Any]:  # fmt: skip
    now = services.clock()
    views = node_views(services.store, services.latest, services.policy, now, with_gpus=True)
    fleet = fleet_model(rows_of(views, pages.recent_xids(services, now), now), query)
    alerts = active(alert_rows(alerting, now))
    return {
        "fleet": fleet,
        "alerts": alerts,
        "firing": sum(1 for a in alerts if a.state == "firing"),
        "pending": sum(1 for a in alerts if a.state == "pending"),
        "open_hints": len(hints.store.open_hints()) if hints is not None else 0,
        "charts": charts.FLEET,
        "states": STATES,
        "per_page_choices": PER_PAGE_CHOICES,
    }


@router.get("/", response_class=HTMLResponse)
async def fleet_page(
    request: Request,
    services: ServicesDep,
    q: Text = "",
    state: Text = "all",
    sort: Text = "health",
    order: Text = "asc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> HTMLResponse:
    query = FleetQuery.parse(q, state, sort, order, page, per_page)
    model = await run_in_threadpool(_fleet, services, _alerting(request), _hints(request), query)
    return render(request, "fleet.html", page="fleet", **model)


@router.get("/nodes/{node}", response_class=HTMLResponse)
async def node_page(request: Request, services: ServicesDep, node: NodeKey) -> HTMLResponse:
    model = await run_in_threadpool(
        pages.node_page, services, _alerting(request), _hints(request), node
    )
    if model is None:
        return _not_found(request, f"no node {node!r}")
    return render(request, "node.html", page="node", **model)


@router.get("/nodes/{node}/gpus/{index}", response_class=HTMLResponse)
async def gpu_page(
    request: Request,
    services: ServicesDep,
    node: NodeKey,
    index: Annotated[str, Path(max_length=8, description="The GPU's index on the node")],
) -> HTMLResponse:
    # a string, checked here: a path that is not a GPU is a 404 page, after the access rule
    if not index.isdigit():
        return _not_found(request, f"no GPU {index!r} on node {node!r}")
    model = await run_in_threadpool(
        pages.gpu_page, services, _alerting(request), _hints(request), node, int(index)
    )
    if model is None:
        return _not_found(request, f"no GPU {index} on node {node!r}")
    return render(request, "gpu.html", page="gpu", **model)


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(
    request: Request, services: ServicesDep, state: Text = "", user: Text = "", node: Text = ""
) -> HTMLResponse:
    model = await run_in_threadpool(pages.jobs_page, services, state, user, node)
    return render(request, "jobs.html", page="jobs", **model)


@router.get("/jobs/{job_id:path}", response_class=HTMLResponse)
async def job_page(
    request: Request,
    services: ServicesDep,
    job_id: Annotated[str, Path(min_length=1, max_length=512)],
    scheduler: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    model = await run_in_threadpool(pages.job_page, services, _hints(request), job_id, scheduler)
    if model is None:
        return _not_found(request, f"no job {job_id!r}")
    return render(request, "job.html", page="job", **model)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, services: ServicesDep) -> HTMLResponse:
    model = await run_in_threadpool(pages.alerts_page, services, _alerting(request))
    return render(request, "alerts.html", page="alerts", **model)


@router.get("/hints", response_class=HTMLResponse)
async def hints_page(
    request: Request, services: ServicesDep, kind: Text = "", state: Text = ""
) -> HTMLResponse:
    model = await run_in_threadpool(pages.hints_page, services, _hints(request), kind, state)
    return render(request, "hints.html", page="hints", **model)


@router.get("/hints/{hint_id}", response_class=HTMLResponse)
async def hint_page(
    request: Request,
    services: ServicesDep,
    hint_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> HTMLResponse:
    model = await run_in_threadpool(pages.hint_page, services, _hints(request), hint_id)
    if model is None:
        return _not_found(request, f"no hint {hint_id!r}")
    return render(request, "hint.html", page="hint", **model)


@router.get("/benchmarks", response_class=HTMLResponse)
async def benchmarks_page(request: Request, services: ServicesDep) -> HTMLResponse:
    model = await run_in_threadpool(pages.benchmarks_page, services)
    return render(request, "benchmarks.html", page="benchmarks", **model)
