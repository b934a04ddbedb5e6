"""A small server on a chosen backend, fed directly through its ingest service."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from server.app import create_app
from server.auth import Principal, Role
from server.auth.secrets import sha256_hex
from server.deps import Services
from server.settings import ServerSettings
from tests.factories import make_batch
from tests.server.conftest import TOKEN, FakeClock

GAUGE = "DCGM_FI_DEV_GPU_TEMP"
COUNTER = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
LABELS = {"gpu": "0", "UUID": "GPU-1", "Hostname": "n1"}


@contextmanager
def server(
    tmp_path: Path, database_url: str, clock: FakeClock, **overrides: Any
) -> Iterator[tuple[FastAPI, TestClient]]:
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=database_url,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        maintenance_interval_seconds=3600,
        **{"open_reads": True, **overrides},
    )
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        yield app, client


def services(app: FastAPI) -> Services:
    result: Services = app.state.services
    return result


def stream(
    start: float, count: int, interval: float, seed: int = 1
) -> list[tuple[float, float, float]]:
    """Returns: (timestamp, gauge value, counter value) per tick; the counter resets twice."""
    rng = random.Random(seed)
    rows = []
    counter = 1_000_000.0
    gauge = 50.0
    for tick in range(count):
        gauge = min(95.0, max(20.0, gauge + rng.choice((-1.0, 0.0, 1.0))))
        counter += rng.randint(0, 400_000)
        if tick in (count // 3, 2 * count // 3):
            counter = float(rng.randint(0, 1000))
        jitter = rng.uniform(-0.05, 0.05)
        rows.append((round(start + tick * interval + jitter, 3), gauge, counter))
    return rows


def push_stream(
    app: FastAPI,
    rows: Sequence[tuple[float, float, float]],
    interval: float,
    clock: FakeClock,
    first_seq: int = 1,
) -> None:
    """Ingest one batch per row (the first one with the inventory), moving the clock along."""
    ingest = services(app).ingest
    for seq, (ts, gauge, counter) in enumerate(rows, start=first_seq):
        clock.now = max(clock.now, ts)
        batch = make_batch(
            seq=seq,
            timestamp=ts,
            interval=interval,
            with_inventory=seq == 1,
            metrics=[
                MetricFamily(name=GAUGE, samples=[(dict(LABELS), gauge)]),
                MetricFamily(name=COUNTER, samples=[(dict(LABELS), counter)]),
            ],
        )
        ack = ingest.ingest(encode_batch(batch), "gzip", Principal(Role.INGEST, "test"))
        assert ack.status == "accepted", ack


def history(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/history", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def points(body: dict[str, Any]) -> list[tuple[float, float]]:
    assert len(body["series"]) == 1, body
    return [(t, v) for t, v in body["series"][0]["points"]]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
