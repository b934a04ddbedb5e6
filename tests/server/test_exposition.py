"""GET /metrics: node_exporter/dcgm-exporter names with instance and node labels, stale nodes
leave, and the text is valid exposition that promtool accepts."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from agent.wire.catalog import default_catalog
from agent.wire.schema import MetricFamily
from tests.factories import GPU_LABELS, default_metrics, identity, make_batch
from tests.integration import require_binary
from tests.promtool import check_metrics
from tests.server.conftest import START, FakeClock, push

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def _families(text: str) -> dict[str, str]:
    """Returns: family name -> TYPE, checking every sample line belongs to a typed family."""
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group(1)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in types or base in types, f"sample without TYPE: {line}"
    return types


def test_node_series_carry_instance_and_node_labels(client: TestClient) -> None:
    node = identity(labels={"cluster": "a", "rack": "r7"})
    push(client, make_batch(timestamp=START, node=node))
    text = client.get("/metrics").text
    assert (
        'node_cpu_seconds_total{instance="gpu01",cluster="a",rack="r7",cpu="0",mode="idle"} 100\n'
        in text
    )
    gpu = ",".join(f'{k}="{v}"' for k, v in GPU_LABELS.items())
    assert f'DCGM_FI_DEV_GPU_UTIL{{instance="gpu01",cluster="a",rack="r7",{gpu}}} 42\n' in text
    assert 'dcmon_node_up{instance="gpu01",cluster="a",rack="r7"} 1\n' in text
    assert (
        'node_scrape_collector_success{instance="gpu01",cluster="a",rack="r7",collector="cpu"} 1'
        in text
    )


def test_every_family_is_in_the_catalog_with_its_type(client: TestClient) -> None:
    push(client, make_batch(timestamp=START))
    types = _families(client.get("/metrics").text)
    catalog = default_catalog()
    for name, kind in types.items():
        assert name in catalog, f"{name} is exposed but not in the catalog"
        assert catalog[name].type == kind, name


def test_silent_nodes_leave_but_stay_visible_as_down(client: TestClient, clock: FakeClock) -> None:
    push(client, make_batch(timestamp=START))
    clock.now += 29  # 3 x 10 s interval is 30 s
    assert "node_cpu_seconds_total{" in client.get("/metrics").text
    clock.now += 2
    text = client.get("/metrics").text
    assert "node_cpu_seconds_total{" not in text
    assert 'dcmon_node_up{instance="gpu01"} 0' in text
    assert client.get("/api/v1/nodes").json()["nodes"][0]["state"] == "down"
    clock.now += 8 * 86400  # past the forget window
    assert "gpu01" not in client.get("/metrics").text


def test_a_newer_batch_replaces_the_node_series(client: TestClient, clock: FakeClock) -> None:
    push(client, make_batch(seq=1, timestamp=START))
    without_gpu = [f for f in default_metrics() if not f.name.startswith("DCGM")]
    clock.now += 10
    push(client, make_batch(seq=2, timestamp=START + 10, metrics=without_gpu))
    text = client.get("/metrics").text
    assert "DCGM_FI_DEV_GPU_UTIL{" not in text  # missing is absent, not stale
    # A late replay of an older batch must not bring old values back.
    push(client, make_batch(seq=0, timestamp=START - 10))
    assert "DCGM_FI_DEV_GPU_UTIL{" not in client.get("/metrics").text


def test_label_values_are_escaped(client: TestClient) -> None:
    family = MetricFamily(
        name="node_uname_info",
        samples=[
            (
                {
                    "sysname": 'Li"nux',
                    "release": "a\\b",
                    "version": "line1\nline2",
                    "machine": "x86_64",
                    "nodename": "gpu01",
                    "domainname": "(none)",
                },
                1.0,
            )
        ],
    )
    push(client, make_batch(timestamp=START, metrics=[family]))
    text = client.get("/metrics").text
    assert r'sysname="Li\"nux",release="a\\b",version="line1\nline2"' in text


def test_content_type_is_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.integration
def test_promtool_accepts_the_exposition(client: TestClient) -> None:
    promtool = require_binary("promtool")
    push(client, make_batch(timestamp=START, node=identity(labels={"cluster": "a"})))
    result = check_metrics(promtool, client.get("/metrics").text)
    assert not result.unexpected, result.unexpected


def test_timestamps_on_request_are_each_samples_batch_time(
    client: TestClient, clock: FakeClock
) -> None:
    push(client, make_batch(seq=1, timestamp=START + 0.25))
    plain = client.get("/metrics").text
    stamped = client.get("/metrics", params={"timestamps": "true"}).text
    node_lines = [line for line in stamped.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL")]
    assert node_lines and all(line.endswith(f" {int(START * 1000) + 250}") for line in node_lines)
    status = [line for line in stamped.splitlines() if line.startswith("dcmon_node_up")]
    assert status == [line for line in plain.splitlines() if line.startswith("dcmon_node_up")]
    # Each form keeps its own render cache: the plain form has no timestamps after the other.
    assert client.get("/metrics").text.count(f" {int(START * 1000) + 250}\n") == 0
    assert client.get("/metrics", params={"timestamps": "maybe"}).status_code == 422


@pytest.mark.integration
def test_promtool_accepts_the_timestamped_exposition(client: TestClient) -> None:
    promtool = require_binary("promtool")
    push(client, make_batch(timestamp=START, node=identity(labels={"cluster": "a"})))
    text = client.get("/metrics", params={"timestamps": "1"}).text
    result = check_metrics(promtool, text)
    assert not result.unexpected, result.unexpected


def _with_agent_process() -> list[MetricFamily]:
    return [
        *default_metrics(),
        MetricFamily(name="process_cpu_seconds_total", samples=[({}, 1.5)]),
        MetricFamily(name="process_resident_memory_bytes", samples=[({}, 4.0e7)]),
    ]


def test_the_agents_and_the_servers_process_series_share_one_header(client: TestClient) -> None:
    push(client, make_batch(timestamp=START, metrics=_with_agent_process()))
    text = client.get("/metrics").text

    types = _families(text)  # one TYPE per family, or it raises

    assert types["process_cpu_seconds_total"] == "counter"
    assert text.count("# HELP process_cpu_seconds_total ") == 1
    assert 'process_cpu_seconds_total{instance="gpu01"} 1.5\n' in text  # the node's agent
    assert re.search(r"^process_cpu_seconds_total \S+$", text, re.M)  # the server's own


@pytest.mark.integration
def test_promtool_accepts_the_agents_process_series_beside_the_servers(
    client: TestClient,
) -> None:
    promtool = require_binary("promtool")
    push(client, make_batch(timestamp=START, metrics=_with_agent_process()))
    result = check_metrics(promtool, client.get("/metrics").text)
    assert not result.unexpected, result.unexpected
