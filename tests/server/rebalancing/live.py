"""A server with a scripted snapshot source and the tokens the hint API tests use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.auth.principal import Role
from server.auth.secrets import sha256_hex
from server.deps import Services
from server.hints.model import Snapshot
from server.rebalancing.service import HintService, RoundReport
from server.settings import ServerSettings
from tests.server.conftest import TOKEN, FakeClock
from tests.server.rebalancing.clusters import ScriptedSource

ADMIN_KEY = "dcm_admin_key_for_hint_tests_001"
READ_TOKEN = "dcm_read_token_for_hint_tests_01"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
READER = {"Authorization": f"Bearer {READ_TOKEN}"}
ROUND_S = 300.0


@dataclass
class Live:
    client: TestClient
    source: ScriptedSource
    clock: FakeClock

    @property
    def hints(self) -> HintService:
        found: HintService = self.client.app.state.hints  # type: ignore[attr-defined]
        return found

    @property
    def services(self) -> Services:
        found: Services = self.client.app.state.services  # type: ignore[attr-defined]
        return found

    def round(self, snapshot: Snapshot) -> RoundReport:
        """One round, an interval after the last, on ``snapshot``."""
        self.source.snapshot = snapshot
        self.clock.now += ROUND_S
        return self.hints.run_round(self.clock.now)

    def token(self, role: Role) -> dict[str, str]:
        node_id = "0123456789abcdef0123456789abcdef" if role is Role.NODE else None
        token = self.services.credentials.create(role, node_id=node_id).token
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=READER)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, hint_id: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            f"/api/v1/hints/{hint_id}", json=body, headers=ADMIN if headers is None else headers
        )


@pytest.fixture
def live(tmp_path: Path, clock: FakeClock) -> Iterator[Live]:
    source = ScriptedSource()
    settings = ServerSettings(
        data_dir=tmp_path,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        admin_key_sha256=[sha256_hex(ADMIN_KEY)],
        read_token_sha256=[sha256_hex(READ_TOKEN)],
        open_reads=False,
    )
    app = create_app(settings, clock=clock, hint_source=source)
    with TestClient(app) as client:
        for loop in app.state.hint_loops:  # the tests run rounds and write series themselves
            loop.stop()
        yield Live(client, source, clock)
