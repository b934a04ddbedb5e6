"""Helpers for the ingest tests: bulk pushes and per-node tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.codec import encode_batch
from agent.wire.schema import Batch
from server.auth import Principal, Role
from server.ingest.bulk import MEDIA_TYPE, join_records
from tests.server.conftest import TOKEN

NODE_TOKEN = "dcm_node_token_for_gpu01"


class TokenTable:
    """An authenticator over a fixed token -> principal table."""

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self._principals = dict(principals)

    def authenticate(self, token: str) -> Principal | None:
        return self._principals.get(token)


def with_node_token(app: FastAPI, node_id: str, token: str = NODE_TOKEN) -> None:
    """Let ``token`` be a node token of ``node_id`` (besides the shared ingest token)."""
    services = app.state.services
    table = TokenTable(
        {
            TOKEN: Principal(Role.INGEST, "fleet"),
            token: Principal(Role.NODE, "node-token", node_id=node_id),
        }
    )
    app.state.services = replace(services, authenticator=table)


def push_bulk(
    client: TestClient,
    batches: Sequence[Batch] = (),
    *,
    payloads: Sequence[bytes] | None = None,
    body: bytes | None = None,
    token: str | None = TOKEN,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST a bulk request of these batches (or raw record payloads, or a raw body)."""
    sent_headers = {"Content-Type": MEDIA_TYPE}
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    sent_headers.update(headers or {})
    if body is None:
        records = list(payloads) if payloads is not None else [encode_batch(b) for b in batches]
        body = join_records(records)
    return client.post("/api/v1/ingest/bulk", content=body, headers=sent_headers)
