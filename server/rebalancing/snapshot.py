"""``LiveSource``: the hint engine's snapshot built from what the server already holds.

Stage: rebalancing (server). Input: the node inventory and latest values (``server/storage``,
``server/latest``), job accounting (``server/jobs``), history through the PromQL engine
(``snapshot_telemetry``), XID events (``server/events``) and benchmark results
(``server/bench``). Output: ``server.hints.model.Snapshot`` at ``now``, for
``SnapshotSource.build`` (``source.py``).

What is known live, and what is not:

- nodes: every node that has pushed, by name (the newest of several with one name), CPU in
  milli from its ``cpu_count``, memory in MiB, labels; schedulable while it is up (a down
  node keeps its GPUs in the snapshot so nothing is moved there);
- GPUs: the inventory's index, UUID, model and memory; ``free_milli`` 0 for a GPU a running job
  holds, else 1000; failures as ``snapshot_health`` classifies them; the slowdown temperature
  from ``DCGM_FI_DEV_SLOWDOWN_TEMP``;
- pods: one per running job and node (a job on several nodes is a gang named by the job),
  holding whole GPUs (a GPU shared by several single-GPU jobs is split evenly between them);
  CPU and memory requests are **not** known from telemetry and are 0, so CPU-bound stranding
  (the ``defragment`` case of CPU-only pods) is not seen live; preemptible unless its
  scheduler is listed in ``LiveOptions.not_preemptible_schedulers``;
- pending demand: not known (dcmon does not read scheduler queues), so none;
- telemetry: per-GPU windows over ``window_s`` (by default the policy's idle threshold) and per
  pod activity from its GPUs' utilization history (``activity``). A job's own CPU use is not
  known; the node's CPU busy share over the window stands in for it (an upper bound on the
  job's share of the node, so a busy host keeps an idle hint away), 0 where the node sends no
  CPU counters.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from server.alerting.pseudo_nodes import is_server_side
from server.bench.snapshot import FleetSnapshot
from server.events.store import EventQuery, EventStore
from server.hints.model import (
    MILLI,
    Failure,
    Gpu,
    GpuWindow,
    JobActivity,
    Node,
    Pod,
    Request,
    Snapshot,
    Telemetry,
)
from server.hints.policy import Policy
from server.jobs.store import JobGpuRecord, JobQuery, JobRecord, JobStore
from server.latest.cache import LatestCache, StalePolicy
from server.promql.engine import Engine
from server.query.source import Deadline, StaleRule, StorageSource
from server.rebalancing import snapshot_health as health
from server.rebalancing import snapshot_telemetry as telemetry
from server.rebalancing.activity import UtilGrid, job_activity
from server.storage.records import GpuRecord, NodeRecord
from server.storage.store import Store

if TYPE_CHECKING:
    from server.deps import Services

_log = logging.getLogger(__name__)

MIB = 1 << 20
MAPPING = "mapping"  # the scheduler of a job named only by a job-mapping file


@dataclass(frozen=True)
class LiveOptions:
    """How the live snapshot reads the server's data. Times in seconds."""

    window_s: float | None = None
    """Telemetry window of GPUs and jobs; None: the policy's ``idle_threshold_s``."""
    history_s: float = 12 * 3600.0
    """Utilization history read for job activity: the idle gaps the engine learns from. A
    gap older than this is not known, so keep it several times the longest phase gap."""
    step_s: float = 60.0
    """Resolution of that history (one minute: the rollup tier's bucket)."""
    xid_lookback_s: float = 86400.0
    """A fatal XID counts this long after it was reported (until the GPU has been serviced
    and has run clean for a day)."""
    not_preemptible_schedulers: frozenset[str] = frozenset()
    """Jobs of these schedulers are never moved or released (e.g. ``{"slurm"}``)."""
    node_cpu: bool = True
    """Read the nodes' CPU busy share as the stand-in for a job's CPU use."""
    max_jobs: int = 100_000
    """Running jobs read per round at most."""


