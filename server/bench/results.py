"""Benchmark results in the database: a final report's run stored, figures and runs read back.

Stage: bench report -> storage -> bench API, fleet, series, web. ``store_run`` writes inside the
report's transaction (``requests.RequestStore.report``), so a request is final exactly when
its result is stored. Reads go straight to the database, so every replica serves the same
results. "The latest per GPU" (of a figure per test, of a run) is one windowed query over the
``(gpu_key, test, time)`` / ``(gpu_key, time)`` indexes, bounded to the window asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, func, insert, select

from agent.wire.bench import BenchRun
from agent.wire.skus import SkuTable
from server.bench.model import BenchRequest
from server.bench.records import flatten
from server.bench.tables import BenchFigureRow, BenchRunGpuRow, BenchRunRow

_runs: Table = BenchRunRow.__table__  # type: ignore[assignment]
_gpus: Table = BenchRunGpuRow.__table__  # type: ignore[assignment]
_figures: Table = BenchFigureRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class FigureView:
    """One stored figure with its run's request and level."""

    id: int
    run_id: int
    request_id: str | None
    level: str
    node_id: str
    node_name: str
    gpu_key: str
    gpu_index: int
    gpu_uuid: str | None
    device_name: str
    sku: str
    test: str
    value: float | None
    unit: str
    status: str
    verdict: str
    basis: str | None
    reference: float | None
    ratio: float | None
    reason: str
    time: float


@dataclass(frozen=True)
class DeviceRunView:
    """One device in one run: whether it passed."""

    run_id: int
    request_id: str | None
    gpu_key: str
    node_id: str
    node_name: str
    gpu_index: int
    gpu_uuid: str | None
    kind: str
    device_name: str
    sku: str
    level: str
    passed: bool
    time: float


@dataclass(frozen=True)
class ResultFilter:
    node: str | None = None  # name or node id
    gpu: str | None = None  # gpu key (UUID, or <node>/cpu<index>)
    sku: str | None = None
    test: str | None = None
    verdict: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


class ResultStore:
    """The ``bench_runs``, ``bench_run_gpus`` and ``bench_figures`` tables."""

    def __init__(self, engine: Engine, table: SkuTable) -> None:
        self._engine = engine
        self._table = table

    def store_run(
        self, conn: Connection, request: BenchRequest, run: BenchRun, received_at: float
    ) -> int:
        """Store ``run`` of ``request`` in ``conn``'s transaction; returns the run's id."""
        flat = flatten(run, request.node_name, self._table)
        run_id = conn.execute(
            insert(_runs).returning(_runs.c.id),
            {
                "request_id": request.request_id,
                "node_id": request.node_id,
                "node_name": request.node_name,
                "level": run.level,
                "backend": run.backend,
                "started_at": run.started_at,
                "duration_s": run.duration_s,
                "passed": run.passed,
                "received_at": received_at,
                "result": run.model_dump(mode="json"),
            },
        ).scalar_one()
        common = {
            "run_id": run_id,
            "node_id": request.node_id,
            "node_name": request.node_name,
            "time": run.started_at,
        }
        if flat.devices:
            conn.execute(
                insert(_gpus),
                [
                    {
                        **common,
                        "gpu_key": d.gpu_key,
                        "gpu_index": d.gpu_index,
                        "gpu_uuid": d.gpu_uuid,
                        "kind": d.kind,
                        "device_name": d.device_name,
                        "sku": d.sku,
                        "level": run.level,
                        "passed": d.passed,
                    }
                    for d in _unique_devices(flat.devices)
                ],
            )
        if flat.figures:
            conn.execute(
                insert(_figures),
                [{**common, **f.__dict__} for f in flat.figures],
            )
        return int(run_id)

    # -- reads ----------------------------------------------------------------------------

    def figures(self, where: ResultFilter) -> list[FigureView]:
        """Returns: stored figures matching ``where``, newest first."""
        query = _figure_select()
        f = _figures.c
        if where.node is not None:
            query = query.where((f.node_name == where.node) | (f.node_id == where.node))
        if where.gpu is not None:
            query = query.where(f.gpu_key == where.gpu)
        if where.sku is not None:
            query = query.where(f.sku == where.sku)
        if where.test is not None:
            query = query.where(f.test == where.test)
        if where.verdict is not None:
            query = query.where(f.verdict == where.verdict)
        if where.since is not None:
            query = query.where(f.time >= where.since)
        if where.until is not None:
            query = query.where(f.time <= where.until)
        query = query.order_by(f.time.desc(), f.id.desc()).limit(where.limit)
        with self._engine.connect() as conn:
            return [_figure_view(row._mapping) for row in conn.execute(query)]

    def device_runs(
        self, gpu: str, since: float | None, until: float | None, limit: int
    ) -> list[DeviceRunView]:
        """Returns: the runs of one device, newest first."""
        g = _gpus.c
        query = _device_select().where(g.gpu_key == gpu)
        if since is not None:
            query = query.where(g.time >= since)
        if until is not None:
            query = query.where(g.time <= until)
        query = query.order_by(g.time.desc(), g.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_device_view(row._mapping) for row in conn.execute(query)]

    def latest_figures(self, since: float) -> list[FigureView]:
        """Returns: each device's latest measured figure per test since ``since``."""
        f = _figures.c
        ranked = (
            _figure_select()
            .add_columns(
                func.row_number()
                .over(partition_by=(f.gpu_key, f.test), order_by=(f.time.desc(), f.id.desc()))
                .label("rank")
            )
            .where(f.time >= since, f.status == "ok", f.value.is_not(None))
            .subquery()
        )
        query = select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.gpu_key, ranked.c.test)
        with self._engine.connect() as conn:
            return [_figure_view(row._mapping) for row in conn.execute(query)]

    def latest_devices(self, since: float) -> list[DeviceRunView]:
        """Returns: each device's latest run since ``since``."""
        g = _gpus.c
        ranked = (
            _device_select()
            .add_columns(
                func.row_number()
                .over(partition_by=g.gpu_key, order_by=(g.time.desc(), g.id.desc()))
                .label("rank")
            )
            .where(g.time >= since)
            .subquery()
        )
        query = select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.gpu_key)
        with self._engine.connect() as conn:
            return [_device_view(row._mapping) for row in conn.execute(query)]

    def version(self) -> tuple[int, int]:
        """Returns: (runs stored, highest run id): changes whenever a run is stored."""
        with self._engine.connect() as conn:
            count, newest = conn.execute(select(func.count(), func.max(_runs.c.id))).one()
        return int(count), int(newest or 0)

    def run_of(self, request_id: str) -> tuple[int, dict[str, Any]] | None:
        """Returns: the id and result tree of a request's stored run, if it has one."""
        with self._engine.connect() as conn:
            found = conn.execute(
                select(_runs.c.id, _runs.c.result).where(_runs.c.request_id == request_id)
            ).first()
        return None if found is None else (int(found.id), dict(found.result))


