"""The models of the drill-down pages (node, GPU, job) and of the lists (jobs, hints, alerts,
benchmarks): plain data gathered from the services, for the templates.

Stage: services -> (this) -> ``server/web/router.py`` renders them. Each builder takes the
services and returns a dict for its template, or None when what was asked for is not known
(the router answers 404).
"""

from __future__ import annotations

from typing import Any

from server.alerting.service import AlertingService
from server.deps import Services
from server.events.store import EventQuery, EventRecord
from server.jobs.store import JobQuery, JobRecord
from server.nodes.service import node_view
from server.notify.silence_store import SilenceStore, matchers_to_api
from server.rebalancing.model import OPEN_STATES, HintFilter, HintNotFoundError, HintState
from server.rebalancing.schemas import HintOut, HintSummaryOut
from server.rebalancing.service import HintService
from server.web import charts
from server.web.alerts import active, alert_rows, of_node
from server.web.benchmarks import bench_requests, bench_rows, figures_of
from server.web.fleet import rows_of
from server.web.health import XID_LOOKBACK_SECONDS, HealthReader, critical_xids

EVENTS_SHOWN = 50
JOBS_SHOWN = 200
HINTS_SHOWN = 200


def recent_xids(services: Services, now: float, node: str | None = None) -> HealthReader:
    """Returns: a health reader knowing the critical XIDs of the last hour, of the fleet or of
    one ``node``."""
    events = services.events.events(
        EventQuery(limit=10_000, node=node, severity="critical", start=now - XID_LOOKBACK_SECONDS)
    )
    return HealthReader(critical_xids(events))


def open_hints(hints: HintService | None, **where: Any) -> list[HintSummaryOut]:
    if hints is None:
        return []
    found = hints.store.find(HintFilter(states=OPEN_STATES, limit=HINTS_SHOWN, **where))
    return [HintSummaryOut.of(h) for h in found]


def _jobs_running_on(services: Services, node: str, now: float) -> list[JobRecord]:
    return services.jobs.jobs(JobQuery(limit=JOBS_SHOWN, node=node, state="running"), now)


def _events(services: Services, **where: Any) -> list[EventRecord]:
    return services.events.events(EventQuery(limit=EVENTS_SHOWN, **where))


def node_page(
    services: Services, alerting: AlertingService | None, hints: HintService | None, key: str
) -> dict[str, Any] | None:
    now = services.clock()
    view = node_view(services.store, services.latest, services.policy, key, now)
    if view is None:
        return None
    (row,) = rows_of([view], recent_xids(services, now, view.record.name), now)
    name = view.record.name
    jobs = _jobs_running_on(services, name, now)
    job_of_gpu = {g.uuid: job.job_id for job in jobs for g in job.gpus if g.node_name == name}
    fabric = view.latest is not None and bool(view.latest.families.get(charts.FABRIC_METRIC))
    chart_list = charts.node_charts(name, view.record.interval_seconds, bool(view.gpus))
    if fabric:
        chart_list += charts.fabric_charts(name, view.record.interval_seconds)
    return {
        "node": row,
        "record": view.record,
        "facts": view.record.host_facts,
        "job_of_gpu": job_of_gpu,
        "jobs": jobs,
        "events": _events(services, node=name),
        "alerts": of_node(active(alert_rows(alerting, now)), name),
        "hints": open_hints(hints, node=name),
        "charts": chart_list,
        "now": now,
    }


