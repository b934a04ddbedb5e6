"""The throwaway PostgreSQL of tests/postgres.py: URLs that work, isolation, loopback only,
crash recovery, and the skip/fail path when PostgreSQL is missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests import postgres
from tests.postgres import PostgresServer, discard, postgres_server, postgres_url, start_or_skip

__all__ = ["postgres_server", "postgres_url"]  # fixtures, found by pytest by name


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@pytest.mark.integration
def test_url_works_with_sqlalchemy(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://dcmon@127.0.0.1:")
    with connect(postgres_url) as connection:
        assert connection.execute(sa.text("select 1")).scalar_one() == 1
        connection.execute(sa.text("create table sample (id integer primary key, name text)"))
        connection.execute(
            sa.text("insert into sample values (:id, :name)"),
            [{"id": 1, "name": "gpu0"}, {"id": 2, "name": "gpu1"}],
        )
        connection.commit()
        rows = connection.execute(sa.text("select id, name from sample order by id")).all()
    assert [tuple(row) for row in rows] == [(1, "gpu0"), (2, "gpu1")]


@pytest.mark.integration
@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_database(postgres_url: str, run: int) -> None:
    """Run twice: a shared database would show the second run the first run's table."""
    database = sa.make_url(postgres_url).database
    with connect(postgres_url) as connection:
        assert connection.execute(sa.text("select current_database()")).scalar_one() == database
        assert connection.execute(sa.text("select to_regclass('marker')")).scalar() is None
        connection.execute(sa.text("create table marker (run integer)"))
        connection.execute(sa.text("insert into marker values (:run)"), {"run": run})
        connection.commit()
        # Earlier tests' databases were dropped: only this test's one is left.
        test_databases = connection.execute(
            sa.text("select datname from pg_database where datname like 'dcmon\\_%'")
        ).scalars()
        assert list(test_databases) == [database]


@pytest.mark.integration
def test_listens_on_loopback_only(postgres_server: PostgresServer, postgres_url: str) -> None:
    with connect(postgres_url) as connection:
        show = connection.execute(sa.text("show listen_addresses")).scalar_one()
        address = connection.execute(sa.text("select host(inet_server_addr())")).scalar_one()
        sockets = connection.execute(sa.text("show unix_socket_directories")).scalar_one()
    assert show == "127.0.0.1"
    assert address == "127.0.0.1"
    assert sockets == str(postgres_server.socket_dir)


@pytest.mark.integration
@pytest.mark.slow
def test_kill_then_start_recovers_committed_data(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_or_skip(tmp_path_factory)  # its own cluster: the session one stays up
    try:
        url = server.create_database("crash")
        with connect(url) as connection:
            connection.execute(sa.text("create table sample (value integer)"))
            connection.execute(sa.text("insert into sample values (42)"))
            connection.commit()
        port = server.port

        server.kill()
        assert not server.running()
        with pytest.raises(sa.exc.OperationalError), connect(url) as connection:
            connection.execute(sa.text("select 1"))

        server.start()
        assert server.port == port  # URLs handed out before the crash still work
        with connect(url) as connection:
            assert connection.execute(sa.text("select value from sample")).scalar_one() == 42
        assert "database system was interrupted" in server.log_file.read_text()
    finally:
        discard(server)
    assert not server.base_dir.exists()
    discard(server)  # twice is harmless


def test_skips_with_the_reason_when_postgres_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setattr(postgres, "postgres_binaries", lambda: None)
    monkeypatch.delenv("DCMON_REQUIRE_INTEGRATION", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"):
        start_or_skip(tmp_path_factory)


def test_fails_when_postgres_is_missing_but_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setattr(postgres, "postgres_binaries", lambda: None)
    monkeypatch.setenv("DCMON_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match="DCMON_REQUIRE_INTEGRATION=1"):
        start_or_skip(tmp_path_factory)
