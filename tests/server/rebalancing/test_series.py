"""The dcmon_hint_* series: written by the leader under the dcmon-hints node, queryable with
PromQL, every kind present (0 where none is open) while any hint is open and none written while
none is, gains summed, and in the shipped catalog."""

from __future__ import annotations

from typing import Any

from agent.wire.catalog import default_catalog
from server.alerting.writeback import MemorySeriesWriter
from server.rebalancing.series import HintSeries, samples
from server.rebalancing.service import HintService
from server.rebalancing.store import Lifecycle
from server.storage.leader import InMemoryLeader, LockTable, SoleLeader
from tests.server.rebalancing.clusters import ScriptedSource, fleet
from tests.server.rebalancing.live import ADMIN, Live, live

__all__ = ["live"]
NAMES = {
    "dcmon_hint_open",
    "dcmon_hint_gain_gpus",
    "dcmon_hint_gain_gpu_seconds",
    "dcmon_hint_gain_watts",
    "dcmon_hint_round_seconds",
}


def _query(live: Live, expr: str) -> dict[str, float]:
    answer = live.client.get(
        "/prometheus/api/v1/query", params={"query": expr, "time": live.clock.now}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]["result"]
    return {r["metric"].get("kind", ""): float(r["value"][1]) for r in found}


def _series(live: Live) -> HintSeries:
    loop = live.client.app.state.hint_loops[0]  # type: ignore[attr-defined]
    found: HintSeries = loop.series
    return found


def test_the_series_hold_open_hints_and_their_gains_by_kind(live: Live) -> None:
    live.round(fleet())
    live.post(
        next(h["id"] for h in live.get("/api/v1/hints", kind="consolidate")["hints"]),
        {"state": "dismissed"},
    )
    assert _series(live).write(live.clock.now) == 4 * 5 + 1
    assert _query(live, "dcmon_hint_open") == {
        "drain": 1.0,
        "defragment": 1.0,
        "consolidate": 0.0,  # dismissed: not open
        "relieve_hot": 0.0,
        "reclaim_idle": 0.0,
    }
    assert _query(live, "dcmon_hint_gain_gpus")["defragment"] == 8.0
    assert _query(live, "dcmon_hint_gain_gpu_seconds") == {
        "drain": 3600.0,
        "defragment": 8.0 * 3600,
        "consolidate": 0.0,
        "relieve_hot": 0.0,
        "reclaim_idle": 0.0,
    }
    (seconds,) = _query(live, "dcmon_hint_round_seconds").values()
    assert seconds == live.hints.last_round.engine_seconds  # type: ignore[union-attr]
    live.post(
        next(h["id"] for h in live.get("/api/v1/hints", kind="consolidate", state="all")["hints"]),
        {"state": "acknowledged"},
    )
    live.clock.now += 60
    _series(live).write(live.clock.now)
    assert _query(live, "dcmon_hint_gain_watts")["consolidate"] == 490.0
    nodes = _query(live, "count by (instance) (dcmon_hint_open)")
    assert nodes  # stored as a server-side node's series


def test_only_the_leader_writes_and_a_quiet_server_writes_nothing(live: Live) -> None:
    writer = MemorySeriesWriter()
    table = LockTable()
    holder = InMemoryLeader(table)
    assert holder.check()
    standby = HintSeries(live.hints, writer, InMemoryLeader(table), 60.0)
    live.round(fleet())
    standby.tick(live.clock.now)
    assert writer.batches == []
    fresh = HintSeries(live.hints, writer, holder, 60.0)
    fresh.tick(live.clock.now)
    ((node, _, count),) = writer.batches
    assert node == "dcmon-hints" and count == 21
    assert {name for name, _, _ in samples(live.hints)} == NAMES


def test_no_series_before_any_round_or_hint(live: Live) -> None:
    quiet = HintService(ScriptedSource(), live.hints.store, SoleLeader(), Lifecycle(), 300.0)
    writer = MemorySeriesWriter()
    series = HintSeries(quiet, writer, SoleLeader(), 60.0)
    assert samples(quiet) == [] and series.write(live.clock.now) == 0
    assert writer.batches == []
    live.round(fleet())  # another replica's round: open hints in the database
    assert series.write(live.clock.now) == 4 * 5  # no round of its own: no round seconds
    live.round(fleet(failing=False, blocked=False, idle=False))
    for _ in range(3):
        live.round(fleet(failing=False, blocked=False, idle=False))
    assert quiet.store.open_hints() == []
    assert series.write(live.clock.now) == 0
    assert [count for _, _, count in writer.batches] == [20, 0]  # the empty batch ends them
    # rounds that find nothing add no series of dcmon's own, round seconds included
    assert live.hints.last_round is not None and samples(live.hints) == []


def test_every_series_is_in_the_shipped_catalog() -> None:
    catalog = default_catalog()
    for name in NAMES:
        spec = catalog.get(name)
        assert spec is not None and spec.source == "server", name
        assert spec.labels == (() if name == "dcmon_hint_round_seconds" else ("kind",)), name