@dataclass(frozen=True)
class BuildStats:
    """What the last ``build`` cost: wall seconds, PromQL queries, nodes, pods."""

    seconds: float
    queries: int
    nodes: int
    pods: int


@dataclass(frozen=True)
class LiveInputs:
    """The server's stores and readers a live snapshot is built from."""

    store: Store
    jobs: JobStore
    events: EventStore
    latest: LatestCache
    stale: StalePolicy
    fleet: Callable[[], FleetSnapshot]
    engine: Callable[[], Engine]  # a fresh PromQL engine (and query deadline) per query

    @classmethod
    def of(cls, services: Services) -> LiveInputs:
        """Returns: the app's services, querying history as the alert rules do."""
        settings = services.settings

        def engine() -> Engine:
            seconds = settings.query_timeout_seconds
            deadline = Deadline.after(seconds, f"limit: query_timeout_seconds = {seconds:g}")
            rule = StaleRule(
                settings.stale_after_intervals, settings.stale_after_min_seconds, services.clock
            )
            source = StorageSource(
                services.store,
                services.reader,
                deadline,
                settings.query_max_samples,
                rule,
                services.catalog,
            )
            return Engine(source)

        return cls(
            store=services.store,
            jobs=services.jobs,
            events=services.events,
            latest=services.latest,
            stale=services.policy,
            fleet=services.bench.fleet,
            engine=engine,
        )


