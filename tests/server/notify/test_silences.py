"""Silences through the API and the CLI, stored in the database (migration 0007), applied by
the notifier's store; admin-only writes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import run_maintenance
from server.auth.secrets import sha256_hex
from server.notify import cli
from server.notify.model import make_labels, rfc3339
from server.notify.nflog import LogEntry
from server.notify.nflog_store import SqlNotificationLog
from server.notify.silence_store import KEEP_EXPIRED_S, SilenceStore
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.tables import Base
from server.storage.writer import Writer
from tests.server.conftest import START, FakeClock

ADMIN = "dcm_admin_key_0123456789"
READER = "dcm_read_token_0123456789"


@pytest.fixture
def api(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    app = make_app(
        open_reads=False,
        admin_key_sha256=[sha256_hex(ADMIN)],
        read_token_sha256=[sha256_hex(READER)],
    )
    with TestClient(app) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BODY = {
    "matchers": [{"name": "instance", "value": "gpu0[12]", "isRegex": True}],
    "endsAt": rfc3339(START + 3600),
    "comment": "swapping GPUs",
}


def test_silence_crud_is_admin_only_and_applied_from_the_database(
    api: TestClient, clock: FakeClock
) -> None:
    assert api.post("/api/v1/silences", json=BODY).status_code == 401
    assert api.post("/api/v1/silences", json=BODY, headers=_auth(READER)).status_code == 403
    made = api.post("/api/v1/silences", json=BODY, headers=_auth(ADMIN))
    assert made.status_code == 201, made.text
    silence_id = made.json()["silenceID"]
    listed = api.get("/api/v1/silences", headers=_auth(READER)).json()["silences"]
    assert [(s["id"], s["status"]["state"]) for s in listed] == [(silence_id, "active")]
    assert listed[0]["createdBy"]  # the admin's token id when not given
    assert listed[0]["matchers"] == [
        {"name": "instance", "value": "gpu0[12]", "isRegex": True, "isEqual": True}
    ]
    # The notifier's view, from the same database.
    services = api.app.state.services  # type: ignore[attr-defined]
    store = SilenceStore(services.store.engine, services.store.writer, clock)
    (active,) = store.active()
    assert active.mutes(make_labels({"instance": "gpu01"}), clock())
    assert not active.mutes(make_labels({"instance": "gpu03"}), clock())
    # Expire: only an admin; it stays listed, expired, and no longer applies.
    assert api.delete(f"/api/v1/silences/{silence_id}", headers=_auth(READER)).status_code == 403
    gone = api.delete(f"/api/v1/silences/{silence_id}", headers=_auth(ADMIN))
    assert gone.status_code == 200 and gone.json()["status"]["state"] == "expired"
    assert store.active() == []
    assert api.get(f"/api/v1/silences/{silence_id}", headers=_auth(READER)).json()["status"] == {
        "state": "expired"
    }
    assert api.delete("/api/v1/silences/nope", headers=_auth(ADMIN)).status_code == 404


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"matchers": [{"name": "a", "value": ""}]}, "empty label set"),
        ({"matchers": [{"name": "a", "value": "(", "isRegex": True}]}, "invalid regex"),
        ({"endsAt": rfc3339(START - 60)}, "after startsAt"),
        ({"endsAt": "tomorrow"}, "RFC 3339"),
    ],
)
def test_invalid_silences_are_refused_with_the_reason(
    api: TestClient, change: dict, reason: str
) -> None:
    answer = api.post("/api/v1/silences", json={**BODY, **change}, headers=_auth(ADMIN))
    assert answer.status_code == 422
    assert reason in answer.json()["error"]["message"]


def _through(api: TestClient) -> httpx.MockTransport:
    """An httpx transport that hands each request to the app (the CLI's real HTTP path)."""

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {
            k: v for k, v in request.headers.items() if k in ("authorization", "content-type")
        }
        answer = api.request(
            request.method, request.url.raw_path.decode(), content=request.content, headers=headers
        )
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"content-type": answer.headers.get("content-type", "")},
        )

    return httpx.MockTransport(handle)


def test_cli_add_list_expire(api: TestClient, tmp_path: Path, clock: FakeClock, capsys) -> None:  # type: ignore[no-untyped-def]
    clock.now = time.time()  # the CLI computes endsAt from its own clock
    token = tmp_path / "admin.token"
    token.write_text(ADMIN)
    transport = _through(api)
    base = ["--server", "http://testserver", "--token-file", str(token)]
    code = cli.main(
        [*base, "add", 'alertname="GpuXid"', "--duration", "2h", "--comment", "known"], transport
    )
    assert code == 0
    silence_id = capsys.readouterr().out.strip()
    assert cli.main([*base, "list"], transport) == 0
    out = capsys.readouterr().out
    assert silence_id in out and 'alertname="GpuXid"' in out and "active" in out
    assert cli.main([*base, "expire", silence_id], transport) == 0
    capsys.readouterr()
    assert cli.main([*base, "list"], transport) == 0
    assert silence_id not in capsys.readouterr().out
    assert cli.main([*base, "list", "--all"], transport) == 0
    assert silence_id in capsys.readouterr().out
    assert cli.main([*base, "add", "bad matcher", "--comment", "x"], transport) == 2
    token.write_text(READER)
    assert cli.main([*base, "add", 'a="b"', "--comment", "x"], transport) == 1
    assert "403" in capsys.readouterr().err


def test_schema_matches_the_tables_and_the_notification_log_persists(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "silences" in str(d) or "notification_log" in str(d)] == []
    writer = Writer(engine)
    try:
        log = SqlNotificationLog(engine, writer)
        entry = LogEntry("hook/webhook/0", '{}:{a="b"}', frozenset({"f1"}), frozenset(), 5.0, 9.0)
        log.log(entry)
        log.log(entry)  # replaces, never duplicates
        assert log.get("hook/webhook/0", '{}:{a="b"}') == entry
        assert log.get("other", '{}:{a="b"}') is None
        assert log.gc(8.0) == 0 and log.gc(9.0) == 1
        assert log.get("hook/webhook/0", '{}:{a="b"}') is None
    finally:
        writer.close()
        engine.dispose()


def test_maintenance_deletes_silences_expired_past_their_retention(
    api: TestClient, clock: FakeClock
) -> None:
    made = api.post("/api/v1/silences", json=BODY, headers=_auth(ADMIN))
    assert made.status_code == 201, made.text
    silence_id = made.json()["silenceID"]
    assert api.delete(f"/api/v1/silences/{silence_id}", headers=_auth(ADMIN)).status_code == 200
    services = api.app.state.services  # type: ignore[attr-defined]
    clock.now = START + KEEP_EXPIRED_S - 60  # expired, still within the retention: kept
    run_maintenance(services)
    assert api.get(f"/api/v1/silences/{silence_id}", headers=_auth(READER)).status_code == 200
    clock.now = START + KEEP_EXPIRED_S + 60
    run_maintenance(services)
    assert api.get(f"/api/v1/silences/{silence_id}", headers=_auth(READER)).status_code == 404
