"""The application factory: ``create_app(settings)`` builds everything; nothing at import time.

Wires storage (engine, migrations, the single writer, the series index, store, reader and
compactor), credentials and the authenticators (config-file tokens, then the database's), the
latest-value cache (warmed from the database so a restarted server serves /metrics at once),
ingest, exposition and the routers, and runs maintenance in the background for the
application's lifetime: database-wide work (compaction, then retention) only while this process
is the maintenance leader (``server/storage/leader.py``), so several replicas can share one
PostgreSQL. The same leader evaluates the alerting and recording rules on a thread of its own
(``server/alerting``), reloaded on SIGHUP, and hands the alerts due to the notifier
(``server/notify``: the Alertmanagers and direct receivers of ``[notify]``, with silences and
the notification log in the database). Every replica stores its own ingest counters and its
nodes' clock skew as series for the rules (``server/alerting/self_series.py``). The GPU
benchmark (``server/bench``) keeps its requests and results in the database, hands each node's
open request to its push answers through a cache re-read every few seconds, and has the
leader write its ``dcmon_bench_*`` series for the rules. The leader also runs the rebalancing
hint engine every ``hints_interval_seconds`` on a snapshot of the cluster
(``server/rebalancing``), keeps the hints and their lifecycle in the database and writes the
``dcmon_hint_*`` series. Every route carries one access rule
(``server/auth/access.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.routing import Mount

from agent import __version__
from agent.wire.catalog import default_catalog
from agent.wire.skus import default_table
from server.alerting import router as alerting_router
from server.alerting.notifier import Notifier
from server.alerting.pseudo_nodes import is_server_side
from server.alerting.self_series import SelfSeriesLoop
from server.alerting.service import AlertingService
from server.alerting.writeback import StoreSeriesWriter
from server.auth import Role, StaticAuthenticator
from server.auth import login as login_router
from server.auth import router as auth_router
from server.auth.credentials import CredentialStore
from server.auth.session import SessionService, config_token_ids
from server.auth.verifier import ChainAuthenticator, DatabaseAuthenticator
from server.bench import router as bench_router
from server.bench.orders import OrderCache
from server.bench.requests import RequestStore
from server.bench.results import ResultStore
from server.bench.retention import BenchRetention
from server.bench.series import BenchSeries, BenchSeriesLoop
from server.bench.service import BenchService
from server.deps import Services
from server.discovery import router as discovery_router
from server.errors import install_error_handlers
from server.events import router as events_router
from server.events.store import EventStore
from server.exposition import router as exposition_router
from server.exposition.render import Renderer
from server.exposition.self_metrics import ServerMetrics
from server.health import router as health_router
from server.hints.policy import Policy
from server.history import router as history_router
from server.ingest import router as ingest_router
from server.ingest.admission import Admission
from server.ingest.service import IngestLimits, IngestService
from server.jobs import router as jobs_router
from server.jobs.store import JobStore
from server.latest import router as latest_router
from server.latest.cache import LatestCache, NodeLatest, StalePolicy
from server.nodes import router as nodes_router
from server.notify import router as silences_router
from server.notify.build import build_notifier
from server.notify.metrics import PrometheusCounts
from server.notify.nflog_store import SqlNotificationLog
from server.notify.service import Notifier as NotifyPipeline
from server.notify.silence_store import SilenceStore
from server.query import router as query_router
from server.query.service import QueryLimits, QueryService
from server.rebalancing import router as hints_router
from server.rebalancing.retention import HintRetention
from server.rebalancing.series import HintSeries, HintSeriesLoop
from server.rebalancing.service import HintLoop, HintService
from server.rebalancing.source import SnapshotSource
from server.rebalancing.store import HintStore, Lifecycle
from server.remote_write import router as remote_write_router
from server.remote_write.mapping import node_id_of
from server.remote_write.service import RemoteWriteService
from server.settings import ServerSettings
from server.status import router as status_router
from server.storage.compactor import Compactor
from server.storage.db import make_engine
from server.storage.leader import Leadership, leadership_for
from server.storage.lifecycle import SeriesLifecycle
from server.storage.migrate import upgrade
from server.storage.reader import Reader
from server.storage.series_index import SeriesIndex
from server.storage.store import Store
from server.storage.tiers import make_plan
from server.storage.writer import Writer
from server.tick_loop import TickLoop
from server.web import docs as docs_router
from server.web import router as web_router
from server.web.assets import PREFIX as STATIC_PREFIX
from server.web.assets import static_app
from server.web.router import make_templates

_log = logging.getLogger(__name__)
BATCH_RECORD_RETENTION_SECONDS = 2 * 86400.0


def _watch(metrics: ServerMetrics, leader: Leadership, admission: Admission) -> None:
    """The gauges read at each scrape: leadership and the ingest admission's slots and queue."""
    metrics.watch_leadership(lambda: leader.is_leader)
    metrics.watch_admission(lambda: admission.inflight, lambda: admission.waiting)


