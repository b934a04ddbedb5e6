"""Auth test fixtures: a credential store on each backend, and an app with reads closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.auth.credentials import CredentialStore
from server.deps import Services
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.writer import Writer
from tests.server.conftest import FakeClock


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[CredentialStore]:
    engine = make_engine(database_url)
    upgrade(engine)
    writer = Writer(engine)
    try:
        yield CredentialStore(engine, writer, clock)
    finally:
        writer.close()
        engine.dispose()


@pytest.fixture
def closed(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """A client of an app that serves nothing without a token but health."""
    with TestClient(make_app(open_reads=False)) as client:
        yield client


def services_of(client: TestClient) -> Services:
    result: Services = client.app.state.services  # type: ignore[attr-defined]
    return result


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
