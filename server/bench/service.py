"""The benchmark service: requests, reports, results and the fleet view, for the routers.

Stage: bench API, ingest answers, maintenance, series -> requests and results stores. Every
write that changes a request marks this replica's order cache stale (``orders.py``), so its
next push answer carries the change. The fleet snapshot (``snapshot.py``: latest figures
judged against their peers) is computed once and kept while no run is stored and the same
minute lasts: the key is the runs table's (count, highest id) and the minute, so any replica's
new run is seen within a minute at the latest (at once when the count changed). It covers the
results of the last ``window_seconds``: older runs (a GPU since removed) are left out of the
fleet judgement and the series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agent.wire.bench import BenchReport
from server.bench.model import BenchRequest, Created, NewRequest
from server.bench.orders import OrderCache
from server.bench.requests import RequestStore
from server.bench.results import DeviceRunView, FigureView, ResultFilter, ResultStore
from server.bench.snapshot import FleetSnapshot, Sample, samples

DEFAULT_WINDOW_SECONDS = 30 * 86400.0
SNAPSHOT_SECONDS = 60.0


@dataclass(frozen=True)
class History:
    gpu: str
    runs: list[DeviceRunView]
    figures: list[FigureView]


class BenchService:
    def __init__(
        self,
        requests: RequestStore,
        results: ResultStore,
        orders: OrderCache,
        clock: Callable[[], float],
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        self.requests = requests
        self.results = results
        self.orders = orders
        self._clock = clock
        self._window = window_seconds
        self._snapshot: tuple[tuple[int, int, int], FleetSnapshot] | None = None
        self._lock = threading.Lock()

    # -- requests -------------------------------------------------------------------------

    def create(
        self,
        new: NewRequest,
        names: Sequence[str] | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> Created:
        created = self.requests.create(new, names, selector)
        self.orders.invalidate()
        return created

    def cancel(self, request_id: str, by: str) -> BenchRequest:
        try:
            return self.requests.cancel(request_id, by)
        finally:
            self.orders.invalidate()

    def report(self, request_id: str, node_id: str | None, report: BenchReport) -> BenchRequest:
        try:
            return self.requests.report(request_id, node_id, report, self.results.store_run)
        finally:
            self.orders.invalidate()

    def expire(self) -> int:
        """Mark open requests past their deadline expired (maintenance)."""
        expired = self.requests.expire_due()
        if expired:
            self.orders.invalidate()
        return expired

    # -- results --------------------------------------------------------------------------

    def figures(self, where: ResultFilter) -> list[FigureView]:
        return self.results.figures(where)

    def history(
        self, gpu: str, test: str | None, since: float | None, until: float | None, limit: int
    ) -> History:
        where = ResultFilter(gpu=gpu, test=test, since=since, until=until, limit=limit)
        return History(
            gpu, self.results.device_runs(gpu, since, until, limit), self.results.figures(where)
        )

    def fleet(self) -> FleetSnapshot:
        """Returns: the latest figures of the window, judged against the fleet (cached)."""
        now = self._clock()
        count, newest = self.results.version()
        key = (count, newest, int(now // SNAPSHOT_SECONDS))
        with self._lock:
            if self._snapshot is not None and self._snapshot[0] == key:
                return self._snapshot[1]
            since = now - self._window
            snapshot = FleetSnapshot.of(
                self.results.latest_figures(since), self.results.latest_devices(since)
            )
            self._snapshot = (key, snapshot)
            return snapshot

    def samples(self) -> list[Sample]:
        """Returns: the ``dcmon_bench_*`` series now (``snapshot.samples``)."""
        return samples(self.fleet())
