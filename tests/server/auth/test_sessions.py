"""Web login sessions over HTTP: a token entered once in /login becomes a signed, HttpOnly
cookie that reads the API; admin actions by cookie need the CSRF token; logout, expiry and a
revoked credential end it; ``next`` stays on this server; a page without a session goes to
/login while the API keeps its JSON 401.

Cookies are sent by hand (the client's jar is emptied after each login), so each test says
exactly which cookie a request carries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.auth import cookie
from server.auth.cookie import COOKIE_NAME, Session
from server.auth.credentials import CredentialStore
from server.auth.principal import Principal, Role
from server.auth.secrets import sha256_hex
from server.auth.session import SessionService
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.writer import Writer
from tests.factories import NODE_ID
from tests.server.auth.conftest import bearer, services_of
from tests.server.conftest import TOKEN, FakeClock

READ_TOKEN = "dcm_session_read_0123456789abcdef"
ADMIN_TOKEN = "dcm_session_admin_0123456789abcdef"
LIFETIME = 600.0
RELOAD = "/api/v1/rules/reload"  # a cheap admin POST
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def make_client(make_app: Callable[..., FastAPI]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(**overrides: object) -> TestClient:
        overrides.setdefault("open_reads", False)
        app = make_app(
            read_token_sha256=[sha256_hex(READ_TOKEN)],
            admin_key_sha256=[sha256_hex(ADMIN_TOKEN)],
            session_seconds=LIFETIME,
            **overrides,
        )
        client = TestClient(app, follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def _login(client: TestClient, token: str, next_path: str | None = None) -> tuple[str, str]:
    """Returns: the session cookie's value and the redirect's target, after a good login."""
    form = {"token": token} if next_path is None else {"token": token, "next": next_path}
    response = client.post("/login", data=form)
    assert response.status_code == 303, response.text
    value = response.cookies[COOKIE_NAME]
    client.cookies.clear()
    return value, response.headers["location"]


def _with(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={value}"}


def _csrf_of_page(client: TestClient, value: str) -> str:
    """The CSRF token as a page carries it (``<meta name="csrf-token">``)."""
    page = client.get("/login", headers=_with(value))
    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', page.text)
    assert match is not None and match.group(1), page.text[:500]
    return match.group(1)


def test_the_login_page_is_the_form(client: TestClient) -> None:
    page = client.get("/login", params={"next": "/nodes/gpu01?range=1h"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<body data-page="login">' in page.text
    assert '<form method="post" action="/login">' in page.text
    assert re.search(r'<input[^>]*name="token"[^>]*type="password"', page.text)
    assert 'autocomplete="current-password"' in page.text
    assert '<input type="hidden" name="next" value="/nodes/gpu01?range=1h">' in page.text
    assert 'id="range"' not in page.text, "no time-range picker on the login page"


def test_a_wrong_token_gets_401_and_the_form_again_with_why(client: TestClient) -> None:
    refused = client.post("/login", data={"token": "dcm_not_a_token_0123456789"})
    assert refused.status_code == 401
    assert '<body data-page="login">' in refused.text
    assert "unknown or revoked token" in refused.text
    assert COOKIE_NAME not in refused.headers.get("set-cookie", "")
    empty = client.post("/login", data={"token": "  "})
    assert empty.status_code == 401 and "enter a read or admin token" in empty.text


def test_machine_tokens_cannot_log_in(client: TestClient) -> None:
    node = services_of(client).credentials.create(Role.NODE, node_id=NODE_ID).token
    refused = client.post("/login", data={"token": node})
    assert refused.status_code == 401
    assert "a node token cannot log in" in refused.text
    ingest = client.post("/login", data={"token": TOKEN})
    assert ingest.status_code == 401 and "an ingest token cannot log in" in ingest.text
    assert COOKIE_NAME not in ingest.headers.get("set-cookie", "")


def test_a_read_login_sets_an_httponly_strict_cookie_that_reads_the_api(
    client: TestClient,
) -> None:
    assert client.get("/api/v1/nodes").status_code == 401
    response = client.post("/login", data={"token": READ_TOKEN, "next": "/nodes/gpu01"})
    assert response.status_code == 303
    assert response.headers["location"] == "/nodes/gpu01"
    morsel = SimpleCookie(response.headers["set-cookie"])[COOKIE_NAME]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == "/"
    assert morsel["max-age"] == str(int(LIFETIME))
    assert not morsel["secure"], "plain http here; Secure is set over https"
    assert READ_TOKEN not in morsel.value
    client.cookies.clear()

    nodes = client.get("/api/v1/nodes", headers=_with(morsel.value))
    assert nodes.status_code == 200 and nodes.json() == {"nodes": []}
    page = client.get("/login", headers=_with(morsel.value))
    assert 'id="logout"' in page.text and 'id="logged-in"' in page.text


def test_a_read_session_may_not_call_admin_endpoints(client: TestClient) -> None:
    value, _ = _login(client, READ_TOKEN)
    csrf = _csrf_of_page(client, value)
    refused = client.post(RELOAD, headers={**_with(value), "X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    listing = client.get("/api/v1/admin/tokens", headers=_with(value))
    assert listing.status_code == 403


def test_an_admin_session_needs_the_csrf_token_on_unsafe_methods(client: TestClient) -> None:
    value, _ = _login(client, ADMIN_TOKEN)
    assert client.get("/api/v1/admin/tokens", headers=_with(value)).status_code == 200
    missing = client.post(RELOAD, headers=_with(value))
    assert missing.status_code == 403
    error = missing.json()["error"]
    assert error["code"] == "csrf" and "X-CSRF-Token" in error["message"]
    csrf = _csrf_of_page(client, value)
    wrong = client.post(RELOAD, headers={**_with(value), "X-CSRF-Token": csrf[:-2] + "xx"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf"
    done = client.post(RELOAD, headers={**_with(value), "X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    # a bearer token is not asked for one, cookie or not
    assert client.post(RELOAD, headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.post(RELOAD, headers={**bearer(ADMIN_TOKEN), **_with(value)}).status_code == 200


def test_the_csrf_token_of_one_session_does_not_pass_for_another(client: TestClient) -> None:
    first, _ = _login(client, ADMIN_TOKEN)
    second, _ = _login(client, ADMIN_TOKEN)
    csrf = _csrf_of_page(client, first)
    refused = client.post(RELOAD, headers={**_with(second), "X-CSRF-Token": csrf})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"


def test_logout_ends_the_session_and_its_replayed_cookie(client: TestClient) -> None:
    value, _ = _login(client, READ_TOKEN)
    other, _ = _login(client, READ_TOKEN)  # the same token in another browser
    csrf = _csrf_of_page(client, value)

    forged = client.post("/logout", data={"csrf_token": "nope"}, headers=_with(value))
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf"
    assert client.get("/api/v1/nodes", headers=_with(value)).status_code == 200

    out = client.post("/logout", data={"csrf_token": csrf}, headers=_with(value))
    assert out.status_code == 303 and out.headers["location"] == "/login"
    cleared = SimpleCookie(out.headers["set-cookie"])[COOKIE_NAME]
    assert cleared.value == "" and cleared["max-age"] == "0"
    replayed = client.get("/api/v1/nodes", headers=_with(value))
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/v1/nodes", headers=_with(other)).status_code == 200, (
        "logging out one browser leaves the token's other sessions alone"
    )


def test_logout_without_a_session_only_clears_the_cookie(client: TestClient) -> None:
    out = client.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert SimpleCookie(out.headers["set-cookie"])[COOKIE_NAME]["max-age"] == "0"


def test_a_session_expires_after_session_seconds(client: TestClient, clock: FakeClock) -> None:
    value, _ = _login(client, READ_TOKEN)
    clock.now += LIFETIME - 1
    assert client.get("/api/v1/nodes", headers=_with(value)).status_code == 200
    clock.now += 1
    assert client.get("/api/v1/nodes", headers=_with(value)).status_code == 401


def test_a_revoked_credential_ends_its_sessions(client: TestClient) -> None:
    created = client.post(
        "/api/v1/admin/tokens", json={"role": "read"}, headers=bearer(ADMIN_TOKEN)
    )
    assert created.status_code == 201, created.text
    value, _ = _login(client, created.json()["token"])
    assert client.get("/api/v1/nodes", headers=_with(value)).status_code == 200
    token_id = created.json()["token_id"]
    revoked = client.delete(f"/api/v1/admin/tokens/{token_id}", headers=bearer(ADMIN_TOKEN))
    assert revoked.status_code == 200, revoked.text
    assert client.get("/api/v1/nodes", headers=_with(value)).status_code == 401


def test_a_tampered_or_forged_cookie_is_no_session(client: TestClient, clock: FakeClock) -> None:
    value, _ = _login(client, READ_TOKEN)
    body, _, signature = value.rpartition(".")
    version, _, payload = body.partition(".")
    flipped = f"{version}.{payload[:5]}{'A' if payload[5] != 'A' else 'B'}{payload[6:]}.{signature}"
    assert client.get("/api/v1/nodes", headers=_with(flipped)).status_code == 401
    # an admin session signed with a key of the forger's own
    forged = cookie.encode(
        b"\x00" * 32,
        Session("forged", f"config:{sha256_hex(ADMIN_TOKEN)[:12]}", Role.ADMIN, clock(), 1e12),
    )
    assert client.get("/api/v1/admin/tokens", headers=_with(forged)).status_code == 401
    assert client.get("/api/v1/nodes", headers=_with("garbage")).status_code == 401


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("//evil.example", "/"),
        ("https://x", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("evil", "/"),
        ("", "/"),
        ("/login?next=%2F", "/"),
        ("/logout", "/"),
        ("/nodes/gpu01?range=1h", "/nodes/gpu01?range=1h"),
    ],
)
def test_next_only_goes_to_a_path_of_this_server(
    client: TestClient, asked: str, lands: str
) -> None:
    assert _login(client, READ_TOKEN, asked)[1] == lands


def test_a_page_without_a_session_goes_to_login(client: TestClient) -> None:
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = client.get("/", headers=html)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F"
    with_query = client.get("/", params={"range": "6h"}, headers=html)
    assert with_query.headers["location"] == "/login?next=%2F%3Frange%3D6h"
    # not a browser asking for a page: the JSON 401 as before
    for path, headers in [
        ("/api/v1/nodes", {}),
        ("/api/v1/nodes", html),
        ("/metrics", html),
        ("/", {"Accept": "application/json"}),
    ]:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 401, (path, headers)
        assert answer.json()["error"]["code"] == "unauthenticated"


def test_open_reads_still_read_without_a_session(make_client: Callable[..., TestClient]) -> None:
    client = make_client(open_reads=True)
    assert client.get("/api/v1/nodes").status_code == 200
    value, _ = _login(client, ADMIN_TOKEN)
    assert client.post(RELOAD).status_code == 401, "open reads open no admin action"
    refused = client.post(RELOAD, headers=_with(value))
    assert refused.json()["error"]["code"] == "csrf"
    csrf = _csrf_of_page(client, value)
    assert client.post(RELOAD, headers={**_with(value), "X-CSRF-Token": csrf}).status_code == 200


def test_a_form_from_another_site_is_refused(client: TestClient) -> None:
    cross = {"Sec-Fetch-Site": "cross-site"}
    refused = client.post("/login", data={"token": READ_TOKEN}, headers=cross)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    assert COOKIE_NAME not in refused.headers.get("set-cookie", "")
    same = client.post(
        "/login", data={"token": READ_TOKEN}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same.status_code == 303


def test_the_login_form_must_be_url_encoded(client: TestClient) -> None:
    as_json = client.post("/login", json={"token": READ_TOKEN})
    assert as_json.status_code == 415
    assert as_json.json()["error"]["code"] == "unsupported_media_type"
    huge = client.post("/login", content=b"token=" + b"x" * 10_000, headers=FORM)
    assert huge.status_code == 413
    not_utf8 = client.post("/login", content=b"token=\xff\xfe", headers=FORM)
    assert not_utf8.status_code == 400 and not_utf8.json()["error"]["code"] == "invalid_form"


def test_replicas_on_one_database_accept_each_others_sessions(
    make_client: Callable[..., TestClient],
) -> None:
    """The signing key is in the database: a second server on it (or this one restarted)
    knows the first one's cookies."""
    first, second = make_client(), make_client()
    value, _ = _login(first, READ_TOKEN)
    assert second.get("/api/v1/nodes", headers=_with(value)).status_code == 200