class LiveSource:
    """``SnapshotSource`` over the server's stores: ``LiveSource(services)`` in the app."""

    def __init__(
        self,
        services: Services | LiveInputs,
        policy: Policy | None = None,
        options: LiveOptions | None = None,
    ) -> None:
        self.inputs = services if isinstance(services, LiveInputs) else LiveInputs.of(services)
        self.policy = policy or Policy()
        self.options = options or LiveOptions()
        self.last: BuildStats | None = None
        """What the last ``build`` cost."""

    @classmethod
    def of(
        cls, services: Services, policy: Policy | None = None, options: LiveOptions | None = None
    ) -> LiveSource:
        return cls(services, policy, options)

    @property
    def window_s(self) -> float:
        return self.options.window_s or self.policy.idle_threshold_s

    def build(self, now: float) -> Snapshot:
        """Returns: the cluster at ``now`` (Unix seconds) as the engine reads it."""
        began = time.perf_counter()
        options = self.options
        inputs = self.inputs
        records = _nodes_by_name(inputs.store.nodes())
        inventory = inputs.store.gpus_by_node()
        cached = {n.node_id: n for n in inputs.latest.nodes()}
        jobs = _merged(inputs.jobs.jobs(JobQuery(options.max_jobs, state="running"), now))
        seen = telemetry.read(
            inputs.engine, now, self.window_s, options.history_s, options.step_s, options.node_cpu
        )
        events = inputs.events.events(
            EventQuery(10_000, severity="critical", start=now - options.xid_lookback_s, end=now)
        )
        xids = health.xid_failures(events)
        bench = health.bench_failures(inputs.fleet())

        gpus_of: dict[str, list[GpuRecord]] = {
            name: _current_gpus(inventory.get(record.pk, [])) for name, record in records.items()
        }
        pods, held = self._pods(jobs, gpus_of)
        nodes = []
        windows = []
        for name, record in sorted(records.items()):
            node_latest = cached.get(record.node_id)
            up = node_latest is not None and inputs.stale.is_up(node_latest, now)
            readings = health.latest_by_uuid(node_latest) if up and node_latest else {}
            gpus = []
            for gpu in gpus_of[name]:
                own = readings.get(gpu.uuid, {})
                failures: list[Failure] = health.latest_failures(own) if up else []
                for where in (gpu.uuid, f"#{gpu.index}"):
                    failures += xids.get((name, where), []) + bench.get((name, where), [])
                gpus.append(
                    Gpu(
                        index=gpu.index,
                        uuid=gpu.uuid,
                        model=gpu.model,
                        memory_mib=(gpu.memory_total_bytes or 0) // MIB,
                        free_milli=0 if (name, gpu.index) in held else MILLI,
                        failures=tuple(failures),
                        slowdown_celsius=own.get(health.SLOWDOWN),
                    )
                )
                window = _window(name, gpu.index, seen.gpus.get((name, gpu.uuid)), self.window_s)
                if window is not None:
                    windows.append(window)
            nodes.append(_node(record, tuple(gpus), up))
        activity = self._activity(pods, gpus_of, seen, now)
        snapshot = Snapshot(
            nodes=tuple(nodes),
            pods=tuple(pods),
            telemetry=Telemetry(gpus=tuple(windows), jobs=tuple(activity)),
            now_s=now,
        )
        self.last = BuildStats(time.perf_counter() - began, seen.queries, len(nodes), len(pods))
        return snapshot

    def _pods(
        self, jobs: Sequence[JobRecord], gpus_of: dict[str, list[GpuRecord]]
    ) -> tuple[list[Pod], dict[tuple[str, int], list[str]]]:
        """Returns: a pod per running job and node, and (node, GPU index) -> pods on it."""
        placed: list[tuple[JobRecord, str, tuple[int, ...], float]] = []
        for job in jobs:
            by_node: dict[str, list[JobGpuRecord]] = defaultdict(list)
            for gpu in job.gpus:
                if gpu.running and gpu.node_name in gpus_of:
                    by_node[gpu.node_name].append(gpu)
            for node, used in sorted(by_node.items()):
                index_of = {g.uuid: g.index for g in gpus_of[node]}
                held_here = tuple(sorted({index_of[g.uuid] for g in used if g.uuid in index_of}))
                if held_here:
                    placed.append((job, node, held_here, min(g.first_seen for g in used)))
        held: dict[tuple[str, int], list[str]] = defaultdict(list)
        per_job: dict[int, int] = defaultdict(int)
        for placement in placed:
            per_job[placement[0].pk] += 1
        ids = _pod_ids(placed, per_job)
        for (_, node, indices, _), pod_id in zip(placed, ids, strict=True):
            for index in indices:
                held[(node, index)].append(pod_id)
        pods = []
        for (job, node, indices, started), pod_id in zip(placed, ids, strict=True):
            share = MILLI
            if len(indices) == 1:
                share = MILLI // len(held[(node, indices[0])])
            pods.append(
                Pod(
                    id=pod_id,
                    request=Request(0, 0, num_gpu=len(indices), gpu_milli=share),
                    node=node,
                    gpus=indices,
                    gang=job.job_id if per_job[job.pk] > 1 else None,
                    preemptible=job.scheduler not in self.options.not_preemptible_schedulers,
                    scheduler=job.scheduler,
                    started_at_s=started,
                )
            )
        return pods, held

    def _activity(
        self,
        pods: Sequence[Pod],
        gpus_of: dict[str, list[GpuRecord]],
        seen: telemetry.Telemetry,
        now: float,
    ) -> list[JobActivity]:
        history = seen.history
        missing = np.full(len(history.ends_s), np.nan)
        found = []
        for pod in pods:
            node = pod.node or ""
            uuid_of = {g.index: g.uuid for g in gpus_of[node]}
            rows = [history.util_pct.get((node, uuid_of[i]), missing) for i in pod.gpus]
            grid = UtilGrid(history.step_s, history.ends_s, np.vstack(rows))
            activity = job_activity(
                pod.id,
                grid,
                pod.started_at_s if pod.started_at_s is not None else now,
                now,
                self.window_s,
                self.policy.idle_gpu_util_pct,
                seen.node_cpu_busy_pct.get(node, 0.0),
            )
            if activity is not None:
                found.append(activity)
        return found


