"""Alerting wired to the server: rule files, storage source, state store, thread, reload.

Stage: alerting (wiring). ``AlertingService`` builds the ``Evaluator`` over the server's own
objects: a ``StorageSource`` per group round (the query limits, the staleness rules), the
store for write-back (on a shared database the series index first learns the series other
replicas created, so a rule sees them within a second), the ``alert_state`` table, the nodes
of the database for the hold and ``dcmon_node_up`` (their batch times corrected by the clock
skews ingest measured, from ``clock_skews``), and a ``Notifier`` (none by default).
Each tick's groups read through one storage snapshot whose head rows are shared
(``_round``). ``reload`` re-reads the rule files (SIGHUP, the admin endpoint): unchanged rules
keep their state, a broken file keeps its old rules and its problems are reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError

from agent.wire.catalog import Catalog
from server.alerting import hold
from server.alerting.evaluator import Config, Evaluator
from server.alerting.notifier import Notifier, NullNotifier
from server.alerting.pseudo_nodes import is_server_side
from server.alerting.ruleset import SHIPPED_DIR, RuleSet, discover, load
from server.alerting.runner import Runner
from server.alerting.statestore import DatabaseStateStore
from server.alerting.writeback import StoreSeriesWriter
from server.promql.seam import SeriesSource
from server.query.source import Deadline, StaleRule, StorageSource
from server.remote_write.mapping import node_id_of
from server.settings import ServerSettings
from server.storage.head_rows import RoundHeads
from server.storage.leader import Leadership
from server.storage.reader import Reader, snapshot
from server.storage.series_index import IndexedSeries
from server.storage.store import Store
from server.storage.tables import SeriesRow

_log = logging.getLogger(__name__)
NAMING_MAX_AGE_SECONDS = 2.0
INDEX_REFRESH_SECONDS = 1.0
INDEX_REFRESH_OVERLAP_IDS = 10_000  # ids below the newest seen that are read again
INDEX_REFRESH_CHUNK = 1_000
# A round's shared head rows (server/storage/head_rows.py): the ranges most rules read (10 min,
# plus the 5 min lookback, the query offset and slack); reads beyond go to the database alone.
ROUND_HEAD_SECONDS = 20 * 60.0
ROUND_AHEAD_SECONDS = 60.0
_series: Table = SeriesRow.__table__  # type: ignore[assignment]


class AlertingService:
    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        reader: Reader,
        catalog: Catalog,
        leader: Leadership,
        clock: Callable[[], float],
        notifier: Notifier | None = None,
        shipped_dir: Path | None = SHIPPED_DIR,
        clock_skews: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._reader = reader
        self._catalog = catalog
        self._clock = clock
        self._clock_skews = clock_skews or dict
        self._shipped_dir = shipped_dir if settings.rules_shipped else None
        offset = settings.rule_query_offset_seconds
        config = Config(
            default_interval_ms=round(settings.rule_evaluation_interval_seconds * 1000),
            query_offset_ms=None if offset is None else round(offset * 1000),
            resend_delay_ms=round(settings.rule_resend_delay_seconds * 1000),
            external_url=settings.external_url,
        )
        self.evaluator = Evaluator(
            config,
            self._source,
            StoreSeriesWriter(store),
            DatabaseStateStore(store.engine, store.writer),
            notifier or NullNotifier(),
            self._node_statuses,
            round_scope=self._round,
        )
        self._round_reader: Reader | None = None
        self.runner = Runner(self.evaluator, leader, clock, settings.rule_leader_check_seconds)
        self._reload_lock = threading.Lock()
        self._leader = leader
        self._index_refreshed = -INDEX_REFRESH_SECONDS
        self._newest_seen_id: int | None = None
        # node name -> up since (ms; 0: up at every look), None while down
        self._up_since: dict[str, int | None] = {}
        self.reload()

    def reload(self) -> RuleSet:
        """Re-read every rule file; returns the rule set now in use."""
        with self._reload_lock:
            sources = discover(self._settings.rule_files, self._shipped_dir)
            ruleset = load(sources, self.evaluator.ruleset)
            self.evaluator.set_rules(ruleset)
            _log.info(
                "rules loaded: %d groups from %d files (%d with errors)",
                len(ruleset.groups),
                len(sources),
                len(ruleset.errors),
            )
            return ruleset

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    @contextmanager
    def _round(self, now: float) -> Iterator[None]:
        """One tick's groups read through one snapshot, and each node's head rows of the last
        ``ROUND_HEAD_SECONDS`` are fetched once for all their selectors (``RoundHeads``)."""
        now_ms = round(now * 1000)
        heads = RoundHeads(
            now_ms - round(ROUND_HEAD_SECONDS * 1000), now_ms + round(ROUND_AHEAD_SECONDS * 1000)
        )
        with snapshot(self._store.engine) as conn:
            self._round_reader = self._reader.in_round(conn, heads)
            try:
                yield
            finally:
                self._round_reader = None

    def _source(self) -> SeriesSource:
        if self._leader.shared:
            self._refresh_index()
        settings = self._settings
        seconds = settings.query_timeout_seconds
        deadline = Deadline.after(seconds, f"limit: query_timeout_seconds = {seconds:g}")
        rule = StaleRule(
            settings.stale_after_intervals, settings.stale_after_min_seconds, self._clock
        )
        reader = self._round_reader or self._reader
        return StorageSource(
            self._store, reader, deadline, settings.query_max_samples, rule, self._catalog
        )

    def _refresh_index(self) -> None:
        """Add the series other replicas created since the last look, at most once a second,
        so rules see a new series at once instead of after the next maintenance pass reloads
        the whole index. Ids come from one sequence but commit out of order (a replica's
        transaction may commit id 100 after another's 101), so each look re-reads the ids of
        the last ``INDEX_REFRESH_OVERLAP_IDS`` below the newest it saw and fetches the rows of
        those the index lacks."""
        now = time.monotonic()
        if now - self._index_refreshed < INDEX_REFRESH_SECONDS:
            return
        self._index_refreshed = now
        index = self._store.index
        if self._newest_seen_id is None:
            self._newest_seen_id = max(index.ids(), default=0)
        floor = self._newest_seen_id - INDEX_REFRESH_OVERLAP_IDS
        try:
            with self._store.engine.connect() as conn:
                ids = conn.execute(select(_series.c.id).where(_series.c.id > floor)).scalars().all()
                missing = [i for i in ids if index.get(i) is None]
                rows: list[Any] = []  # Row, whose type parameters vary by SQLAlchemy version
                for start in range(0, len(missing), INDEX_REFRESH_CHUNK):
                    chunk = missing[start : start + INDEX_REFRESH_CHUNK]
                    rows += conn.execute(
                        select(
                            _series.c.id,
                            _series.c.node_pk,
                            _series.c.metric,
                            _series.c.labels,
                            _series.c.last_seen_ms,
                        ).where(_series.c.id.in_(chunk))
                    ).all()
        except SQLAlchemyError as exc:
            _log.warning("reading new series for the rules failed: %s", exc)
            return
        self._newest_seen_id = max(ids, default=self._newest_seen_id)
        if rows:
            index.add(
                (IndexedSeries(r.id, r.node_pk, r.metric, r.labels) for r in rows),
                {r.id: r.last_seen_ms for r in rows},
            )

    def _node_statuses(self, now: float) -> list[hold.NodeStatus]:
        """Every agent node not yet forgotten, judged up by the rule of ``/metrics``; its newest
        batch on the server's clock (the batch's time less the node's measured clock skew,
        where this process measured one), so a node whose clock lags is not catching up; and
        since when it is up as this process saw it (the first look that found it up after a
        look that found it down: never before its return; 0 when no look found it down)."""
        settings = self._settings
        skews = self._clock_skews()
        up_since, seen = self._up_since, dict[str, int | None]()
        statuses = []
        for node in self._store.node_naming(NAMING_MAX_AGE_SECONDS).values():
            if is_server_side(node.node_id, node.name) or node.node_id == node_id_of(node.name):
                continue  # server-side and remote-write nodes
            if now - node.last_push > settings.node_forget_after_seconds:
                continue
            window = max(
                settings.stale_after_intervals * node.interval_seconds,
                settings.stale_after_min_seconds,
            )
            up = now - node.last_push <= window
            since: int | None = None
            if up:
                since = up_since.get(node.name, 0)  # 0: never seen down by this process
                if since is None:  # down at the last look: back since now at the latest
                    since = round(now * 1000)
            seen[node.name] = since
            statuses.append(
                hold.NodeStatus(
                    name=node.name,
                    labels=dict(node.labels),
                    up=up,
                    newest_batch_ms=round(
                        (node.last_batch_ts - skews.get(node.node_id, 0.0)) * 1000
                    ),
                    up_since_ms=since or 0,
                    interval_ms=round(node.interval_seconds * 1000),
                )
            )
        self._up_since = seen
        return statuses
