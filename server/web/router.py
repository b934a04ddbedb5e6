"""GET /: a plain page listing nodes and GPUs with their latest values (refreshes itself).

The page is rendered on the server, so it is a read like the API: it needs ``open_reads`` or an
``Authorization: Bearer <read token>`` header, which a browser does not send by itself; put a
reverse proxy that adds the header (and its own login) in front of the server to use the page
while reads are closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from agent import __version__
from server.auth import READ
from server.deps import Services, ServicesDep
from server.nodes.service import NodeView, node_views

router = APIRouter(tags=["web"], dependencies=[Depends(READ)])


@dataclass(frozen=True)
class NodeRow:
    view: NodeView
    age_seconds: float
    load1: float | None
    memory_used_ratio: float | None


def make_templates() -> Environment:
    folder = str(resources.files("server.web").joinpath("templates"))
    return Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page_model(services: Services) -> dict[str, object]:
    now = services.clock()
    rows: list[NodeRow] = []
    for view in node_views(services.store, services.latest, services.policy, now, with_gpus=True):
        load1 = memory_ratio = None
        if view.up and view.latest is not None:
            load1 = view.latest.value("node_load1")
            total = view.latest.value("node_memory_MemTotal_bytes")
            available = view.latest.value("node_memory_MemAvailable_bytes")
            if total and available is not None:
                memory_ratio = 1.0 - available / total
        rows.append(NodeRow(view, now - view.record.last_push, load1, memory_ratio))
    return {
        "nodes": rows,
        "up": sum(1 for row in rows if row.view.up),
        "gpus": sum(len(row.view.gpus) for row in rows),
        "version": __version__,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, services: ServicesDep) -> HTMLResponse:
    model = await run_in_threadpool(page_model, services)
    template = request.app.state.templates.get_template("index.html")
    return HTMLResponse(template.render(**model))
