"""Compact batches (wire form 2): a full batch gives the node's layout key when asked, a compact
batch with that key stores exactly the values a full batch would have, and every way a key can
be wrong gets 409 ``unknown_layout`` with nothing stored."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.protocol import LAYOUTS_HEADER, UNKNOWN_LAYOUT
from agent.wire.schema import Batch, MetricFamily
from server.deps import Services
from server.storage import head_rows
from tests.factories import default_metrics, identity, make_batch
from tests.server.conftest import START, push, row_counts

ASK = {LAYOUTS_HEADER: "1"}


def _compact(batch: Batch, layout: str, values: list[float] | None = None) -> bytes:
    document: dict[str, Any] = json.loads(batch.model_dump_json())
    document.pop("metrics")
    document.update(schema_version=2, layout=layout)
    document["values"] = (
        values
        if values is not None
        else [value for family in batch.metrics for _labels, value in family.samples]
    )
    return gzip.compress(json.dumps(document).encode())


def _push_compact(client: TestClient, body: bytes) -> httpx.Response:
    return push(client, body=body, headers=ASK)


def _services(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def _stored(client: TestClient, ts: float) -> dict[tuple[str, str], float]:
    """Returns: (metric, labels JSON) -> the value stored at ``ts`` (every node)."""
    store = _services(client).store
    ts_ms = round(ts * 1000)
    with store.engine.connect() as conn:
        rows = head_rows.fetch(conn, [record.pk for record in _node_pks(client)], ts_ms, ts_ms)
    found: dict[tuple[str, str], float] = {}
    for node_rows in rows.values():
        for row in node_rows:
            for series_id, value in zip(row.ids.tolist(), row.values.tolist(), strict=True):
                item = store.index.get(series_id)
                assert item is not None
                found[(item.metric, item.labels_json)] = value
    return found


def _node_pks(client: TestClient) -> list[Any]:
    return _services(client).store.nodes()


def _key(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    key = response.json()["layout"]
    assert isinstance(key, str) and re.fullmatch(r"[0-9a-f]{32}", key)
    return key


def _shifted(shift: float) -> list[MetricFamily]:
    return [
        MetricFamily(name=f.name, samples=[(labels, v + shift) for labels, v in f.samples])
        for f in default_metrics()
    ]


def test_a_full_batch_gets_a_layout_key_only_when_asked(client: TestClient) -> None:
    assert push(client, make_batch(seq=1, timestamp=START)).json()["layout"] is None
    first = _key(push(client, make_batch(seq=2, timestamp=START + 10), headers=ASK))
    # The same families and label sets with other values: the same key.
    same = make_batch(seq=3, timestamp=START + 20, metrics=_shifted(5.0))
    assert _key(push(client, same, headers=ASK)) == first


def test_a_compact_batch_stores_what_the_full_batch_would(client: TestClient) -> None:
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    full = make_batch(seq=2, timestamp=START + 10, metrics=_shifted(7.5), with_inventory=False)
    response = _push_compact(client, _compact(full, key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["layout"] == key
    assert body["samples"] == 4 + 2  # the layout's samples and the collector's status pair
    compact_stored = _stored(client, START + 10)
    # The same batch sent in full at another timestamp stores the same values per series.
    push(client, make_batch(seq=3, timestamp=START + 20, metrics=_shifted(7.5)))
    assert compact_stored == _stored(client, START + 20)
    assert compact_stored[("node_load1", "{}")] == 0.5 + 7.5


def test_the_latest_values_of_a_compact_batch_read_like_a_full_ones(client: TestClient) -> None:
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    full = make_batch(seq=2, timestamp=START + 10, metrics=_shifted(1.0))
    assert _push_compact(client, _compact(full, key)).status_code == 200
    latest = _services(client).latest.get(full.node.node_id)
    assert latest is not None and latest.seq == 2
    expected = {f.name: [(dict(labels), v) for labels, v in f.samples] for f in full.metrics}
    got = {name: [(dict(labels), v) for labels, v in latest.families[name]] for name in expected}
    assert got == expected
    assert set(latest.families) == {
        *expected,
        "node_scrape_collector_success",
        "node_scrape_collector_duration_seconds",
    }
    assert latest.value("node_load1") == 1.5
    metrics = client.get("/metrics").text
    assert re.search(r'^node_load1\{instance="gpu01"[^}]*\} 1\.5$', metrics, re.MULTILINE)


def test_a_resent_compact_batch_is_a_duplicate(client: TestClient, tmp_path: Path) -> None:
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    body = _compact(make_batch(seq=2, timestamp=START + 10), key)
    assert _push_compact(client, body).json()["status"] == "accepted"
    before = row_counts(tmp_path / "dcmon.db")
    assert _push_compact(client, body).json()["status"] == "duplicate"
    assert row_counts(tmp_path / "dcmon.db") == before


def _refused(client: TestClient, body: bytes, db: Path) -> None:
    before = row_counts(db)
    response = _push_compact(client, body)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == UNKNOWN_LAYOUT
    assert "in full" in response.json()["error"]["message"]
    assert row_counts(db) == before


def test_an_unknown_key_or_a_wrong_count_is_refused_with_nothing_stored(
    client: TestClient, tmp_path: Path
) -> None:
    db = tmp_path / "dcmon.db"
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    later = make_batch(seq=2, timestamp=START + 10)
    _refused(client, _compact(later, "0" * 32), db)
    _refused(client, _compact(later, key, values=[1.0, 2.0, 3.0]), db)  # 4 in the layout
    _refused(client, _compact(later, key, values=[1.0] * 5), db)
    assert _push_compact(client, _compact(later, key)).status_code == 200


def test_a_changed_layout_replaces_the_old_key(client: TestClient, tmp_path: Path) -> None:
    old = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    grown = [*default_metrics(), MetricFamily(name="node_load5", samples=[({}, 0.25)])]
    new = _key(push(client, make_batch(seq=2, timestamp=START + 10, metrics=grown), headers=ASK))
    assert new != old
    _refused(client, _compact(make_batch(seq=3, timestamp=START + 20), old), tmp_path / "dcmon.db")
    later = make_batch(seq=4, timestamp=START + 30, metrics=grown)
    assert _push_compact(client, _compact(later, new)).status_code == 200


def test_another_nodes_key_is_not_this_nodes(client: TestClient, tmp_path: Path) -> None:
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    other = identity(name="gpu02", node_id="f" * 32)
    _refused(
        client, _compact(make_batch(seq=1, timestamp=START, node=other), key), tmp_path / "dcmon.db"
    )


def test_a_restarted_server_refuses_the_key_until_a_full_batch_comes(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    with TestClient(make_app()) as client:
        key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    with TestClient(make_app()) as client:
        _refused(
            client, _compact(make_batch(seq=2, timestamp=START + 10), key), tmp_path / "dcmon.db"
        )
        again = push(client, make_batch(seq=2, timestamp=START + 10), headers=ASK)
        assert _key(again) == key  # one structure, one key, in every process
        assert (
            _push_compact(client, _compact(make_batch(seq=3, timestamp=START + 20), key)).json()[
                "status"
            ]
            == "accepted"
        )


def test_forgetting_a_series_drops_the_layout(client: TestClient, tmp_path: Path) -> None:
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    index = _services(client).store.index
    series = [item.id for item in index.metric("node_load1").popitem()[1]]
    index.forget(series)
    _refused(client, _compact(make_batch(seq=2, timestamp=START + 10), key), tmp_path / "dcmon.db")


def test_no_key_while_series_of_the_batch_are_refused(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(max_series_per_node=2)) as client:
        response = push(client, make_batch(seq=1, timestamp=START), headers=ASK)
        assert response.status_code == 200 and response.json()["refused"]
        assert response.json()["layout"] is None


@pytest.mark.parametrize("values", [[1.0, float("nan"), 2.0, 3.0]])
def test_a_compact_batch_with_a_non_finite_value_is_invalid(
    client: TestClient, values: list[float]
) -> None:
    key = _key(push(client, make_batch(seq=1, timestamp=START), headers=ASK))
    body = _compact(make_batch(seq=2, timestamp=START + 10), key, values=values)
    response = _push_compact(client, body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_batch"


def _node_lines(client: TestClient, **params: str) -> list[str]:
    """Returns: the /metrics lines of the batch's own families (not the server's node rows)."""
    names = (*(f.name for f in default_metrics()), "node_scrape_collector")
    text = client.get("/metrics", params=params).text
    return [line for line in text.splitlines() if line.startswith(names)]


@pytest.mark.parametrize("params", [{}, {"timestamps": "1"}])
def test_metrics_of_a_compact_batch_equal_those_of_the_full_one(
    client: TestClient, params: dict[str, str]
) -> None:
    """The compact path renders from the layout's templates: the same text, value for value."""
    first = make_batch(seq=1, timestamp=START, metrics=_shifted(0.25))
    key = _key(push(client, first, headers=ASK))
    full_lines = _node_lines(client, **params)
    assert len(full_lines) == 6
    lines: list[str] = []
    for shift, seq in ((3.0, 2), (0.25, 3)):  # new values, then the first ones again
        values = [v for f in _shifted(shift) for _labels, v in f.samples]
        body = _compact(make_batch(seq=seq, timestamp=START + 10 * seq), key, values=values)
        assert _push_compact(client, body).status_code == 200
        lines = _node_lines(client, **params)
        if shift == 3.0:
            assert lines != full_lines and any(" 3.5" in line for line in lines)
    if params:  # each line ends with its batch's time: the last batch's here
        assert all(line.endswith(f" {round((START + 30) * 1000)}") for line in lines)
        lines = [line.rsplit(" ", 1)[0] for line in lines]
        full_lines = [line.rsplit(" ", 1)[0] for line in full_lines]
    assert lines == full_lines


def test_a_push_after_an_inventory_push_writes_its_node_row_in_full(client: TestClient) -> None:
    """A push that repeats the node row this process last wrote sets only its own columns;
    an inventory push in between wrote the row anew, so the next push must too."""
    x, y = identity(name="gpu01"), identity(name="gpu01-renamed")
    for seq, node, inventory in ((1, x, False), (2, x, False), (3, y, True), (4, x, False)):
        batch = make_batch(seq=seq, timestamp=START + 10 * seq, node=node, with_inventory=inventory)
        assert push(client, batch).status_code == 200
    record = _services(client).store.node(x.node_id)
    assert record is not None and record.name == "gpu01"