def create_app(
    settings: ServerSettings,
    *,
    clock: Callable[[], float] = time.time,
    engine: Engine | None = None,
    leader: Leadership | None = None,
    notifier: Notifier | None = None,
    hint_source: SnapshotSource | None = None,
) -> FastAPI:
    """Build the dcmon server application.

    Args:
        leader: who runs the singleton maintenance and rule evaluation; default: the advisory
            lock on PostgreSQL, this process on SQLite (``leadership_for``).
        notifier: where alerts go after each rule evaluation round; the caller starts and
            closes it. Default: the notifier ``settings.notify`` describes (Alertmanagers,
            direct receivers), started and closed with the application.
        hint_source: where the hint rounds get the cluster snapshot; default: the live source
            over this server's data (``_default_source``).

    Raises:
        NotifyConfigError: the receivers file of ``settings.notify`` is invalid.
    """
    engine = engine or make_engine(settings.effective_database_url())
    if settings.auto_migrate:
        before, after = upgrade(engine)
        if before != after:
            _log.info("database schema migrated from %s to %s", before or "empty", after)
    plan = make_plan(
        settings.storage_block_seconds,
        settings.compaction_grace_seconds,
        settings.raw_retention_seconds,
        settings.rollup_1m_retention_seconds,
        settings.rollup_1h_retention_seconds,
    )
    writer = Writer(engine)
    store = Store(
        engine, writer, SeriesIndex(), active_window_seconds=settings.active_series_window_seconds
    )
    _log.info("series index loaded: %d series", store.load_index())
    reader = Reader(engine, plan, clock)
    compactor = Compactor(engine, writer, plan, clock)
    events = EventStore(engine)
    jobs = JobStore(engine)
    policy = StalePolicy(
        settings.stale_after_intervals,
        settings.stale_after_min_seconds,
        settings.node_forget_after_seconds,
    )
    latest = LatestCache()
    warm_latest(store, reader, latest, policy, clock())
    catalog = default_catalog()
    metrics = ServerMetrics(catalog, lambda: _node_counts(latest, policy, clock()))
    leader = leader or leadership_for(engine)
    try:
        notifiers = _Notifiers.make(notifier, settings, engine, writer, metrics, clock, leader)
    except Exception:  # a bad receivers file: nothing is left running
        writer.close()
        engine.dispose()
        raise
    credentials = CredentialStore(engine, writer, clock)
    bench_requests = RequestStore(engine, writer, clock)
    bench = BenchService(
        bench_requests,
        ResultStore(engine, default_table()),
        OrderCache(bench_requests, clock, settings.bench_order_refresh_seconds),
        clock,
        settings.bench_window_seconds,
    )
    authenticator = ChainAuthenticator(
        StaticAuthenticator(
            {
                Role.INGEST: settings.ingest_token_sha256,
                Role.ADMIN: settings.admin_key_sha256,
                Role.READ: settings.read_token_sha256,
                Role.BOOTSTRAP: settings.bootstrap_token_sha256,
            }
        ),
        DatabaseAuthenticator(
            credentials,
            settings.credential_cache_seconds,
            clock,
            retry_after_seconds=settings.ingest_retry_after_seconds,
        ),
    )
    services = Services(
        settings=settings,
        catalog=catalog,
        store=store,
        reader=reader,
        compactor=compactor,
        leader=leader,
        plan=plan,
        events=events,
        jobs=jobs,
        latest=latest,
        policy=policy,
        ingest=IngestService(
            store,
            latest,
            metrics,
            IngestLimits.from_settings(settings),
            policy,
            clock,
            orders=bench.orders.order_for,
        ),
        authenticator=authenticator,
        credentials=credentials,
        renderer=Renderer(catalog, policy),
        metrics=metrics,
        bench=bench,
        clock=clock,
    )
    _watch(metrics, leader, services.ingest.admission)

    alerting = AlertingService(
        settings,
        store,
        reader,
        catalog,
        leader,
        clock,
        notifiers.notifier,
        clock_skews=lambda: {
            n.node_id: n.clock_skew_seconds for n in latest.nodes() if n.clock_skew_seconds
        },
    )
    self_series = SelfSeriesLoop.of_server(settings, metrics, latest, policy, store, clock)
    bench_series = BenchSeriesLoop(
        BenchSeries(
            bench, StoreSeriesWriter(store), leader, settings.rule_evaluation_interval_seconds
        ),
        clock,
    )
    hints, hint_loops = _hint_service(settings, services, writer, hint_source)
    loops: tuple[TickLoop, ...] = (
        *((self_series,) if settings.self_series else ()),
        bench_series,
        *hint_loops,
    )
    app = FastAPI(
        title="dcmon",
        version=__version__,
        summary="Monitoring for AI/GPU clusters: ingest, history, nodes, Prometheus exposition.",
        lifespan=_lifespan(services, alerting, notifiers, writer, engine, loops),
        docs_url=None,  # /docs and /redoc with local assets: server/web/docs.py
        redoc_url=None,
        routes=[Mount(STATIC_PREFIX, static_app(), name="static")],
    )
    app.state.services = services
    app.state.templates = make_templates()
    app.state.sessions = SessionService(
        engine,
        writer,
        credentials,
        config_token_ids(settings.read_token_sha256, settings.admin_key_sha256),
        settings.session_seconds,
        settings.credential_cache_seconds,
        clock,
        retry_after_seconds=settings.ingest_retry_after_seconds,
    )
    app.state.query = QueryService(
        store,
        reader,
        catalog,
        QueryLimits(
            settings.query_timeout_seconds,
            settings.query_max_samples,
            settings.stale_after_intervals,
            settings.stale_after_min_seconds,
        ),
        clock,
    )
    app.state.alerting = alerting
    app.state.self_series = self_series
    app.state.bench_series = bench_series
    app.state.hints = hints
    app.state.hint_loops = hint_loops
    app.state.remote_write = RemoteWriteService(
        store, reader, plan, latest, policy, metrics, IngestLimits.from_settings(settings), clock
    )
    install_error_handlers(app)
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    """Adds every domain's router; the web pages last, after the API they read."""
    for module in (
        ingest_router,
        remote_write_router,
        auth_router,
        nodes_router,
        history_router,
        latest_router,
        discovery_router,
        status_router,
        events_router,
        jobs_router,
        silences_router,
        exposition_router,
        query_router,
        alerting_router,
        bench_router,
        hints_router,
        health_router,
        web_router,
        login_router,
        docs_router,
    ):
        app.include_router(module.router)


