"""Rounds: only the leader runs them, once an interval; a failing round is counted and raised
to the loop's supervisor, which goes on; without a snapshot source none run."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import server.app
from server.hints.hint import Kind
from server.rebalancing.service import HintLoop, HintService, NoSourceError
from server.rebalancing.store import HintStore, Lifecycle
from server.settings import ServerSettings
from server.storage.leader import InMemoryLeader, LockTable, SoleLeader
from tests.server.conftest import START, FakeClock
from tests.server.rebalancing.clusters import ScriptedSource, fleet

INTERVAL = 300.0


def _service(source: ScriptedSource | None, store: HintStore, leader: object) -> HintService:
    return HintService(source, store, leader, Lifecycle(), INTERVAL)  # type: ignore[arg-type]


def test_only_the_leader_runs_rounds_and_a_standby_takes_over(store: HintStore) -> None:
    table = LockTable()
    first, second = InMemoryLeader(table), InMemoryLeader(table)
    a, b = ScriptedSource(fleet()), ScriptedSource(fleet())
    leading, standby = _service(a, store, first), _service(b, store, second)
    assert leading.tick(START) == INTERVAL
    assert standby.tick(START) == INTERVAL
    assert (a.builds, b.builds) == (1, 0)
    assert len(store.open_hints()) == 3 and leading.rounds == 1 and standby.rounds == 0
    assert leading.tick(START + 100) == pytest.approx(INTERVAL - 100)  # not due yet
    assert a.builds == 1
    first.lose_session()
    leading.tick(START + INTERVAL)
    standby.tick(START + INTERVAL)
    assert (a.builds, b.builds) == (1, 1)
    assert standby.last_round is not None and standby.last_round.at == START + INTERVAL


def test_a_failing_round_is_counted_raised_and_the_next_waits_an_interval(
    store: HintStore,
) -> None:
    source = ScriptedSource(fleet(), error=RuntimeError("inventory unreadable"))
    service = _service(source, store, SoleLeader())
    with pytest.raises(RuntimeError, match="inventory unreadable"):
        service.tick(START)
    assert service.failures == 1 and service.rounds == 0 and service.last_round is None
    assert service.tick(START + 1) == pytest.approx(INTERVAL - 1)  # no retry storm
    source.error = None
    service.tick(START + INTERVAL)
    assert service.rounds == 1 and service.failures == 1
    assert service.last_round is not None
    assert service.last_round.hints_by_kind == {
        k.value: 1 for k in (Kind.CONSOLIDATE, Kind.DEFRAGMENT, Kind.DRAIN)
    }


def test_the_loop_survives_a_failing_round(store: HintStore) -> None:
    clock = FakeClock()
    source = ScriptedSource(fleet(), error=RuntimeError("boom"))
    service = _service(source, store, SoleLeader())
    loop = HintLoop(service, clock)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while loop.failures < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.failures == 1 and service.failures == 1
        source.error = None
        clock.now += INTERVAL  # the next round comes an interval later
        deadline = time.monotonic() + 10
        while service.rounds < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop()
    assert service.rounds == 1 and len(store.open_hints()) == 3


def test_without_a_source_no_round_runs(store: HintStore) -> None:
    service = _service(None, store, SoleLeader())
    assert service.tick(START) == INTERVAL
    with pytest.raises(NoSourceError):
        service.run_round(START)
    assert service.rounds == 0 and service.failures == 0


def test_a_server_without_a_live_source_serves_hints_and_runs_no_rounds(
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "server.rebalancing.snapshot", None)  # import fails
    settings = ServerSettings(data_dir=tmp_path, open_reads=True)
    with caplog.at_level(logging.WARNING, logger="server.app"):
        app = server.app.create_app(settings, clock=clock)
    assert "rebalancing hint rounds are off" in caplog.text
    assert app.state.hints.source is None
    assert [type(loop).__name__ for loop in app.state.hint_loops] == ["HintSeriesLoop"]
    with TestClient(app) as client:
        answer = client.get("/api/v1/hints")
        assert answer.status_code == 200
        assert answer.json() == {"hints": [], "round": None, "rounds": 0, "failed_rounds": 0}


@pytest.mark.parametrize("node_cpu", [True, False])
def test_the_live_source_counts_node_cpu_as_the_setting_says(
    tmp_path: Path, clock: FakeClock, node_cpu: bool
) -> None:
    settings = ServerSettings(data_dir=tmp_path, hints_node_cpu=node_cpu)
    app = server.app.create_app(settings, clock=clock)
    assert app.state.hints.source.options.node_cpu is node_cpu