def gpu_page(
    services: Services,
    alerting: AlertingService | None,
    hints: HintService | None,
    key: str,
    index: int,
) -> dict[str, Any] | None:
    now = services.clock()
    view = node_view(services.store, services.latest, services.policy, key, now)
    if view is None:
        return None
    (row,) = rows_of([view], recent_xids(services, now, view.record.name), now)
    gpu = next((g for g in row.gpus if g.index == index), None)
    if gpu is None:
        return None
    name = view.record.name
    record = next(g.record for g in view.gpus if g.record.index == index)
    jobs = [
        job
        for job in _jobs_running_on(services, name, now)
        if any(g.uuid == gpu.uuid for g in job.gpus)
    ]
    bench_row, figures = figures_of(services.bench, gpu.uuid, now)
    readings = {}
    if view.up and view.latest is not None:
        for metric in (
            "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_PCIE_LINK_GEN",
            "DCGM_FI_DEV_PCIE_LINK_WIDTH", "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
            "DCGM_FI_DEV_SLOWDOWN_TEMP", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        ):  # fmt: skip
            value = view.latest.value(metric, UUID=gpu.uuid)
            if value is not None:
                readings[metric] = value
    return {
        "node": row,
        "gpu": gpu,
        "record": record,
        "jobs": jobs,
        "events": _events(services, node=name, uuid=gpu.uuid),
        "alerts": of_node(active(alert_rows(alerting, now)), name, str(index)),
        "hints": [h for h in open_hints(hints, node=name) if h.subject.gpu in (None, index)],
        "bench": bench_row,
        "figures": figures,
        "readings": readings,
        "charts": charts.gpu_charts(name, gpu.uuid, view.record.interval_seconds),
        "now": now,
    }


def jobs_page(services: Services, state: str | None, user: str, node: str) -> dict[str, Any]:
    now = services.clock()
    query = JobQuery(
        limit=JOBS_SHOWN,
        user=user or None,
        node=node or None,
        state=state if state in ("running", "finished") else None,  # type: ignore[arg-type]
    )
    return {"jobs": services.jobs.jobs(query, now), "state": state or "", "user": user,
            "node_filter": node, "now": now}  # fmt: skip


def job_page(
    services: Services, hints: HintService | None, job_id: str, scheduler: str | None
) -> dict[str, Any] | None:
    now = services.clock()
    records = services.jobs.job(job_id, scheduler, now)
    if not records:
        return None
    job = records[0]
    uuids = sorted({g.uuid for g in job.gpus})
    return {
        "job": job,
        "others": records[1:],
        "nodes": sorted({g.node_name for g in job.gpus}),
        "hints": open_hints(hints, pod=job.job_id),
        "charts": charts.job_charts(uuids) if uuids else [],
        "now": now,
    }


def alerts_page(services: Services, alerting: AlertingService | None) -> dict[str, Any]:
    now = services.clock()
    rows = alert_rows(alerting, now)
    silences = SilenceStore(services.store.engine, services.store.writer, services.clock).all()
    return {
        "firing": [r for r in rows if r.state == "firing"],
        "pending": [r for r in rows if r.state == "pending"],
        "resolved": [r for r in rows if r.state == "resolved"],
        "silences": [
            {
                "id": s.silence_id,
                "state": s.state(now),
                "matchers": matchers_to_api(s.matchers),
                "starts_at": s.starts_at,
                "ends_at": s.ends_at,
                "created_by": s.created_by,
                "comment": s.comment,
            }
            for s in silences
        ],
        "now": now,
    }


def hints_page(
    services: Services, hints: HintService | None, kind: str, state: str
) -> dict[str, Any]:
    now = services.clock()
    if hints is None:
        return {"hints": [], "round": None, "kind": kind, "state": state, "now": now}
    found = hints.store.find(
        HintFilter(kind=kind or None, states=_hint_states(state), limit=HINTS_SHOWN)
    )
    return {
        "hints": [HintSummaryOut.of(h) for h in found],
        "round": hints.last_round,
        "kind": kind,
        "state": state or "open",
        "now": now,
    }


def _hint_states(state: str) -> frozenset[HintState]:
    """Returns: the states the hints page's ``state`` filter names (the open ones when it
    names none)."""
    if state == "all":
        return frozenset(HintState)
    if state in {s.value for s in HintState}:
        return frozenset({HintState(state)})
    return OPEN_STATES


def hint_page(services: Services, hints: HintService | None, hint_id: str) -> dict[str, Any] | None:
    if hints is None:
        return None
    try:
        stored = hints.store.get(hint_id)
    except HintNotFoundError:
        return None
    return {"hint": HintOut.of(stored), "now": services.clock()}


def benchmarks_page(services: Services) -> dict[str, Any]:
    now = services.clock()
    nodes = [n.name for n in services.store.nodes()]
    return {
        "bench": bench_rows(services.bench, now),
        "bench_requests": bench_requests(services.bench),
        "node_names": nodes,
        "now": now,
    }
