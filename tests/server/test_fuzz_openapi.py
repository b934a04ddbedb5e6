"""Property tests against the server's own OpenAPI document: no request makes a 5xx, and answers
match what the document promises (status codes, content types, response schemas).

Every operation in the document is exercised, so routes added later are covered without a change
here. Requests go to one in-process application with reads open and a key per route family
(admin for most, the ingest token for ingest, the bootstrap token for enrollment), so that most
requests get past authentication and reach the handlers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from server.app import create_app
from server.auth.secrets import sha256_hex
from server.ingest.bulk import MEDIA_TYPE
from server.remote_write.router import MEDIA_TYPE as REMOTE_WRITE_MEDIA_TYPE
from server.settings import ServerSettings
from tests.factories import make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

ADMIN_KEY = "dcm_admin_key_for_fuzzing_0123"
BOOTSTRAP_TOKEN = "dcm_bootstrap_token_for_fuzzing"

# Responses that are not JSON documents of a declared model: the checks of their shape are
# skipped, the no-5xx check is not.
_UNMODELLED = ("/metrics", "/healthz", "/readyz")


def _openapi_document() -> dict[str, Any]:
    """The application's OpenAPI document, from an app on an in-memory database (the schema is
    needed when the tests are collected, before any fixture exists)."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    try:
        app = create_app(ServerSettings(data_dir=Path("/nonexistent")), engine=engine)
        document: dict[str, Any] = app.openapi()
    finally:
        engine.dispose()
    return document


schema = schemathesis.openapi.from_dict(_openapi_document())


@schemathesis.serializer(MEDIA_TYPE, REMOTE_WRITE_MEDIA_TYPE)
def _bulk_body(_ctx: Any, value: Any) -> bytes:
    """Generated bulk and remote-write bodies go as generated (bytes), anything else as its JSON
    text."""
    data = getattr(value, "data", value)
    if isinstance(data, bytes):
        return data
    return json.dumps(data, default=str).encode()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings_ = ServerSettings(
        data_dir=Path(tmp_path_factory.mktemp("fuzz-openapi")),
        ingest_token_sha256=[sha256_hex(TOKEN)],
        admin_key_sha256=[sha256_hex(ADMIN_KEY)],
        bootstrap_token_sha256=[sha256_hex(BOOTSTRAP_TOKEN)],
        open_reads=True,
        maintenance_interval_seconds=3600,
    )
    with TestClient(create_app(settings_, clock=FakeClock())) as client:
        # Some data, so that reads of nodes, series and history have something to return.
        assert push(client, make_batch(timestamp=START)).status_code == 200
        yield client


def _token_for(path: str) -> str:
    if path.startswith("/api/v1/ingest"):
        return TOKEN
    if path.startswith("/api/v1/enroll"):
        return BOOTSTRAP_TOKEN
    return ADMIN_KEY


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors_and_answers_match_the_schema(case: Any, api: TestClient) -> None:
    path = case.operation.path
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_token_for(path)}"}
    kwargs = case.as_transport_kwargs(base_url=str(api.base_url))
    assert not kwargs.get("cookies"), "no operation takes cookies"
    data = kwargs.get("data")
    response = api.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        content=data if isinstance(data, bytes | str) else None,
        data=data if isinstance(data, dict) else None,
        json=kwargs.get("json"),
    )
    checks = [not_a_server_error]
    if not path.startswith(_UNMODELLED):
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks)
