"""The credential store on SQLite and PostgreSQL: secrets only hashed, create, list, revoke,
expiry, rotation (old token valid until the new one is first used) and enrollment."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.auth.credentials import (
    ROTATION_CONFIRM_SECONDS,
    AlreadyEnrolledError,
    CredentialNotFoundError,
    CredentialStore,
    InvalidCredentialError,
)
from server.auth.principal import Principal, Role
from server.auth.secrets import sha256_hex
from server.auth.verifier import DatabaseAuthenticator
from server.storage.tables import CredentialRow
from tests.server.conftest import START, FakeClock

NODE_A = "0123456789abcdef0123456789abcdef"
NODE_B = "fedcba9876543210fedcba9876543210"


def _stored_rows(store: CredentialStore) -> list[dict[str, object]]:
    with store._engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(CredentialRow.__table__))]


def test_create_returns_the_secret_once_and_stores_only_its_hash(store: CredentialStore) -> None:
    issued = store.create(Role.READ, name="grafana", created_by="cli")
    credential = issued.credential
    assert issued.token.startswith("dcm_")
    assert credential.token_id.startswith("tk_") and len(credential.token_id) == 13
    assert (credential.role, credential.name, credential.created_at) == (
        Role.READ,
        "grafana",
        START,
    )
    assert credential.state(START) == "active"
    rows = _stored_rows(store)
    assert len(rows) == 1
    assert rows[0]["sha256"] == sha256_hex(issued.token)
    assert all(issued.token not in str(value) for value in rows[0].values())
    found = store.lookup(sha256_hex(issued.token))
    assert found is not None and found.credential == credential and not found.pending
    assert store.lookup(sha256_hex("dcm_not_issued")) is None


@pytest.mark.parametrize(
    ("role", "node_id", "ttl", "name", "message"),
    [
        pytest.param(Role.NODE, None, None, "", "needs the node id", id="node-without-node-id"),
        pytest.param(Role.NODE, "ABC", None, "", "32 lowercase hex", id="bad-node-id"),
        pytest.param(Role.READ, NODE_A, None, "", "only node tokens", id="read-with-node-id"),
        pytest.param(Role.ADMIN, None, 0.0, "", "positive", id="zero-ttl"),
        pytest.param(Role.INGEST, None, None, "", "cannot be issued", id="ingest-role"),
        pytest.param(Role.ANONYMOUS, None, None, "", "cannot be issued", id="anonymous-role"),
        pytest.param(Role.READ, None, None, "x" * 300, "longer than", id="long-name"),
    ],
)
def test_invalid_credentials_are_refused(
    store: CredentialStore,
    role: Role,
    node_id: str | None,
    ttl: float | None,
    name: str,
    message: str,
) -> None:
    with pytest.raises(InvalidCredentialError, match=message):
        store.create(role, node_id=node_id, ttl_seconds=ttl, name=name)
    assert _stored_rows(store) == []


def test_list_shows_active_tokens_unless_asked_for_all(
    store: CredentialStore, clock: FakeClock
) -> None:
    node = store.create(Role.NODE, node_id=NODE_A).credential
    clock.now += 1
    short = store.create(Role.READ, ttl_seconds=60).credential
    clock.now += 1
    revoked = store.create(Role.ADMIN).credential
    store.revoke(revoked.token_id)
    clock.now += 100  # ``short`` has expired

    assert [c.token_id for c in store.list()] == [node.token_id]
    everything = store.list(include_inactive=True)
    assert [c.token_id for c in everything] == [node.token_id, short.token_id, revoked.token_id]
    assert [c.state(clock.now) for c in everything] == ["active", "expired", "revoked"]
    assert [c.token_id for c in store.list(Role.READ, include_inactive=True)] == [short.token_id]
    assert store.list(Role.BOOTSTRAP, include_inactive=True) == []


def test_revoke_is_immediate_idempotent_and_names_unknown_ids(
    store: CredentialStore, clock: FakeClock
) -> None:
    token_id = store.create(Role.ADMIN).credential.token_id
    revoked = store.revoke(token_id)
    assert (revoked.revoked_at, revoked.state(clock.now)) == (START, "revoked")
    clock.now += 10
    assert store.revoke(token_id).revoked_at == START  # revoking again changes nothing
    with pytest.raises(CredentialNotFoundError, match="tk_nope"):
        store.revoke("tk_nope")


def test_expired_and_revoked_tokens_do_not_authenticate(
    store: CredentialStore, clock: FakeClock
) -> None:
    authenticator = DatabaseAuthenticator(store, 60.0, clock)
    expiring = store.create(Role.READ, ttl_seconds=30)
    revoked = store.create(Role.ADMIN)
    assert authenticator.authenticate(expiring.token) == Principal(
        Role.READ, expiring.credential.token_id
    )
    assert authenticator.authenticate(revoked.token) is not None
    store.revoke(revoked.credential.token_id)
    assert authenticator.authenticate(revoked.token) is None  # the cache was invalidated
    clock.now += 30
    assert authenticator.authenticate(expiring.token) is None  # expiry is checked per request
    assert authenticator.authenticate("dcm_never_issued") is None


def test_a_revocation_made_elsewhere_is_seen_after_the_cache_time(
    store: CredentialStore, clock: FakeClock
) -> None:
    """Another process (the CLI, a replica) revoking: this server notices within the cache."""
    monotonic = FakeClock(0.0)
    authenticator = DatabaseAuthenticator(store, 5.0, clock, monotonic=monotonic)
    issued = store.create(Role.READ)
    assert authenticator.authenticate(issued.token) is not None
    elsewhere = CredentialStore(store._engine, store._writer, clock)
    elsewhere.revoke(issued.credential.token_id)
    monotonic.now += 4.9
    assert authenticator.authenticate(issued.token) is not None  # still cached
    monotonic.now += 0.1
    assert authenticator.authenticate(issued.token) is None


def test_rotation_keeps_the_old_token_until_the_new_one_is_used(
    store: CredentialStore, clock: FakeClock
) -> None:
    authenticator = DatabaseAuthenticator(store, 60.0, clock)
    old = store.create(Role.NODE, node_id=NODE_A, name="gpu01")
    assert authenticator.authenticate(old.token) is not None
    clock.now += 10
    new = store.rotate(old.credential.token_id)
    credential = new.credential
    assert (credential.role, credential.node_id, credential.name) == (Role.NODE, NODE_A, "gpu01")
    assert credential.replaces == old.credential.token_id
    assert credential.expires_at == clock.now + ROTATION_CONFIRM_SECONDS
    found = store.lookup(sha256_hex(new.token))
    assert found is not None and found.pending

    clock.now += 60
    assert authenticator.authenticate(old.token) is not None  # not confirmed yet
    principal = authenticator.authenticate(new.token)  # first use confirms
    assert principal == Principal(Role.NODE, credential.token_id, NODE_A)
    assert authenticator.authenticate(old.token) is None
    confirmed = store.get(credential.token_id)
    assert confirmed is not None and confirmed.expires_at is None  # the old one's lifetime
    replaced = store.get(old.credential.token_id)
    assert replaced is not None and replaced.revoked_at == clock.now
    clock.now += 10 * ROTATION_CONFIRM_SECONDS
    assert authenticator.authenticate(new.token) == principal


def test_an_unconfirmed_rotation_expires_and_the_old_token_still_works(
    store: CredentialStore, clock: FakeClock
) -> None:
    """The rotation's answer was lost: after an hour the new token is gone, the old one works."""
    authenticator = DatabaseAuthenticator(store, 60.0, clock)
    old = store.create(Role.NODE, node_id=NODE_A)
    new = store.rotate(old.credential.token_id)
    clock.now += ROTATION_CONFIRM_SECONDS
    assert authenticator.authenticate(new.token) is None
    assert authenticator.authenticate(old.token) is not None
    assert store.get(old.credential.token_id).revoked_at is None  # type: ignore[union-attr]


