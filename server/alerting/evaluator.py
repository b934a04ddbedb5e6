"""The evaluation loop's core: rule groups run at their slots over storage, state kept. No thread.

Stage: alerting. ``Evaluator.tick(now)`` evaluates every group whose slot has come: slots are
``interval`` apart, aligned to the epoch with a per-group phase (a hash of its key), so every
replica agrees on a group's evaluation times and a new leader continues on the same grid.
A group late by whole intervals is evaluated once, at its latest slot, and the skipped slots
are counted as missed (never replayed: rules see the present, see ``hold``). Each rule runs
through ``server.rules.group.evaluate`` at ``slot - query_offset``; the offset is the group's
own, else the configured one, else the largest push interval among live nodes, so pushed data
is evaluated at its own time once it has arrived.

After each group: alerts of held nodes are restored (``hold``), the round's samples are
stored (``writeback``), the alerts due for sending go to the ``Notifier`` (``sending``), and
the state is saved (``statestore``). Every failure is
logged and counted in ``failures`` and the loop goes on; a rule that fails keeps its state.
Only the leader evaluates: ``lead`` loads the persisted state (a restart or failover continues
timers; each group's first round then re-sends every alert sent before, ``sending.due``'s
``resend_all``), ``follow`` stops evaluating and ``refresh`` keeps a follower's view current.
Thread safety: every public method takes one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace

from server.alerting import hold, sending
from server.alerting.notifier import Notifier
from server.alerting.pseudo_nodes import group_node, server_node
from server.alerting.ruleset import LoadedGroup, RuleSet, rule_keys
from server.alerting.runs import GroupRun, RuleStatus, carry, phase, slot_at_or_before
from server.alerting.statestore import StateStore, StateStoreError
from server.alerting.writeback import RoundSink, SeriesWriter
from server.promql.errors import EvalError
from server.promql.plan import Matcher
from server.promql.seam import RawSeries, SeriesSource
from server.promql.values import Labels, make_labels
from server.query.errors import QueryError
from server.rules import group as grouping
from server.rules import state as machine
from server.rules.model import AlertingRule
from server.storage.errors import StorageUnavailableError

_log = logging.getLogger(__name__)

SourceFactory = Callable[[], SeriesSource]
NodeDirectory = Callable[[float], Sequence[hold.NodeStatus]]


@dataclass(frozen=True)
class Config:
    default_interval_ms: int = 60_000
    query_offset_ms: int | None = None  # None: the largest push interval of live nodes
    fallback_offset_ms: int = 10_000  # ... or this when no node is live
    resend_delay_ms: int = 60_000
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""


class _Mapped:
    """The source with the query layer's errors as the engine's, so a rule fails alone."""

    def __init__(self, base: SeriesSource) -> None:
        self._base = base

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        try:
            return self._base.select(matchers, start_ms, end_ms)
        except QueryError as exc:
            raise EvalError(exc.message) from exc


class Evaluator:
    def __init__(
        self,
        config: Config,
        sources: SourceFactory,
        writer: SeriesWriter,
        states: StateStore,
        notifier: Notifier,
        nodes: NodeDirectory,
        monotonic: Callable[[], float] = time.perf_counter,
        round_scope: Callable[[float], AbstractContextManager[object]] | None = None,
    ) -> None:
        """Args:
        round_scope: entered (with ``now``) around the groups one tick evaluates, e.g. to
            share one storage snapshot and its head rows among them; default: nothing.
        """
        self._config = config
        self._round_scope = round_scope
        self._sources = sources
        self._writer = writer
        self._states = states
        self._notifier = notifier
        self._nodes = nodes
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._ruleset = RuleSet()
        self._runs: list[GroupRun] = []
        self._leading = False
        self._resend: set[str] = set()  # groups whose first round as leader is still to come
        self._node_up_next_ms: int | None = None
        self.failures: Counter[str] = Counter()
        self.rounds = 0

    # -- rules ----------------------------------------------------------------------------

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    def set_rules(self, ruleset: RuleSet) -> None:
        """Use ``ruleset`` from now on; the state of each rule whose key (``rule_keys``) is in
        the same group before and after is kept, and so is its group's slot grid."""
        with self._lock:
            old = {run.loaded.key: run for run in self._runs}
            runs = [self._new_run(loaded) for loaded in ruleset.groups]
            for run in runs:
                previous = old.pop(run.loaded.key, None)
                if previous is not None:
                    carry(previous, run)
            for gone in old.values():
                try:
                    self._states.save(gone.loaded.key, {}, 0)
                except StateStoreError as exc:
                    self._fail("state", f"forgetting group {gone.loaded.key}: {exc}")
            self._ruleset = ruleset
            self._runs = runs

    def _new_run(self, loaded: LoadedGroup) -> GroupRun:
        group = loaded.group
        interval_ms = group.interval_ms or self._config.default_interval_ms
        exempt = [
            isinstance(rule, AlertingRule) and hold.never_held(rule.expr) for rule in group.rules
        ]
        return GroupRun(
            loaded=loaded,
            keys=rule_keys(group),
            interval_ms=interval_ms,
            phase_ms=phase(loaded.key, interval_ms),
            node=group_node(loaded.key, group.name, interval_ms / 1000),
            exempt=exempt,
            rules=[RuleStatus() for _ in group.rules],
        )

    # -- leadership -----------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self._leading

    def lead(self) -> None:
        """Become the evaluator: load the persisted state (raises StateStoreError; then this
        process does not lead yet and the caller tries again)."""
        with self._lock:
            self._load_state()
            self._leading = True
            self._resend = {run.loaded.key for run in self._runs}
            for run in self._runs:
                run.next_ms = None
            self._node_up_next_ms = None

    def follow(self) -> None:
        with self._lock:
            self._leading = False

    def refresh(self) -> None:
        """On a follower: the alerts as the leader last saved them (for the API)."""
        with self._lock:
            if not self._leading:
                self._load_state()

    def _load_state(self) -> None:
        saved = self._states.load()
        for run in self._runs:
            by_rule = saved.get(run.loaded.key, {})
            alerts: dict[int, dict[Labels, machine.Alert]] = {}
            for index, key in enumerate(run.keys):
                items = by_rule.get(key)
                if items:
                    alerts[index] = {a.labels: a for a in items}
            run.state = grouping.GroupState(alerts, {})

    # -- evaluation -----------------------------------------------------------------------

    def tick(self, now: float) -> float:
        """Evaluate what is due at ``now`` (Unix seconds); returns seconds until the next slot."""
        with self._lock:
            if not self._leading:
                return self._config.default_interval_ms / 1000
            now_ms = round(now * 1000)
            statuses: list[hold.NodeStatus] | None = None
            due = self._node_up_next_ms is None or now_ms >= self._node_up_next_ms
            if self._runs and due:  # no rules: no rule output, dcmon_node_up included
                statuses = self._node_statuses(now)
                self._write_node_up(statuses, now_ms, now)
                interval = self._config.default_interval_ms
                self._node_up_next_ms = slot_at_or_before(now_ms, interval, 0) + interval
            next_due = self._node_up_next_ms or now_ms + self._config.default_interval_ms
            with ExitStack() as scope:
                opened = False
                for run in self._runs:
                    if run.next_ms is None:
                        slot = slot_at_or_before(now_ms, run.interval_ms, run.phase_ms)
                        run.next_ms = slot if slot == now_ms else slot + run.interval_ms
                    if now_ms >= run.next_ms:
                        slot = slot_at_or_before(now_ms, run.interval_ms, run.phase_ms)
                        run.missed += (slot - run.next_ms) // run.interval_ms
                        if statuses is None:
                            statuses = self._node_statuses(now)
                        if not opened:
                            opened = True
                            self._enter_round(scope, now)
                        self._evaluate(run, slot, now, statuses)
                        run.next_ms = slot + run.interval_ms
                    next_due = min(next_due, run.next_ms)
            self.rounds += 1
            return max(0.0, (next_due - now_ms) / 1000)

    def _enter_round(self, scope: ExitStack, now: float) -> None:
        """Enter the round scope (once per tick, before its first group); a scope that cannot
        be entered is counted and the groups read as they would without it."""
        if self._round_scope is None:
            return
        try:
            scope.enter_context(self._round_scope(now))
        except Exception as exc:  # noqa: BLE001 (the round goes on without the shared reads)
            self._fail("source", f"opening the round's snapshot: {exc}")

    def _node_statuses(self, now: float) -> list[hold.NodeStatus]:
        try:
            return list(self._nodes(now))
        except Exception as exc:  # noqa: BLE001 (a failing directory must not stop rules)
            self._fail("nodes", f"reading node status: {exc}")
            return []

    def _write_node_up(self, statuses: Sequence[hold.NodeStatus], now_ms: int, now: float) -> None:
        samples = [
            (
                make_labels({**dict(s.labels), "__name__": hold.NODE_UP, "instance": s.name}),
                1.0 if s.up else 0.0,
            )
            for s in statuses
        ]
        node = server_node(self._config.default_interval_ms / 1000)
        try:
            self._writer.write(node, now_ms, samples, now)
        except StorageUnavailableError as exc:
            self._fail("write", f"writing {hold.NODE_UP}: {exc}")

    def _offset_ms(self, statuses: Sequence[hold.NodeStatus]) -> int:
        if self._config.query_offset_ms is not None:
            return self._config.query_offset_ms
        live = [s.interval_ms for s in statuses if s.up]
        return max(live) if live else self._config.fallback_offset_ms

    def _evaluate(
        self, run: GroupRun, ts_ms: int, now: float, statuses: Sequence[hold.NodeStatus]
    ) -> None:
        group = run.loaded.group
        options = grouping.Options(
            self._offset_ms(statuses), self._config.external_labels, self._config.external_url
        )
        offset = group.query_offset_ms
        at_ms = ts_ms - (offset if offset is not None else options.default_offset_ms)
        held = hold.held_instances(statuses, at_ms)
        sink = RoundSink()
        try:
            source = sink.overlay(_Mapped(self._sources()))
        except Exception as exc:  # noqa: BLE001 (no source: every rule fails this round)
            self._fail("source", f"group {run.loaded.key}: {exc}")
            for status in run.rules:
                status.health, status.last_error = "err", str(exc)
            return
        started = self._monotonic()
        alerts = dict(run.state.alerts)
        written = dict(run.state.written)
        run.held = {}
        for index in range(len(group.rules)):
            io = (source, sink, options)
            self._evaluate_rule(run, index, alerts, written, io, ts_ms, at_ms, held, now)
        run.state = grouping.GroupState(alerts, written)
        self._send(run, ts_ms, now)
        run.evaluation_seconds = self._monotonic() - started
        run.last_evaluation_s = now
        run.evaluations += 1
        try:
            self._writer.write(run.node, at_ms, sink.latest(), now)
        except StorageUnavailableError as exc:
            self._fail("write", f"group {run.loaded.key}: {exc}")
        self._save(run, ts_ms)

    def _evaluate_rule(
        self,
        run: GroupRun,
        index: int,
        alerts: dict[int, dict[Labels, machine.Alert]],
        written: dict[int, set[Labels]],
        io: tuple[SeriesSource, RoundSink, grouping.Options],
        ts_ms: int,
        at_ms: int,
        held: set[str],
        now: float,
    ) -> None:
        """Runs rule ``index`` alone (so it is timed alone), updating ``alerts``/``written``."""
        source, sink, options = io
        group = run.loaded.group
        rule = group.rules[index]
        sub = replace(group, rules=(rule,))
        before = alerts.get(index, {})
        state = grouping.GroupState(
            {0: before} if index in alerts else {},
            {0: written[index]} if index in written else {},
        )
        mark = len(sink.samples)
        rule_started = self._monotonic()
        try:
            new, outcomes = grouping.evaluate(sub, state, source, sink, ts_ms, options)
            error = outcomes[0].error
        except (QueryError, StorageUnavailableError) as exc:
            new, error = state, str(exc)
            del sink.samples[mark:]
        status = run.rules[index]
        status.evaluation_seconds = self._monotonic() - rule_started
        status.last_evaluation_s = now
        status.health = "ok" if error is None else "err"
        status.last_error = error or ""
        if new.written.get(0) is not None:
            written[index] = new.written[0]
        if not isinstance(rule, AlertingRule):
            return
        after = new.alerts.get(0, {})
        if not run.exempt[index] and held:
            after, kept = hold.apply(before, after, held)
            if kept:
                run.held[index] = kept
                del sink.samples[mark:]
                for labels, value in machine.series(after.values(), rule.alert):
                    sink.write(labels, at_ms, value)
        alerts[index] = after

    def _send(self, run: GroupRun, ts_ms: int, now: float) -> None:
        config = self._config
        key = run.loaded.key
        marked = sending.due(
            run.loaded.group,
            run.state.alerts,
            ts_ms,
            config.resend_delay_ms,
            run.interval_ms,
            resend_all=key in self._resend,
        )
        if not marked:
            self._resend.discard(key)
            return
        notifications = [
            sending.notification(a, run.loaded.key, config.external_labels, config.external_url)
            for _, a in marked
        ]
        try:
            self._notifier.send(notifications, now)
        except Exception as exc:  # noqa: BLE001 (the notifier is foreign code; retry next round)
            self._fail("notify", f"group {run.loaded.key}: {exc}")
            return
        self._resend.discard(key)
        for index, sent in marked:
            run.state.alerts[index][sent.labels] = sent

    def _save(self, run: GroupRun, ts_ms: int) -> None:
        by_rule = {
            run.keys[index]: list(alerts.values())
            for index, alerts in run.state.alerts.items()
            if alerts
        }
        try:
            self._states.save(run.loaded.key, by_rule, ts_ms)
        except StateStoreError as exc:
            self._fail("state", f"group {run.loaded.key}: {exc}")

    def _fail(self, kind: str, message: str) -> None:
        self.failures[kind] += 1
        _log.warning("rule evaluation: %s failed: %s", kind, message)

    # -- views ----------------------------------------------------------------------------

    def snapshot(self) -> list[GroupRun]:
        """Returns: a copy of every group's run (for the API)."""
        with self._lock:
            return [
                replace(
                    run,
                    state=grouping.GroupState(
                        {i: dict(a) for i, a in run.state.alerts.items()}, {}
                    ),
                    rules=[replace(r) for r in run.rules],
                    held={i: set(h) for i, h in run.held.items()},
                )
                for run in self._runs
            ]