def _nodes_by_name(records: Sequence[NodeRecord]) -> dict[str, NodeRecord]:
    """Returns: name -> node, the most recently pushed of several with one name."""
    found: dict[str, NodeRecord] = {}
    for record in records:
        if is_server_side(record.node_id, record.name):
            continue  # where rule output is stored, not a node
        known = found.get(record.name)
        if known is None or record.last_push > known.last_push:
            found[record.name] = record
    return found


def _current_gpus(gpus: Sequence[GpuRecord]) -> list[GpuRecord]:
    """Returns: per index the GPU seen last (a replaced GPU's old row stays in the store)."""
    by_index: dict[int, GpuRecord] = {}
    for gpu in gpus:
        known = by_index.get(gpu.index)
        if known is None or gpu.last_seen > known.last_seen:
            by_index[gpu.index] = gpu
    return [by_index[i] for i in sorted(by_index)]


def _merged(jobs: Sequence[JobRecord]) -> list[JobRecord]:
    """Returns: one record per job id: a job a mapping file named and whose processes then
    named it again under its scheduler is one job (on the union of its GPUs)."""
    by_id: dict[str, list[JobRecord]] = defaultdict(list)
    for job in jobs:
        by_id[job.job_id].append(job)
    merged = []
    for job_id in sorted(by_id):
        group = sorted(by_id[job_id], key=lambda j: (j.scheduler == MAPPING, j.scheduler))
        if len(group) == 1 or all(j.scheduler != MAPPING for j in group):
            merged.extend(group)  # one job, or distinct schedulers that share an id
            continue
        first = group[0]
        gpus = {(g.node_name, g.uuid): g for j in reversed(group) for g in j.gpus}
        merged.append(
            JobRecord(
                pk=first.pk,
                job_id=first.job_id,
                scheduler=first.scheduler,
                user=first.user,
                first_seen=min(j.first_seen for j in group),
                last_seen=max(j.last_seen for j in group),
                running=True,
                usage=first.usage,
                gpus=list(gpus.values()),
            )
        )
    return merged


def _pod_ids(
    placed: Sequence[tuple[JobRecord, str, tuple[int, ...], float]], per_job: dict[int, int]
) -> list[str]:
    """Returns: the pod id of each placement: the job id (with its scheduler where two
    schedulers use one id), ``@<node>`` added for a job on several nodes."""
    schedulers: dict[str, set[str]] = defaultdict(set)
    for placement in placed:
        schedulers[placement[0].job_id].add(placement[0].scheduler)
    ids = []
    for job, node, _, _ in placed:
        base = job.job_id if len(schedulers[job.job_id]) == 1 else f"{job.scheduler}/{job.job_id}"
        ids.append(f"{base}@{node}" if per_job[job.pk] > 1 else base)
    return ids


def _node(record: NodeRecord, gpus: tuple[Gpu, ...], up: bool) -> Node:
    facts = record.host_facts or {}
    cpu_milli = int(facts.get("cpu_count") or 0) * MILLI
    memory_mib = int(facts.get("memory_total_bytes") or 0) // MIB
    return Node(
        name=record.name,
        cpu_milli=cpu_milli,
        cpu_milli_free=cpu_milli,  # requests are unknown (0), so nothing tracked uses CPU
        memory_mib=memory_mib,
        memory_mib_free=memory_mib,
        gpus=gpus,
        labels=tuple(sorted((record.labels or {}).items())),
        schedulable=up,
    )


def _window(
    node: str, index: int, readings: telemetry.GpuReadings | None, window_s: float
) -> GpuWindow | None:
    if readings is None:
        return None
    return GpuWindow(
        node=node,
        gpu=index,
        window_s=window_s,
        util_pct=readings.util_pct or 0.0,
        memory_used_mib=readings.memory_used_mib or 0.0,
        power_watts=readings.power_watts or 0.0,
        temperature_celsius=readings.temperature_celsius or 0.0,
        clock_event_share=dict(readings.clock_event_share),
    )


__all__ = ["BuildStats", "LiveInputs", "LiveOptions", "LiveSource"]