def _lifespan(
    services: Services,
    alerting: AlertingService,
    notifiers: _Notifiers,
    writer: Writer,
    engine: Engine,
    loops: tuple[TickLoop, ...],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Returns: the application's lifespan: background work started, then stopped in order."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_maintenance_loop(services))
        notifiers.start()
        alerting.start()
        for loop in loops:
            loop.start()
        hangup = _on_sighup(alerting.reload)
        try:
            yield
        finally:
            hangup()
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(alerting.stop)
            for loop in loops:
                await asyncio.to_thread(loop.stop)
            # Before the writer: the notifier logs what it sent through it.
            await asyncio.to_thread(notifiers.close)
            services.leader.close()
            writer.close()
            engine.dispose()

    return lifespan


def _hint_service(
    settings: ServerSettings,
    services: Services,
    writer: Writer,
    source: SnapshotSource | None,
) -> tuple[HintService, tuple[TickLoop, ...]]:
    """Returns: the hint service and its loops: the series writer, and the rounds where there
    is a snapshot source (``source``, else the live one)."""
    policy = Policy(
        idle_threshold_s=settings.hints_idle_seconds,
        max_moves_per_round=settings.hints_max_moves_per_round,
    )
    hints = HintService(
        source
        if source is not None
        else _default_source(services, policy, settings.hints_node_cpu),
        HintStore(services.store.engine, writer, services.clock),
        services.leader,
        Lifecycle(
            settings.hints_expire_rounds,
            settings.hints_ttl_seconds,
            settings.hints_dismiss_seconds,
            settings.hints_applied_seconds,
        ),
        settings.hints_interval_seconds,
        policy,
    )
    series = HintSeriesLoop(
        HintSeries(
            hints,
            StoreSeriesWriter(services.store),
            services.leader,
            settings.rule_evaluation_interval_seconds,
        ),
        services.clock,
    )
    if hints.source is None:
        return hints, (series,)
    return hints, (series, HintLoop(hints, services.clock))


def _default_source(
    services: Services, policy: Policy, node_cpu: bool = True
) -> SnapshotSource | None:
    """Returns: the live snapshot source over this server's data, or None (logged) where this
    build has none yet; the server then serves stored hints and runs no rounds."""
    try:
        module = importlib.import_module("server.rebalancing.snapshot")
        live: Callable[[Services, Policy, Any], SnapshotSource] = module.LiveSource
        options = module.LiveOptions(node_cpu=node_cpu)
    except (ImportError, AttributeError) as exc:
        _log.warning("no live snapshot source (%s): rebalancing hint rounds are off", exc)
        return None
    return live(services, policy, options)


class _Notifiers:
    """Where rule evaluation sends alerts: the caller's notifier (the caller starts and closes
    it), or the one built from ``[notify]`` with the HTTP client it owns, started and closed
    with the application."""

    def __init__(
        self,
        notifier: Notifier,
        owned: NotifyPipeline | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.notifier = notifier
        self._owned = owned
        self._client = client

    @classmethod
    def make(
        cls,
        given: Notifier | None,
        settings: ServerSettings,
        engine: Engine,
        writer: Writer,
        metrics: ServerMetrics,
        clock: Callable[[], float],
        leader: Leadership,
    ) -> _Notifiers:
        """Raises: NotifyConfigError (a bad receivers file)."""
        if given is not None:
            return cls(given)
        notify = settings.notify
        if not notify.external_url:
            notify = notify.model_copy(update={"external_url": settings.external_url})
        client = httpx.Client(timeout=notify.alertmanager_timeout_seconds)
        try:
            notifier = build_notifier(
                notify,
                silences=SilenceStore(engine, writer, clock).active,
                nflog=SqlNotificationLog(engine, writer),
                counts=PrometheusCounts(metrics.registry),
                clock=clock,
                client=client,
                leading=leader.check,
            )
        except Exception:
            client.close()
            raise
        if notify.alertmanager_urls or notify.receivers_file is not None:
            _log.info(
                "notifications: %d Alertmanagers%s",
                len(notify.alertmanager_urls),
                f", direct receivers from {notify.receivers_file}" if notify.receivers_file else "",
            )
        return cls(notifier, notifier, client)

    def start(self) -> None:
        if self._owned is not None:
            self._owned.start()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
        if self._client is not None:
            self._client.close()


def warm_latest(
    store: Store, reader: Reader, latest: LatestCache, policy: StalePolicy, now: float
) -> None:
    """Load each remembered agent node's newest batch from the database into the cache
    (remote-write and server-side nodes are not in it while the server runs, so not after a
    restart either)."""
    for record in store.nodes():
        if now - record.last_push > policy.forget_after_seconds:
            continue
        if record.node_id == node_id_of(record.name) or is_server_side(record.node_id, record.name):
            continue
        series = store.index.node(record.pk)
        values = reader.samples_at(
            record.pk, [item.id for item in series], round(record.last_batch_ts * 1000)
        )
        families: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for item in series:
            if item.id in values:
                families[item.metric].append((item.labels(), values[item.id]))
        latest.update(
            NodeLatest(
                node_id=record.node_id,
                name=record.name,
                labels=record.labels,
                interval_seconds=record.interval_seconds,
                last_push=record.last_push,
                batch_ts=record.last_batch_ts,
                seq=record.last_seq,
                families=dict(families),
            )
        )


def _on_sighup(reload: Callable[[], object]) -> Callable[[], None]:
    """Reload the rules on SIGHUP (where the event loop may handle signals); returns the undo."""
    loop = asyncio.get_running_loop()

    def handle() -> None:
        _log.info("SIGHUP: reloading the rule files")
        loop.run_in_executor(None, reload)

    try:
        loop.add_signal_handler(signal.SIGHUP, handle)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        return lambda: None  # not the main thread (tests), or no SIGHUP on this platform

    def undo() -> None:
        with suppress(ValueError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)

    return undo


def _node_counts(latest: LatestCache, policy: StalePolicy, now: float) -> tuple[int, int]:
    known = [node for node in latest.nodes() if not policy.is_forgotten(node, now)]
    up = sum(1 for node in known if policy.is_up(node, now))
    return up, len(known) - up


async def _maintenance_loop(services: Services) -> None:
    settings = services.settings
    while True:
        await asyncio.sleep(settings.maintenance_interval_seconds)
        try:
            await asyncio.to_thread(run_maintenance, services)
        except Exception:  # noqa: BLE001 (a failed pass must not end the loop)
            _log.exception("storage maintenance failed; trying again next interval")


def run_maintenance(services: Services) -> None:
    """On every replica, what this process holds in memory: series other replicas created, and
    silent nodes forgotten. Then, on the maintenance leader only: compaction first (late or
    backfilled samples still reach the rollups even when they are older than the raw
    retention), then retention, old batch records, benchmark requests past their deadline,
    benchmark requests and results past their retention, open hints past their TTL (rounds
    that failed or stopped), and ended hints past their retention."""
    now = services.clock()
    if services.leader.shared:  # other replicas may have created series since the last pass
        services.store.load_index()
    for node in services.latest.nodes():
        if services.policy.is_forgotten(node, now):
            services.latest.forget(node.node_id)
    if not services.leader.check():
        return
    compaction = services.compactor.compact()
    if compaction.windows:
        _log.info(
            "compacted %d windows: %d samples from %d head rows into %d blocks",
            compaction.windows,
            compaction.samples,
            compaction.head_rows,
            compaction.blocks,
        )
    if compaction.skipped:
        _log.info("%d windows changed while compacted; left for the next pass", compaction.skipped)
    retention = services.compactor.apply_retention()
    if any(retention.deleted.values()):
        _log.info(
            "retention deleted %s",
            ", ".join(f"{count} {tier} rows" for tier, count in retention.deleted.items() if count),
        )
    store = services.store
    lifecycle = SeriesLifecycle(
        store.engine,
        store.writer,
        store.index,
        services.clock,
        raw_retention_ms=services.plan.raw.retention_ms,
        slack_ms=store.touch_ms + round(services.settings.max_future_seconds * 1000),
    ).collect()
    if lifecycle.deleted:
        _log.info("deleted %d series not written within the raw retention", lifecycle.deleted)
    services.store.delete_batch_records_before(now - BATCH_RECORD_RETENTION_SECONDS)
    expired_requests = services.bench.expire()
    if expired_requests:
        _log.info("%d benchmark requests expired", expired_requests)
    pruned = BenchRetention(
        store.engine, store.writer, services.clock, services.settings.bench_retention_seconds
    ).prune()
    if pruned.requests:
        _log.info(
            "benchmark retention deleted %d requests and %d runs", pruned.requests, pruned.runs
        )
    _hint_maintenance(services)
    # silences expired past their retention, and notification-log entries past theirs
    expired = SilenceStore(store.engine, store.writer, services.clock).gc()
    forgotten = SqlNotificationLog(store.engine, store.writer).gc(now)
    if expired or forgotten:
        _log.info(
            "deleted %d expired silences and %d old notification-log entries", expired, forgotten
        )


def _hint_maintenance(services: Services) -> None:
    """Expire open hints past their TTL (rounds that failed or stopped), then delete ended
    hints past their retention."""
    store, settings = services.store, services.settings
    expired = HintStore(store.engine, store.writer, services.clock).expire_stale(
        settings.hints_ttl_seconds
    )
    pruned = HintRetention(
        store.engine, store.writer, services.clock, settings.hints_retention_seconds
    ).prune()
    if expired or pruned:
        _log.info(
            "%d open hints expired (none produced within the TTL), %d ended hints deleted",
            expired,
            pruned,
        )
