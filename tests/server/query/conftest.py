"""Two nodes' batches ingested the normal way, 10 s apart, ending at START.

Per node and batch ``i`` (0..5, at START - 50 + 10 i): ``node_cpu_seconds_total{mode="idle"}``
is 100 + 10 i, ``{mode="user"}`` 12.5, ``node_load1`` 0.5 on gpu01 and 1.5 on gpu02,
``DCGM_FI_DEV_GPU_UTIL`` 42. gpu02 has the node label ``rack="r2"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.schema import MetricFamily
from tests.factories import default_metrics, identity, make_batch
from tests.server.conftest import START, push

API = "/prometheus/api/v1"
NODES = {
    "gpu01": identity("gpu01", node_id="0123456789abcdef0123456789abcdef"),
    "gpu02": identity("gpu02", node_id="fedcba9876543210fedcba9876543210", labels={"rack": "r2"}),
}
LOAD = {"gpu01": 0.5, "gpu02": 1.5}
BATCHES = 6


def metrics(name: str, i: int) -> list[MetricFamily]:
    families = default_metrics(cpu_idle=100.0 + 10 * i)
    return [
        MetricFamily(name="node_load1", samples=[({}, LOAD[name])])
        if family.name == "node_load1"
        else family
        for family in families
    ]


def fill(client: TestClient) -> None:
    for i in range(BATCHES):
        for name, node in NODES.items():
            batch = make_batch(
                seq=i + 1, timestamp=START - 50 + 10 * i, node=node, metrics=metrics(name, i)
            )
            assert push(client, batch).status_code == 200


@pytest.fixture
def api(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app()) as client:
        fill(client)
        yield client