def _unique_devices(devices: Sequence[Any]) -> list[Any]:
    """A run naming one device twice keeps its first entry (the key is unique per run)."""
    seen: dict[str, Any] = {}
    for device in devices:
        seen.setdefault(device.gpu_key, device)
    return list(seen.values())


def _figure_select() -> Select[Any]:
    return select(
        *(c for c in _figures.c if c.name != "run_id"),
        _figures.c.run_id,
        _runs.c.request_id,
        _runs.c.level,
    ).join_from(_figures, _runs, _figures.c.run_id == _runs.c.id)


def _device_select() -> Select[Any]:
    return select(
        *(c for c in _gpus.c if c.name not in ("id",)),
        _gpus.c.id,
        _runs.c.request_id,
    ).join_from(_gpus, _runs, _gpus.c.run_id == _runs.c.id)


def _figure_view(row: Any) -> FigureView:
    return FigureView(
        id=row["id"],
        run_id=row["run_id"],
        request_id=row["request_id"],
        level=row["level"],
        node_id=row["node_id"],
        node_name=row["node_name"],
        gpu_key=row["gpu_key"],
        gpu_index=row["gpu_index"],
        gpu_uuid=row["gpu_uuid"],
        device_name=row["device_name"],
        sku=row["sku"],
        test=row["test"],
        value=row["value"],
        unit=row["unit"],
        status=row["status"],
        verdict=row["verdict"],
        basis=row["basis"],
        reference=row["reference"],
        ratio=row["ratio"],
        reason=row["reason"],
        time=float(row["time"]),
    )


def _device_view(row: Any) -> DeviceRunView:
    return DeviceRunView(
        run_id=row["run_id"],
        request_id=row["request_id"],
        gpu_key=row["gpu_key"],
        node_id=row["node_id"],
        node_name=row["node_name"],
        gpu_index=row["gpu_index"],
        gpu_uuid=row["gpu_uuid"],
        kind=row["kind"],
        device_name=row["device_name"],
        sku=row["sku"],
        level=row["level"],
        passed=bool(row["passed"]),
        time=float(row["time"]),
    )
