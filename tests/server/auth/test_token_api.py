"""Enrollment, rotation and the admin token API over HTTP: status codes, the JSON error shape,
secrets shown once and never listed, and node tokens writing only their own node."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from server.auth.principal import Role
from server.auth.secrets import sha256_hex
from tests.factories import NODE_ID, identity, make_batch
from tests.server.auth.conftest import bearer, services_of
from tests.server.conftest import START, FakeClock, push

ADMIN_KEY = "dcm_test_admin_key_0123456789"
BOOTSTRAP = "dcm_test_bootstrap_0123456789"
OTHER_NODE = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    app = make_app(
        open_reads=False,
        admin_key_sha256=[sha256_hex(ADMIN_KEY)],
        bootstrap_token_sha256=[sha256_hex(BOOTSTRAP)],
    )
    with TestClient(app) as test_client:
        yield test_client


def _enroll(client: TestClient, node_id: str = NODE_ID, token: str = BOOTSTRAP) -> Response:
    body = {"node_id": node_id, "name": "gpu01", "hostname": "gpu01.example"}
    return client.post("/api/v1/enroll", json=body, headers=bearer(token))


def test_enroll_answers_a_node_token_that_writes_its_node(client: TestClient) -> None:
    response = _enroll(client)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"token", "token_id", "node_id"}
    assert body["node_id"] == NODE_ID and body["token"].startswith("dcm_")
    token = body["token"]
    assert push(client, make_batch(timestamp=START), token=token).status_code == 200
    other = make_batch(timestamp=START, node=identity("gpu02", node_id=OTHER_NODE))
    refused = push(client, other, token=token)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "node_mismatch"


def test_a_second_enrollment_of_a_node_is_refused_until_revoked(client: TestClient) -> None:
    first = _enroll(client).json()
    response = _enroll(client)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "already_enrolled"
    assert f"dcmon token revoke {first['token_id']}" in error["message"]
    # the first token keeps working: a leaked bootstrap token took nothing over
    assert push(client, make_batch(timestamp=START), token=first["token"]).status_code == 200

    revoke = client.delete(f"/api/v1/admin/tokens/{first['token_id']}", headers=bearer(ADMIN_KEY))
    assert revoke.status_code == 200 and revoke.json()["state"] == "revoked"
    assert (
        push(client, make_batch(timestamp=START + 10, seq=2), token=first["token"]).status_code
        == 401
    )
    assert _enroll(client).status_code == 201


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"node_id": "NOT-HEX", "name": "a", "hostname": "a"}, "body.node_id"),
        ({"node_id": NODE_ID, "name": "", "hostname": "a"}, "body.name"),
        ({"node_id": NODE_ID, "name": "a"}, "body.hostname"),
    ],
)
def test_enroll_validates_its_body(client: TestClient, body: dict[str, str], location: str) -> None:
    response = client.post("/api/v1/enroll", json=body, headers=bearer(BOOTSTRAP))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert location in [problem["location"] for problem in error["problems"]]


def test_only_bootstrap_tokens_enroll(client: TestClient) -> None:
    assert _enroll(client, token=ADMIN_KEY).status_code == 403
    node_token = _enroll(client).json()["token"]
    assert _enroll(client, OTHER_NODE, token=node_token).status_code == 403
    issued = services_of(client).credentials.create(Role.BOOTSTRAP, ttl_seconds=60)
    assert _enroll(client, OTHER_NODE, token=issued.token).status_code == 201


def test_rotation_over_http(client: TestClient, clock: FakeClock) -> None:
    old = _enroll(client).json()
    response = client.post("/api/v1/token/rotate", headers=bearer(old["token"]))
    assert response.status_code == 201, response.text
    new = response.json()
    assert set(new) == {"token", "token_id", "node_id"}
    assert new["node_id"] == NODE_ID and new["token_id"] != old["token_id"]

    # the old token still works until the new one is used; then only the new one does
    assert push(client, make_batch(seq=1, timestamp=START), token=old["token"]).status_code == 200
    assert (
        push(client, make_batch(seq=2, timestamp=START + 10), token=new["token"]).status_code == 200
    )
    assert (
        push(client, make_batch(seq=3, timestamp=START + 20), token=old["token"]).status_code == 401
    )
    listed = client.get("/api/v1/admin/tokens", params={"all": "true"}, headers=bearer(ADMIN_KEY))
    states = {token["token_id"]: token["state"] for token in listed.json()["tokens"]}
    assert states == {old["token_id"]: "revoked", new["token_id"]: "active"}


def test_only_node_tokens_rotate(client: TestClient) -> None:
    for token in (BOOTSTRAP, ADMIN_KEY):
        response = client.post("/api/v1/token/rotate", headers=bearer(token))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert client.post("/api/v1/token/rotate").status_code == 401


def test_admin_creates_lists_and_revokes_without_showing_secrets(
    client: TestClient, clock: FakeClock
) -> None:
    admin = bearer(ADMIN_KEY)
    created = client.post(
        "/api/v1/admin/tokens",
        json={"role": "read", "name": "grafana", "ttl_seconds": 3600},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["role"] == "read" and body["name"] == "grafana"
    assert body["expires_at"] == START + 3600 and body["node_id"] is None
    secret = body["token"]
    assert client.get("/api/v1/nodes", headers=bearer(secret)).status_code == 200

    listed = client.get("/api/v1/admin/tokens", headers=admin)
    assert listed.status_code == 200
    (token,) = listed.json()["tokens"]
    assert token["token_id"] == body["token_id"] and token["state"] == "active"
    assert token["last_used_at"] == START
    assert token["created_by"].startswith("config:")
    assert secret not in listed.text and sha256_hex(secret) not in listed.text
    assert "token" not in token and "sha256" not in token

    revoked = client.delete(f"/api/v1/admin/tokens/{body['token_id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] == START
    assert client.get("/api/v1/nodes", headers=bearer(secret)).status_code == 401
    assert client.get("/api/v1/admin/tokens", headers=admin).json() == {"tokens": []}
    everything = client.get("/api/v1/admin/tokens", params={"all": "true"}, headers=admin)
    assert [t["state"] for t in everything.json()["tokens"]] == ["revoked"]
    clock.now += 7200
    assert (
        client.get(
            "/api/v1/admin/tokens", params={"all": "true", "role": "read"}, headers=admin
        ).json()["tokens"][0]["state"]
        == "revoked"
    )


def test_admin_errors_use_the_json_error_shape(client: TestClient) -> None:
    admin = bearer(ADMIN_KEY)
    missing = client.delete("/api/v1/admin/tokens/tk_unknown", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    no_node = client.post("/api/v1/admin/tokens", json={"role": "node"}, headers=admin)
    assert no_node.status_code == 422
    assert "node id" in no_node.json()["error"]["message"]
    ingest = client.post("/api/v1/admin/tokens", json={"role": "ingest"}, headers=admin)
    assert ingest.status_code == 422
    assert ingest.json()["error"]["code"] == "invalid_request"


def test_an_admin_made_admin_key_works_and_a_read_token_cannot_administer(
    client: TestClient,
) -> None:
    made = client.post("/api/v1/admin/tokens", json={"role": "admin"}, headers=bearer(ADMIN_KEY))
    second_admin = made.json()["token"]
    assert client.get("/api/v1/admin/tokens", headers=bearer(second_admin)).status_code == 200
    read = client.post("/api/v1/admin/tokens", json={"role": "read"}, headers=bearer(second_admin))
    response = client.get("/api/v1/admin/tokens", headers=bearer(read.json()["token"]))
    assert response.status_code == 403


def test_the_token_models_are_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"EnrollIn", "IssuedOut", "CreateTokenIn", "CreatedOut", "TokenOut", "TokenList"} <= set(
        schemas
    )
    assert "token" not in schemas["TokenOut"]["properties"]
    enroll = document["paths"]["/api/v1/enroll"]["post"]
    assert {"201", "401", "403", "409"} <= set(enroll["responses"])
