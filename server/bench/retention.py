"""Retention of benchmark rows: old final requests go, with their runs, devices and figures.

Stage: maintenance (the leader's pass, after expiry) -> storage. A request is deleted when all of
these hold:

- it is final (done, failed, refused, cancelled, expired): an open request is never deleted;
- it ended (``finished_at``, server clock) longer than the retention ago;
- its run, if it has one, is no device's latest run and holds no device's latest measured
  figure of a test: those are what the fleet judgement and the ``dcmon_bench_*`` series read
  (``results.latest_devices``, ``results.latest_figures``), so they stay whatever their age,
  and their request with them.

Its run, the run's ``bench_run_gpus`` and ``bench_figures`` rows go with it. Every run belongs
to a request (``results.store_run`` stores a final report's run), so a request is the unit.
Candidates are found on a read connection, a chunk at a time; each chunk is deleted on the
writer in one job, so in one transaction: a request goes with all its rows or not at all, and
the job checks every condition again in the statement that picks the requests it deletes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import ColumnElement, Connection, Engine, Table, delete, exists, func, select
from sqlalchemy.sql.selectable import NamedFromClause

from server.bench.model import FINAL_STATES
from server.bench.tables import BenchFigureRow, BenchRequestRow, BenchRunGpuRow, BenchRunRow
from server.storage.writer import Writer

_requests: Table = BenchRequestRow.__table__  # type: ignore[assignment]
_runs: Table = BenchRunRow.__table__  # type: ignore[assignment]
_gpus: Table = BenchRunGpuRow.__table__  # type: ignore[assignment]
_figures: Table = BenchFigureRow.__table__  # type: ignore[assignment]
RETENTION_CHUNK = 50
"""Requests deleted per unit of work on the writer (ingest waits at most for one): with the
runs of eight-GPU nodes, some 5,000 rows."""


@dataclass(frozen=True)
class BenchPruned:
    requests: int
    runs: int


class BenchRetention:
    """Deletes final benchmark requests, and their results, older than the retention."""

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        clock: Callable[[], float],
        retention_seconds: float,
        chunk: int = RETENTION_CHUNK,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._clock = clock
        self._retention_seconds = retention_seconds
        self._chunk = chunk

    def prune(self) -> BenchPruned:
        """Delete every request that may go (see the module), a chunk per unit of work;
        returns how many requests and runs were deleted."""
        cutoff = self._clock() - self._retention_seconds
        requests = runs = 0
        after = ""
        while True:
            with self._engine.connect() as conn:
                ids = list(
                    conn.execute(
                        select(_requests.c.request_id)
                        .where(_requests.c.request_id > after, *_deletable(cutoff))
                        .order_by(_requests.c.request_id)
                        .limit(self._chunk)
                    ).scalars()
                )
            if not ids:
                return BenchPruned(requests, runs)
            after = ids[-1]
            done = self._writer.submit(partial(_delete, ids=ids, cutoff=cutoff))
            requests += done.requests
            runs += done.runs


def _deletable(cutoff: float) -> list[ColumnElement[bool]]:
    r = _requests.c
    return [
        r.open_node_id.is_(None),
        r.state.in_(sorted(FINAL_STATES)),
        r.created_at < cutoff,  # implied by the next (made before it ended), and indexed
        func.coalesce(r.finished_at, r.updated_at) < cutoff,
        ~exists().where(_runs.c.request_id == r.request_id, _holds_a_latest(_runs)),
    ]


def _holds_a_latest(run: NamedFromClause) -> ColumnElement[bool]:
    """Whether ``run`` is a device's latest run or holds a device's latest measured figure of
    a test (latest: the highest ``(time, id)``, as ``results`` orders them)."""
    device, newer_device = _gpus.alias("device"), _gpus.alias("newer_device")
    figure, newer_figure = _figures.alias("figure"), _figures.alias("newer_figure")
    latest_run = exists().where(
        device.c.run_id == run.c.id,
        ~exists().where(newer_device.c.gpu_key == device.c.gpu_key, _later(newer_device, device)),
    )
    latest_figure = exists().where(
        figure.c.run_id == run.c.id,
        _measured(figure),
        ~exists().where(
            newer_figure.c.gpu_key == figure.c.gpu_key,
            newer_figure.c.test == figure.c.test,
            _measured(newer_figure),
            _later(newer_figure, figure),
        ),
    )
    return latest_run | latest_figure


def _later(row: NamedFromClause, than: NamedFromClause) -> ColumnElement[bool]:
    return (row.c.time > than.c.time) | ((row.c.time == than.c.time) & (row.c.id > than.c.id))


def _measured(figure: NamedFromClause) -> ColumnElement[bool]:
    return (figure.c.status == "ok") & figure.c.value.is_not(None)


def _delete(conn: Connection, ids: list[str], cutoff: float) -> BenchPruned:
    """Delete those of ``ids`` that may still go, with their runs' rows, children first."""
    gone = list(
        conn.execute(
            select(_requests.c.request_id).where(
                _requests.c.request_id.in_(ids), *_deletable(cutoff)
            )
        ).scalars()
    )
    if not gone:
        return BenchPruned(0, 0)
    runs = list(conn.execute(select(_runs.c.id).where(_runs.c.request_id.in_(gone))).scalars())
    if runs:
        conn.execute(delete(_figures).where(_figures.c.run_id.in_(runs)))
        conn.execute(delete(_gpus).where(_gpus.c.run_id.in_(runs)))
        conn.execute(delete(_runs).where(_runs.c.id.in_(runs)))
    conn.execute(delete(_requests).where(_requests.c.request_id.in_(gone)))
    return BenchPruned(len(gone), len(runs))
