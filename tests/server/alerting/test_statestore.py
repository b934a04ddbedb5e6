"""Alert state in a real database (SQLite and PostgreSQL): saved as diffs, loaded back whole."""

from __future__ import annotations

from sqlalchemy import func, select

from server.alerting.statestore import DatabaseStateStore
from server.rules.state import Alert, State
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.tables import AlertStateRow
from server.storage.writer import Writer


def _alert(instance: str, state: State = State.PENDING, **times: int) -> Alert:
    labels = (("alertname", "Hot"), ("instance", instance))
    return Alert(labels, (("summary", "hot"),), state, 91.5, 1_000, **times)


def _count(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AlertStateRow)).scalar_one())


def test_state_round_trips_and_only_changes_are_written(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    writer = Writer(engine)
    try:
        store = DatabaseStateStore(engine, writer)
        a = _alert("n1")
        b = _alert("n2", State.FIRING, fired_at_ms=2_000, keep_firing_since_ms=3_000)
        assert store.save("f;g", {"rule#1": [a, b]}, 5_000) == 2
        assert store.save("f;g", {"rule#1": [a, b]}, 6_000) == 0  # nothing moved
        moved = _alert("n1", State.FIRING, fired_at_ms=4_000, last_sent_at_ms=4_000)
        assert store.save("f;g", {"rule#1": [moved]}, 7_000) == 2  # one changed, one gone
        store.save("f;other", {"r#1": [a]}, 7_000)
        assert _count(engine) == 2

        fresh = DatabaseStateStore(engine, writer)  # another process, the same database
        loaded = fresh.load()
        assert loaded == {"f;g": {"rule#1": [moved]}, "f;other": {"r#1": [a]}}
        assert fresh.save("f;g", {"rule#1": [moved]}, 8_000) == 0  # it knows what is stored
        fresh.forget("f;other")
        assert _count(engine) == 1
    finally:
        writer.close()
        engine.dispose()
