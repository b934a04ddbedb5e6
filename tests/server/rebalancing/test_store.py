"""The hint store on both backends: rounds add and refresh hints under their content ids, the
lifecycle keeps an operator's decision, absent hints expire, and reads filter."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from server.hints.engine import rebalance
from server.hints.hint import Hint, Kind
from server.rebalancing.model import (
    ENGINE,
    HintFilter,
    HintNotFoundError,
    HintState,
    HintStateError,
    Synced,
)
from server.rebalancing.retention import HintRetention
from server.rebalancing.store import HintStore, Lifecycle
from server.rebalancing.tables import HintRefRow
from server.storage.writer import Writer
from tests.server.conftest import START, FakeClock
from tests.server.rebalancing.clusters import fleet

RULES = Lifecycle(expire_rounds=3, ttl_s=3600.0, dismiss_s=86400.0, applied_s=1800.0)
ROUND = 300.0


def _by_kind(hints: list[Hint]) -> dict[Kind, Hint]:
    found = {h.kind: h for h in hints}
    assert len(found) == len(hints)
    return found


def _round(store: HintStore, clock: FakeClock, hints: list[Hint]) -> Synced:
    clock.now += ROUND
    return store.sync(hints, clock.now, RULES)


def test_a_round_stores_the_engines_hints_with_their_content(
    store: HintStore, clock: FakeClock
) -> None:
    hints = rebalance(fleet())
    assert store.sync(hints, START, RULES) == Synced(added=3)
    drain = _by_kind(hints)[Kind.DRAIN]
    stored = store.get(drain.id)
    assert (stored.kind, stored.node, stored.gpu, stored.pod) == ("drain", "gpu01", 3, None)
    assert stored.remedy == "cordon" and stored.state is HintState.NEW
    (move,) = stored.actions
    assert move == {
        "pod": "train-1",
        "from_node": "gpu01",
        "from_gpus": [3],
        "to_node": drain.actions[0].to_node,
        "to_gpus": list(drain.actions[0].to_gpus),
    }
    assert stored.evidence[0]["series"] == "DCGM_FI_DEV_XID_ERRORS"
    assert stored.evidence[0]["value"] == 79.0 and stored.evidence[0]["gpu"] == 3
    assert stored.gain_gpu_hours == drain.gain.gpu_hours == 1.0
    assert stored.confidence == pytest.approx(0.95)
    assert stored.cost_moves == 1 and stored.cost_restart_s == 120.0
    assert "fatal_xid 79" in stored.reason
    assert stored.first_seen == stored.last_seen == stored.state_changed_at == START
    assert stored.state_changed_by == ENGINE
    assert {h.id for h in store.open_hints()} == {h.id for h in hints}


def test_a_hint_produced_again_keeps_its_id_state_and_first_sighting(
    store: HintStore, clock: FakeClock
) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    drain = _by_kind(hints)[Kind.DRAIN]
    store.set_state(drain.id, HintState.ACKNOWLEDGED, "tk_ops", "ticket 42")
    again = rebalance(fleet())
    assert [h.id for h in again] == [h.id for h in hints]
    assert _round(store, clock, again) == Synced(refreshed=3)
    stored = store.get(drain.id)
    assert stored.state is HintState.ACKNOWLEDGED and stored.note == "ticket 42"
    assert stored.first_seen == START and stored.last_seen == clock.now
    assert stored.state_changed_by == "tk_ops" and stored.state_changed_at == START


def test_a_dismissed_hint_stays_dismissed_and_comes_back_only_after_the_dismiss_time(
    store: HintStore, clock: FakeClock
) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    drain = _by_kind(hints)[Kind.DRAIN].id
    store.set_state(drain, HintState.DISMISSED, "tk_ops", "known, RMA open")
    for _ in range(5):
        _round(store, clock, hints)
        assert store.get(drain).state is HintState.DISMISSED
    assert drain not in {h.id for h in store.find(HintFilter())}  # not shown as open
    clock.now = START + RULES.dismiss_s - ROUND
    _round(store, clock, hints)  # a day after the dismissal
    back = store.get(drain)
    assert back.state is HintState.NEW and back.state_changed_by == ENGINE
    assert back.note == "known, RMA open"


def test_an_applied_hint_still_produced_is_new_again_after_the_applied_time(
    store: HintStore, clock: FakeClock
) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    defrag = _by_kind(hints)[Kind.DEFRAGMENT].id
    store.set_state(defrag, HintState.APPLIED, "tk_sched")
    _round(store, clock, hints)
    assert store.get(defrag).state is HintState.APPLIED  # the move takes a while
    clock.now = START + RULES.applied_s
    store.sync(hints, clock.now, RULES)
    assert store.get(defrag).state is HintState.NEW  # it did not happen


def test_an_absent_open_hint_expires_after_the_rounds_and_opens_again_when_produced(
    store: HintStore, clock: FakeClock
) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    defrag = _by_kind(hints)[Kind.DEFRAGMENT].id
    unblocked = rebalance(fleet(blocked=False))
    assert defrag not in {h.id for h in unblocked} and len(unblocked) == 2
    for missed in range(1, RULES.expire_rounds):
        assert _round(store, clock, unblocked) == Synced(refreshed=2)
        assert store.get(defrag).state is HintState.NEW
        assert store.get(defrag).missed_rounds == missed
    assert _round(store, clock, unblocked) == Synced(refreshed=2, expired=1)
    expired = store.get(defrag)
    assert expired.state is HintState.EXPIRED and expired.state_changed_at == clock.now
    assert defrag not in {h.id for h in store.open_hints()}
    assert _round(store, clock, hints) == Synced(refreshed=2, reopened=1)
    assert store.get(defrag).state is HintState.NEW and store.get(defrag).missed_rounds == 0


def test_a_produced_round_resets_the_missed_count(store: HintStore, clock: FakeClock) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    unblocked = rebalance(fleet(blocked=False))
    for _ in range(RULES.expire_rounds * 2):
        _round(store, clock, unblocked)
        _round(store, clock, hints)  # back every other round: never expires
    assert all(h.state is HintState.NEW for h in store.open_hints())
    assert len(store.open_hints()) == 3


def test_open_hints_no_round_produced_within_the_ttl_expire(
    store: HintStore, clock: FakeClock
) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    dismissed = hints[0].id
    store.set_state(dismissed, HintState.DISMISSED, "tk_ops")
    clock.now = START + RULES.ttl_s - 1
    assert store.expire_stale(RULES.ttl_s) == 0
    clock.now = START + RULES.ttl_s + 1
    assert store.expire_stale(RULES.ttl_s) == 2
    assert store.open_hints() == []
    assert store.get(dismissed).state is HintState.DISMISSED  # only open ones expire


def test_state_changes_refused_with_reasons(store: HintStore, clock: FakeClock) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    with pytest.raises(HintNotFoundError):
        store.set_state("0123456789abcdef", HintState.ACKNOWLEDGED, "tk_ops")
    for server_only in (HintState.NEW, HintState.EXPIRED):
        with pytest.raises(HintStateError, match="can be set to"):
            store.set_state(hints[0].id, server_only, "tk_ops")
    clock.now = START + RULES.ttl_s + 1
    store.expire_stale(RULES.ttl_s)
    with pytest.raises(HintStateError, match="expired"):
        store.set_state(hints[0].id, HintState.APPLIED, "tk_ops")
    assert store.get(hints[0].id).state is HintState.EXPIRED


def test_a_dismissal_can_be_taken_back_and_notes_are_bounded(store: HintStore) -> None:
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    store.set_state(hints[0].id, HintState.DISMISSED, "tk_ops")
    back = store.set_state(hints[0].id, HintState.ACKNOWLEDGED, "tk_other", "x" * 5000)
    assert back.state is HintState.ACKNOWLEDGED and back.state_changed_by == "tk_other"
    assert len(back.note) == 2000


def test_filters(store: HintStore) -> None:
    hints = _by_kind(rebalance(fleet()))
    store.sync(list(hints.values()), START, RULES)
    drain, defrag, consolidate = (
        hints[k].id for k in (Kind.DRAIN, Kind.DEFRAGMENT, Kind.CONSOLIDATE)
    )

    def ids(**where: object) -> list[str]:
        return [h.id for h in store.find(HintFilter(**where))]  # type: ignore[arg-type]

    # most certain first
    assert ids() == [drain, defrag, consolidate]
    assert ids(kind="defragment") == [defrag]
    assert ids(node="gpu01") == [drain]  # the subject's node and the move's source
    assert ids(node="cpu-1") == []
    target = hints[Kind.DEFRAGMENT].actions[0].to_node
    assert target is not None and defrag in ids(node=target)  # a move's target
    assert ids(pod="etl") == [defrag] and ids(pod="c1") == [consolidate]
    assert ids(min_gpus=4) == [defrag, consolidate]
    assert ids(min_gpu_hours=2) == [defrag]
    assert ids(min_watts=100) == [consolidate]
    assert ids(min_gpus=4, min_watts=100) == [consolidate]
    assert ids(limit=1) == [drain]
    store.set_state(drain, HintState.DISMISSED, "tk_ops")
    assert ids() == [defrag, consolidate]
    assert ids(states=frozenset({HintState.DISMISSED})) == [drain]
    assert ids(states=frozenset(HintState)) == [drain, defrag, consolidate]


def test_retention_deletes_old_ended_hints_only(
    store: HintStore, engine: Engine, writer: Writer, clock: FakeClock
) -> None:
    retention_s = 10 * 86400.0
    hints = rebalance(fleet())
    store.sync(hints, START, RULES)
    kept_open, gone, dismissed_still_produced = (h.id for h in hints)
    store.set_state(gone, HintState.APPLIED, "tk_ops")
    store.set_state(dismissed_still_produced, HintState.DISMISSED, "tk_ops")
    clock.now = START + retention_s + 1
    rules = Lifecycle(expire_rounds=3, ttl_s=2 * retention_s, dismiss_s=3 * retention_s)
    store.sync([h for h in hints if h.id == dismissed_still_produced], clock.now, rules)
    retention = HintRetention(engine, writer, clock, retention_s, chunk=1)
    assert retention.prune() == 1
    assert {h.id for h in store.find(HintFilter(states=frozenset(HintState)))} == {
        kept_open,
        dismissed_still_produced,
    }
    with pytest.raises(HintNotFoundError):
        store.get(gone)
    with engine.connect() as conn:
        refs = HintRefRow.__table__.c
        left = conn.execute(select(func.count()).where(refs.hint_id == gone)).scalar()
    assert left == 0
    assert retention.prune() == 0
