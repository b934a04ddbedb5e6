"""Fixtures of the live hint tests: a migrated database on both backends and a hint store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from server.rebalancing.store import HintStore
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.writer import Writer
from tests.server.conftest import FakeClock


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[Writer]:
    writer = Writer(engine)
    yield writer
    writer.close()


@pytest.fixture
def store(engine: Engine, writer: Writer, clock: FakeClock) -> HintStore:
    return HintStore(engine, writer, clock)
