"""The dcmon_hint_* series on GET /metrics: while any hint is open, every kind with the catalog's
HELP and TYPE and the values the leader stores, none while none is open, the round's run time
only on the leader, left out while the database cannot be read, and promtool accepts them."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from agent.wire.catalog import default_catalog
from server.exposition.hints import hint_text
from server.hints.hint import Kind
from server.rebalancing.series import samples
from tests.integration import require_binary
from tests.promtool import check_metrics
from tests.server.rebalancing.clusters import fleet
from tests.server.rebalancing.live import ADMIN, Live, live

__all__ = ["live"]
Exposed = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _metrics(live: Live) -> str:
    answer = live.client.get("/metrics", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.text


def _hints(text: str) -> Exposed:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("dcmon_hint_")
    }


def test_open_hints_are_exposed_by_kind_with_the_catalogs_help_and_type(live: Live) -> None:
    assert "dcmon_hint_" not in _metrics(live)  # no round, no hint: no series
    live.round(fleet())
    consolidate = next(h["id"] for h in live.get("/api/v1/hints", kind="consolidate")["hints"])
    assert live.post(consolidate, {"state": "dismissed"}).status_code == 200
    text = _metrics(live)
    exposed = _hints(text)
    open_by_kind = {
        dict(labels)["kind"]: value
        for (name, labels), value in exposed.items()
        if name == "dcmon_hint_open"
    }
    assert open_by_kind == {
        "drain": 1.0,
        "defragment": 1.0,
        "consolidate": 0.0,  # dismissed: not open
        "relieve_hot": 0.0,
        "reclaim_idle": 0.0,
    }
    assert exposed[("dcmon_hint_gain_gpu_seconds", frozenset({("kind", "defragment")}))] == 8 * 3600
    stored = {(name, frozenset(pairs.items())): value for name, pairs, value in samples(live.hints)}
    assert exposed == stored  # what the leader stores, round seconds included (SQLite: it leads)
    assert len(exposed) == 4 * len(Kind) + 1
    catalog = default_catalog()
    for name in {name for name, _ in exposed}:
        spec = catalog[name]
        assert f"# HELP {name} {spec.help}\n# TYPE {name} {spec.type}\n" in text
        assert text.count(f"# TYPE {name} ") == 1


def test_no_series_once_no_hint_is_open(live: Live) -> None:
    live.round(fleet())
    assert "dcmon_hint_open{" in _metrics(live)
    for _ in range(4):  # the causes gone: the hints resolve
        live.round(fleet(failing=False, blocked=False, idle=False))
    assert live.hints.store.open_hints() == []
    assert "dcmon_hint_" not in _metrics(live)  # round seconds too


def test_only_the_leader_exposes_its_rounds_run_time(live: Live) -> None:
    live.round(fleet())
    catalog = default_catalog()
    leading = _hints(hint_text(live.hints, True, catalog))
    following = _hints(hint_text(live.hints, False, catalog))
    assert {name for name, _ in leading} - {name for name, _ in following} == {
        "dcmon_hint_round_seconds"
    }
    assert following == {key: v for key, v in leading.items() if "round" not in key[0]}


def test_an_unreadable_database_leaves_the_hints_out_and_metrics_answer(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    live.round(fleet())
    assert "dcmon_hint_open{" in _metrics(live)

    def fail() -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(live.hints.store, "open_hints", fail)
    text = _metrics(live)
    assert "dcmon_hint_" not in text and "dcmon_node_up" in text


@pytest.mark.integration
def test_promtool_accepts_metrics_with_the_hint_series(live: Live) -> None:
    promtool = require_binary("promtool")
    live.round(fleet())
    text = _metrics(live)
    assert "dcmon_hint_open{" in text
    result = check_metrics(promtool, text)
    assert not result.unexpected, result.unexpected