def test_rotating_again_supersedes_an_unconfirmed_rotation(store: CredentialStore) -> None:
    old = store.create(Role.NODE, node_id=NODE_A)
    first = store.rotate(old.credential.token_id)
    second = store.rotate(old.credential.token_id)
    assert store.get(first.credential.token_id).revoked_at is not None  # type: ignore[union-attr]
    assert {c.token_id for c in store.list(Role.NODE)} == {
        old.credential.token_id,
        second.credential.token_id,
    }


def test_revoking_a_token_revokes_its_unconfirmed_replacement(store: CredentialStore) -> None:
    authenticator = DatabaseAuthenticator(store, 60.0, store._clock)
    old = store.create(Role.NODE, node_id=NODE_A)
    new = store.rotate(old.credential.token_id)
    store.revoke(old.credential.token_id)
    assert authenticator.authenticate(new.token) is None
    assert authenticator.authenticate(old.token) is None


def test_rotation_renews_a_limited_lifetime(store: CredentialStore, clock: FakeClock) -> None:
    authenticator = DatabaseAuthenticator(store, 60.0, clock)
    old = store.create(Role.NODE, node_id=NODE_A, ttl_seconds=86400)
    clock.now += 80000
    new = store.rotate(old.credential.token_id)
    assert new.credential.expires_at == clock.now + ROTATION_CONFIRM_SECONDS
    assert authenticator.authenticate(new.token) is not None
    confirmed = store.get(new.credential.token_id)
    assert confirmed is not None and confirmed.expires_at == clock.now + 86400


