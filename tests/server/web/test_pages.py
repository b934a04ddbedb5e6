"""The web pages, rendered by the server (TestClient): what each shows, its drill-down links,
its charts' queries, the fleet table's filter, sort and pages, and a 404 page for what is not
known. The browser side (charts drawn, no console error) is tests/e2e/browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape

from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.schema import GpuEvent, MetricFamily
from server.web.fleet import FleetQuery, NodeRow, fleet_model
from tests.factories import GPU_LABELS, default_metrics, identity, make_batch
from tests.server.conftest import START, push

UUID = GPU_LABELS["UUID"]


def _gpu_metrics(util: float = 42.0, temp: float = 61.0, **extra: float) -> list[MetricFamily]:
    families = [
        *default_metrics(gpu_util=util),
        MetricFamily(name="node_memory_MemTotal_bytes", samples=[({}, 8.0 * 2**30)]),
        MetricFamily(name="node_memory_MemAvailable_bytes", samples=[({}, 6.0 * 2**30)]),
        MetricFamily(name="DCGM_FI_DEV_GPU_TEMP", samples=[(dict(GPU_LABELS), temp)]),
        MetricFamily(name="DCGM_FI_DEV_FB_USED", samples=[(dict(GPU_LABELS), 20480.0)]),
        MetricFamily(name="dcmon_gpu_up", samples=[(dict(GPU_LABELS), 1.0)]),
    ]
    families += [MetricFamily(name=k, samples=[(dict(GPU_LABELS), v)]) for k, v in extra.items()]
    return families


def _queries(page: str) -> list[str]:
    return [unescape(q) for q in re.findall(r'class="chart" data-query="([^"]*)"', page)]


def _hrefs(page: str, cls: str) -> list[str]:
    return re.findall(rf'<a class="{cls}" href="([^"]*)"', page)


def test_fleet_page_shows_the_fleet_and_links_nodes_and_gpus(client: TestClient) -> None:
    assert push(client, make_batch(timestamp=START, metrics=_gpu_metrics())).status_code == 200
    page = client.get("/").text
    assert 'data-page="fleet"' in page
    assert re.search(r'id="nodes-up">1 / 1<', page)
    assert "/nodes/gpu01" in _hrefs(page, "node-link")
    assert "/nodes/gpu01/gpus/0" in _hrefs(page, "gpu-link")  # busiest / idlest
    assert "42 %" in page and "61 °C" in page and "25 %" in page  # util, temp, memory used
    queries = _queries(page)
    assert "avg(DCGM_FI_DEV_GPU_UTIL)" in queries and len(queries) >= 4
    assert '<meta name="csrf-token" content="">' in page  # open reads: no session


def test_fleet_page_without_nodes(client: TestClient) -> None:
    page = client.get("/").text
    assert 'id="no-nodes"' in page and "No node has pushed yet" in page


def test_fleet_filter_sort_and_pages(client: TestClient) -> None:
    for i in range(7):
        name = f"node{i:02d}"
        node = identity(name, f"{i:032x}", {"rack": f"r{i % 2}"})
        batch = make_batch(timestamp=START, node=node, metrics=default_metrics(gpu_util=10.0 * i))
        assert push(client, batch).status_code == 200

    def names(query: str) -> list[str]:
        page = client.get("/" + query).text
        table = page[page.index('id="nodes-table"') :]
        return [h.rsplit("/", 1)[1] for h in _hrefs(table, "node-link")]

    assert names("?sort=name") == [f"node{i:02d}" for i in range(7)]
    assert names("?sort=name&order=desc&per_page=25")[0] == "node06"
    assert names("?q=rack%3Dr1&sort=name") == ["node01", "node03", "node05"]
    assert names("?q=NODE04") == ["node04"]
    assert names("?state=down") == []
    assert len(names("?sort=bogus&state=bogus&per_page=3")) == 7  # unknown values: defaults
    assert names("?sort=util&order=desc")[:2] == ["node06", "node05"]


def _row(name: str, up: bool = True, health: str = "healthy") -> NodeRow:
    return NodeRow(name, up, 0.0, {}, [], 0, None, None, health)


def test_fleet_pages_cut_the_sorted_rows() -> None:
    rows = [_row(f"n{i:03d}", up=i % 10 != 0) for i in range(60)]
    first = fleet_model(rows, FleetQuery.parse("", "all", "name", "asc", 1, 25))
    assert (first.matched, first.pages) == (60, 3)
    assert [r.name for r in first.rows] == [f"n{i:03d}" for i in range(25)]
    last = fleet_model(rows, FleetQuery.parse("", "all", "name", "asc", 99, 25))
    assert last.query.page == 3 and [r.name for r in last.rows] == [
        f"n{i:03d}" for i in range(50, 60)
    ]
    down = fleet_model(rows, FleetQuery.parse("", "down", "name", "asc", 1, 25))
    assert [r.name for r in down.rows] == ["n000", "n010", "n020", "n030", "n040", "n050"]
    assert (down.nodes_total, down.nodes_up) == (60, 54)


def test_node_page_lists_gpus_events_and_charts(client: TestClient) -> None:
    event = GpuEvent(time=START - 5, source="nvml", code=79, gpu_index=0, uuid=UUID,
                     message="GPU has fallen off the bus", mnemonic="GPU_HAS_FALLEN_OFF_THE_BUS",
                     severity="critical", action="RESTART_BM")  # fmt: skip
    batch = make_batch(timestamp=START, metrics=_gpu_metrics())
    push(client, batch.model_copy(update={"events": [event]}))
    page = client.get("/nodes/gpu01").text
    assert 'data-page="node"' in page
    assert _hrefs(page, "gpu-link")[0] == "/nodes/gpu01/gpus/0"
    assert "GPU_HAS_FALLEN_OFF_THE_BUS" in page
    assert "failing" in page and "XID 79" in page  # a critical XID within the hour
    queries = _queries(page)
    assert any('instance="gpu01"' in q and "node_cpu_seconds_total" in q for q in queries)
    assert any(q.startswith("DCGM_FI_DEV_GPU_UTIL{") for q in queries)


def test_gpu_page_shows_readings_health_and_charts(client: TestClient) -> None:
    push(client, make_batch(timestamp=START, metrics=_gpu_metrics(
        temp=88.0, DCGM_FI_DEV_SLOWDOWN_TEMP=90.0, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL=0.0)))  # fmt: skip
    page = client.get("/nodes/gpu01/gpus/0").text
    assert 'data-page="gpu"' in page
    assert UUID in page and "88 °C" in page
    assert ">hot<" in page and "slowdown at 90 °C" in page
    queries = _queries(page)
    assert len(queries) >= 8
    assert all(f'UUID="{UUID}"' in q for q in queries)
    assert "Never benchmarked" in page


def test_a_gpu_with_uncorrectable_errors_is_failing(client: TestClient) -> None:
    push(
        client, make_batch(timestamp=START, metrics=_gpu_metrics(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL=2.0))
    )
    page = client.get("/nodes/gpu01/gpus/0").text
    assert ">failing<" in page and "ecc_uncorrectable" in page


def test_unknown_things_are_404_pages(client: TestClient) -> None:
    push(client, make_batch(timestamp=START))
    missing = ("/nodes/nope", "/nodes/gpu01/gpus/7", "/nodes/gpu01/gpus/-1", "/jobs/nope",
               "/hints/0123456789abcdef")  # fmt: skip
    for path in missing:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert 'id="missing"' in answer.text and "text/html" in answer.headers["content-type"]


def test_lists_render_empty(client: TestClient) -> None:
    markers = {
        "/jobs": 'id="no-jobs"',
        "/alerts": "Nothing is firing",
        "/hints": "No hint in this view",
        "/benchmarks": 'id="no-bench"',
    }
    for path, marker in markers.items():
        page = client.get(path).text
        assert marker in page, path
        assert f'data-page="{path[1:]}"' in page


def test_reads_closed_pages_need_credentials(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(open_reads=False)) as closed:
        assert closed.get("/", headers={"Accept": "application/json"}).status_code == 401
