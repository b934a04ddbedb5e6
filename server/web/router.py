"""GET /: a plain page listing the alerts, then nodes and GPUs with their latest values
(refreshes itself). Alerts are those of the rules the server evaluates (the leader's last
round, as ``GET /api/v1/alerts`` gives them): firing first, then pending, then those resolved
in the last 15 minutes, each with its summary and whether it is held (its node is down or
catching up). The GPU benchmark table shows each device's latest run (failed first, then fleet
outliers) with its worst figure against its SKU's reference, and the open and recent
benchmark requests.

The page is rendered on the server, so it is a read like the API: it needs ``open_reads`` or an
``Authorization: Bearer <read token>`` header, which a browser does not send by itself; put a
reverse proxy that adds the header (and its own login) in front of the server to use the page
while reads are closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from agent import __version__
from server.alerting import views
from server.alerting.service import AlertingService
from server.auth import READ
from server.bench.model import OPEN_STATES, BenchRequest
from server.bench.service import BenchService
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


@dataclass(frozen=True)
class AlertRow:
    name: str
    state: str  # firing, pending or resolved
    severity: str
    where: str  # instance, GPU
    summary: str
    since_seconds: float  # since it became active (resolved: since it resolved)
    held: bool


_STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}
RECENT_REQUESTS = 20


@dataclass(frozen=True)
class BenchRow:
    node: str
    gpu: str  # index
    key: str  # UUID, or <node>/cpu<index>
    model: str
    sku: str
    level: str
    age_seconds: float
    passed: bool
    worst_ratio: float | None  # the lowest figure / SKU reference of its latest figures
    worst_test: str
    outlier: bool
    outlier_reason: str


def bench_rows(bench: BenchService, now: float) -> list[BenchRow]:
    """Returns: each device's latest benchmark run: failed first, then outliers, by node."""
    snapshot = bench.fleet()
    worst: dict[str, tuple[float, str]] = {}
    for figure in snapshot.figures:
        if figure.ratio is not None and figure.ratio < worst.get(figure.gpu_key, (math.inf, ""))[0]:
            worst[figure.gpu_key] = (figure.ratio, figure.test)
    rows = []
    for device in snapshot.devices:
        outliers = snapshot.outliers(device.gpu_key)
        ratio, test = worst.get(device.gpu_key, (None, ""))
        rows.append(
            BenchRow(
                node=device.node_name,
                gpu=str(device.gpu_index),
                key=device.gpu_key,
                model=device.device_name,
                sku=device.sku,
                level=device.level,
                age_seconds=max(0.0, now - device.time),
                passed=device.passed,
                worst_ratio=ratio,
                worst_test=test,
                outlier=bool(outliers),
                outlier_reason="; ".join(f"{v.result.test}: {v.reason}" for v in outliers),
            )
        )
    rows.sort(key=lambda r: (r.passed, not r.outlier, r.node, r.gpu, r.key))
    return rows


def bench_requests(bench: BenchService) -> list[BenchRequest]:
    """Returns: the open requests, then the most recent others."""
    recent = bench.requests.recent(limit=RECENT_REQUESTS)
    return sorted(recent, key=lambda r: (r.state not in OPEN_STATES, -r.created_at))


def alert_rows(alerting: AlertingService | None, now: float) -> list[AlertRow]:
    """Returns: the alerts for the page, firing first, then pending, then resolved."""
    if alerting is None:
        return []
    body = views.dcmon_alerts(alerting.evaluator.snapshot(), include_resolved=True)
    rows = []
    for alert in body["alerts"]:
        labels: dict[str, str] = alert["labels"]
        where = labels.get("instance") or labels.get("Hostname", "")
        if "gpu" in labels:
            where = f"{where} GPU {labels['gpu']}".strip()
        since = alert["resolved_at"] if alert["state"] == "resolved" else alert["active_at"]
        rows.append(
            AlertRow(
                labels.get("alertname", alert["rule"]),
                alert["state"],
                labels.get("severity", ""),
                where,
                alert["annotations"].get("summary", ""),
                max(0.0, now - (since or now)),
                alert["held"],
            )
        )
    rows.sort(key=lambda r: (_STATE_ORDER.get(r.state, 3), r.since_seconds, r.name, r.where))
    return rows


def page_model(services: Services, alerting: AlertingService | None = None) -> dict[str, object]:
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
        "alerts": alert_rows(alerting, now),
        "bench": bench_rows(services.bench, now),
        "bench_requests": bench_requests(services.bench),
        "now": now,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, services: ServicesDep) -> HTMLResponse:
    alerting: AlertingService | None = getattr(request.app.state, "alerting", None)
    model = await run_in_threadpool(page_model, services, alerting)
    template = request.app.state.templates.get_template("index.html")
    return HTMLResponse(template.render(**model))