def test_a_revoked_or_expired_token_cannot_rotate(store: CredentialStore, clock: FakeClock) -> None:
    revoked = store.create(Role.NODE, node_id=NODE_A).credential.token_id
    store.revoke(revoked)
    expired = store.create(Role.NODE, node_id=NODE_B, ttl_seconds=5).credential.token_id
    clock.now += 5
    for token_id in (revoked, expired, "tk_unknown"):
        with pytest.raises(CredentialNotFoundError):
            store.rotate(token_id)


def test_enroll_gives_one_active_token_per_node(store: CredentialStore, clock: FakeClock) -> None:
    issued = store.enroll(NODE_A, "gpu01", "gpu01.example", created_by="tk_bootstrap")
    credential = issued.credential
    assert (credential.role, credential.node_id) == (Role.NODE, NODE_A)
    assert (credential.name, credential.created_by) == (
        "enrolled gpu01 (gpu01.example)",
        "tk_bootstrap",
    )
    assert credential.expires_at is None
    with pytest.raises(AlreadyEnrolledError, match=f"dcmon token revoke {credential.token_id}"):
        store.enroll(NODE_A, "gpu01", "gpu01", created_by="tk_bootstrap")
    store.enroll(NODE_B, "gpu02", "gpu02", created_by="tk_bootstrap")  # other nodes are free

    store.revoke(credential.token_id)  # the operator's decision lets the node enroll again
    again = store.enroll(NODE_A, "gpu01", "gpu01", created_by="tk_bootstrap").credential
    assert again.name == "enrolled gpu01"
    with pytest.raises(InvalidCredentialError):
        store.enroll("not-hex", "x", "x", created_by="tk_bootstrap")


def test_an_expired_node_token_does_not_block_enrollment(
    store: CredentialStore, clock: FakeClock
) -> None:
    store.create(Role.NODE, node_id=NODE_A, ttl_seconds=60)
    with pytest.raises(AlreadyEnrolledError):
        store.enroll(NODE_A, "gpu01", "gpu01", created_by="tk_bootstrap")
    clock.now += 60
    assert store.enroll(NODE_A, "gpu01", "gpu01", created_by="tk_bootstrap").token