@pytest.fixture
def two_replicas(
    database_url: str, clock: FakeClock
) -> Iterator[tuple[SessionService, SessionService, CredentialStore]]:
    """Two session services on one database (each with its own writer and credential store,
    as two server processes have), trusting nothing cached (``cache_seconds`` 0)."""
    engine = make_engine(database_url)
    upgrade(engine)
    writers = [Writer(engine), Writer(engine)]
    stores = [CredentialStore(engine, writer, clock) for writer in writers]
    services = [
        SessionService(engine, writer, store, {}, LIFETIME, 0.0, clock)
        for writer, store in zip(writers, stores, strict=True)
    ]
    try:
        yield services[0], services[1], stores[0]
    finally:
        for writer in writers:
            writer.close()
        engine.dispose()


def test_replicas_share_the_key_and_see_each_others_logouts_and_revocations(
    two_replicas: tuple[SessionService, SessionService, CredentialStore],
) -> None:
    first, second, store = two_replicas
    issued = store.create(Role.ADMIN)
    session, value = first.start(issued.credential.principal())
    assert second.check(value) == session
    assert second.csrf_matches(session, first.csrf_token(session))

    other, other_value = second.start(issued.credential.principal())
    second.end(session)
    second.end(session)  # twice: a no-op
    assert first.check(value) is None and second.check(value) is None
    assert first.check(other_value) == other

    store.revoke(issued.credential.token_id)
    assert first.check(other_value) is None and second.check(other_value) is None
    with pytest.raises(ValueError, match="node token cannot log in"):
        first.start(Principal(Role.NODE, "tk_node", NODE_ID))
