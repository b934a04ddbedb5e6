"""A scheduler token made with ``dcmon token create --role scheduler`` (and listed by role)
acts on hints of a server on the same database, and reads, but does nothing an admin does."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.cli import main
from server.app import create_app
from server.settings import ServerSettings
from tests.server.conftest import FakeClock
from tests.server.rebalancing.clusters import ScriptedSource, fleet


def test_a_cli_scheduler_token_changes_hint_states(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(tmp_path)]
    assert main(["token", "create", "--init", "--role", "scheduler", "--name", "k8s", *where]) == 0
    fields = dict(
        (k.strip(), v.strip())
        for k, v in (line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    )
    assert fields["role"] == "scheduler"
    assert main(["token", "list", "--role", "scheduler", "--json", *where]) == 0
    assert '"role": "scheduler"' in capsys.readouterr().out
    auth = {"Authorization": f"Bearer {fields['token']}"}

    source = ScriptedSource(fleet())
    app = create_app(ServerSettings(data_dir=tmp_path), clock=clock, hint_source=source)
    with TestClient(app) as client:
        for loop in app.state.hint_loops:
            loop.stop()
        app.state.hints.run_round(clock.now)
        listed = client.get("/api/v1/hints", headers=auth)
        assert listed.status_code == 200
        first = listed.json()["hints"][0]["id"]
        changed = client.post(f"/api/v1/hints/{first}", json={"state": "applied"}, headers=auth)
        assert changed.status_code == 200 and changed.json()["state"] == "applied"
        assert changed.json()["state_changed_by"] == fields["token_id"]
        assert client.get("/api/v1/nodes", headers=auth).status_code == 200  # it reads
        assert client.get("/api/v1/admin/tokens", headers=auth).status_code == 403
