"""Bench API fixtures: an app with an admin key and closed reads, nodes with their own tokens,
reports built as the agent sends them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.bench import BENCH_REPORT_PATH, BENCH_REQUESTS_PATH
from server.auth.principal import Role
from server.auth.secrets import sha256_hex
from server.deps import Services
from tests.factories import identity, make_batch
from tests.server.conftest import START, FakeClock, push

ADMIN_KEY = "dcm_admin_key_for_bench_tests_01"
READ_TOKEN = "dcm_read_token_for_bench_tests_1"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
H100 = "NVIDIA H100 80GB HBM3"


def node_id_of(name: str) -> str:
    return (name.encode().hex() + "0" * 32)[:32]


@dataclass
class Node:
    """An agent node of the test: its identity, token and push sequence."""

    client: TestClient
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    token: str = ""
    seq: int = 0

    @property
    def node_id(self) -> str:
        return node_id_of(self.name)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def push(self, at: float | None = None) -> httpx.Response:
        """One batch; returns the answer (its ``bench`` is the order, if any)."""
        self.seq += 1
        clock: FakeClock = self.client.app.state.services.clock  # type: ignore[attr-defined]
        batch = make_batch(
            self.seq,
            clock.now if at is None else at,
            identity(self.name, self.node_id, self.labels),
        )
        response = push(self.client, batch, token=self.token)
        assert response.status_code == 200, response.text
        return response

    def order(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.push().json()["bench"]
        return found

    def report(self, request_id: str, state: str, **body: Any) -> httpx.Response:
        return self.client.post(
            BENCH_REPORT_PATH.format(request_id=request_id),
            json={"state": state, **body},
            headers=self.auth,
        )


class Bench:
    """The test's server and its nodes."""

    def __init__(self, client: TestClient, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock
        self.nodes: dict[str, Node] = {}
        # the tests write the series themselves, at times they choose
        client.app.state.bench_series.stop()  # type: ignore[attr-defined]

    @property
    def services(self) -> Services:
        found: Services = self.client.app.state.services  # type: ignore[attr-defined]
        return found

    def node(self, name: str, **labels: str) -> Node:
        """A node that pushed once, with its own node token."""
        token = self.services.credentials.create(Role.NODE, node_id=node_id_of(name)).token
        node = Node(self.client, name, dict(labels), token)
        node.push()
        self.nodes[name] = node
        return node

    def ask(self, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        return self.client.post(
            BENCH_REQUESTS_PATH, json=body, headers=ADMIN if headers is None else headers
        )

    def ask_one(self, node: str, **body: Any) -> str:
        """Returns: the id of a new request for ``node``."""
        response = self.ask(nodes=[node], **body)
        assert response.status_code == 201, response.text
        (created,) = response.json()["created"]
        request_id: str = created["id"]
        return request_id

    def get(self, request_id: str) -> dict[str, Any]:
        response = self.client.get(f"{BENCH_REQUESTS_PATH}/{request_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def cancel(self, request_id: str) -> httpx.Response:
        return self.client.post(f"{BENCH_REQUESTS_PATH}/{request_id}/cancel", headers=ADMIN)

    def run(self, node: str, result: dict[str, Any], **body: Any) -> str:
        """A request for ``node`` that its agent runs and reports done with ``result``."""
        request_id = self.ask_one(node, **body)
        agent = self.nodes[node]
        assert agent.report(request_id, "running").status_code == 200
        done = agent.report(request_id, "done", result=result)
        assert done.status_code == 200, done.text
        return request_id


@pytest.fixture
def bench(make_app: Callable[..., FastAPI], clock: FakeClock) -> Iterator[Bench]:
    app = make_app(
        open_reads=False,
        admin_key_sha256=[sha256_hex(ADMIN_KEY)],
        read_token_sha256=[sha256_hex(READ_TOKEN)],
    )
    with TestClient(app) as client:
        yield Bench(client, clock)


def device(
    index: int,
    figures: dict[str, float],
    *,
    uuid: str | None = None,
    name: str = H100,
    kind: str = "cuda",
    sku: str | None = "h100_sxm",
    statuses: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One device of a result tree, with ``figures`` (test -> value)."""
    statuses = statuses or {}
    results = [
        {
            "test": test,
            "device": index,
            "status": statuses.get(test, "ok"),
            "value": value,
            "unit": "GB/s" if test == "memory_copy" else "TFLOP/s",
            "params": {"size": 4096},
            "duration_s": 1.0,
        }
        for test, value in figures.items()
    ]
    passed = all(r["status"] not in ("fail", "error") for r in results)
    info = {"index": index, "name": name, "kind": kind, "uuid": uuid, "sku": sku}
    return {"device": info, "results": results, "passed": passed}


def result(
    devices: Sequence[dict[str, Any]],
    *,
    started_at: float = START,
    level: str = "quick",
    checks: dict[str, list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """A judged result tree as ``dcmon bench --json`` prints it (the agent's judgement empty:
    the server judges again)."""
    return {
        "level": level,
        "backend": "torch",
        "started_at": started_at,
        "duration_s": 12.5,
        "passed": all(d["passed"] for d in devices),
        "devices": list(devices),
        "judgement": [],
        "checks": checks or {},
    }
