"""Server test fixtures: an app on SQLite in a temp dir, a settable clock, a push helper."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.codec import encode_batch
from agent.wire.schema import Batch
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from tests.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]

TOKEN = "dcm_test_token_0123456789"
START = 1_800_000_000.0


class FakeClock:
    """Wall-clock seconds that tests move by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(tmp_path: Path, clock: FakeClock) -> Callable[..., FastAPI]:
    """Apps with the shared ingest token and open reads (reads without a token), as most tests
    of the read API want; the auth tests pass ``open_reads=False``."""

    def factory(**overrides: Any) -> FastAPI:
        overrides.setdefault("open_reads", True)
        settings = ServerSettings(
            data_dir=tmp_path, ingest_token_sha256=[sha256_hex(TOKEN)], **overrides
        )
        return create_app(settings, clock=clock)

    return factory


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The storage suite's backends: SQLite in a temp dir, and a real PostgreSQL database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'dcmon.db'}"


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app()) as test_client:
        yield test_client


def push(
    client: TestClient,
    batch: Batch | None = None,
    *,
    body: bytes | None = None,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent_headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    sent_headers.update(headers or {})
    payload = body if body is not None else encode_batch(batch) if batch is not None else b""
    return client.post("/api/v1/ingest", content=payload, headers=sent_headers)


def row_counts(db: Path) -> dict[str, int]:
    """Rows per table, and ``samples``: every stored sample, in the head or in raw blocks."""
    tables = ("nodes", "gpus", "series", "head_chunks", "blocks", "ingested_batches")
    with sqlite3.connect(db) as connection:
        counts = {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        counts["samples"] = connection.execute(
            "SELECT (SELECT coalesce(sum(n), 0) FROM head_chunks)"
            " + (SELECT coalesce(sum(count), 0) FROM blocks WHERE tier = 0)"
        ).fetchone()[0]
    return counts
