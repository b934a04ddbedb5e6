"""Every route carries exactly one access rule, and each rule holds over HTTP.

The routes are discovered from the application, so a new route without a rule, or with a rule
that does not behave, fails here without anyone adding a case. Reads are tested with
``open_reads`` off (the default).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from agent.wire.codec import encode_batch
from server.app import create_app
from server.auth import ADMIN, ENROLL, INGEST, NODE, PUBLIC, READ, RULES, Access
from server.auth.credentials import ISSUABLE_ROLES, CredentialStore
from server.auth.principal import Role
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from tests.factories import NODE_ID, identity, make_batch
from tests.server.auth.conftest import bearer, services_of
from tests.server.conftest import START, TOKEN, FakeClock

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before 0.165 lists every APIRoute in app.routes
    iter_route_contexts = None

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Prometheus' query API takes its reads as GET or as a form POST (long queries do not fit a URL).
PROMETHEUS = "/prometheus/api/v1"
READ_POSTS = {f"{PROMETHEUS}/{name}" for name in ("query", "query_range", "series", "labels")}
READ_POSTS.add(f"{PROMETHEUS}/query_exemplars")
# Any other path under the prefix, with any method: it only answers Prometheus' 404 (or 405 for
# a known path asked with the wrong method) and changes nothing, so it takes the read rule like
# the rest of the query API (an unauthenticated caller learns nothing about which paths exist).
PROMETHEUS_OTHER = f"{PROMETHEUS}/{{rest:path}}"
OTHER_NODE = "fedcba9876543210fedcba9876543210"
PUBLIC_PATHS = {"/healthz", "/readyz"}
# The web login's form and its logout are public too: they take a token or end a session and
# hold no data; their answers (401 for a wrong token, CSRF) are tested in test_sessions.py.
LOGIN_PATHS = {"/login", "/logout"}
# The OpenAPI schema and its two viewers are open on purpose: they describe the API (paths,
# parameters, models), which is public in the source anyway, and hold no data; Grafana users
# and API clients read them before they have a token.
SCHEMA_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# The web pages' scripts, styles and vendored libraries: the same files for everyone, no data.
STATIC_PATHS = {"/static"}
README = Path(__file__).resolve().parents[3] / "README.md"
NODE_SCOPED = {"/api/v1/ingest", "/api/v1/ingest/bulk"}
BULK_MEDIA_TYPE = "application/vnd.dcmon.bulk"


def _rules_of(dependant: Dependant) -> list[Access]:
    """Every access rule in a route's dependency tree (identity with the RULES constants)."""
    found: list[Access] = []
    for dependency in dependant.dependencies:
        if any(dependency.call is rule for rule in RULES):
            found.append(dependency.call)  # type: ignore[arg-type]
        found += _rules_of(dependency)
    return found


@dataclass(frozen=True)
class Route:
    path: str
    methods: frozenset[str]
    dependant: Dependant


def _api_routes(app: FastAPI) -> list[Route]:
    """The application's API routes, flattened.

    FastAPI 0.165 keeps included routers as lazy wrappers in ``app.routes`` and resolves them
    with ``iter_route_contexts``; older versions copy each APIRoute into ``app.routes``.
    """
    if iter_route_contexts is None:
        return [
            Route(route.path, frozenset(route.methods), route.dependant)
            for route in app.routes
            if isinstance(route, APIRoute)
        ]
    return [
        Route(context.path, frozenset(context.methods), context.dependant)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Route, Access]]:
    """Each API route of the application with its one rule."""
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("routes"), open_reads=False)
    app = create_app(settings)
    found = []
    for route in _api_routes(app):
        rules = _rules_of(route.dependant)
        assert len(rules) == 1, (
            f"{sorted(route.methods)} {route.path} has {len(rules)} access rules "
            f"({[rule.name for rule in rules]}); add exactly one from server/auth/access.py"
        )
        found.append((route, rules[0]))
    assert len(found) >= 15, "the route discovery found too few routes"
    app.state.services.store.engine.dispose()
    return found


def test_every_route_has_exactly_one_rule(routes: list[tuple[Route, Access]]) -> None:
    """(The fixture asserts it; here the rules must also fit what the routes do.)"""
    by_path = {(route.path, method): rule for route, rule in routes for method in route.methods}
    public = {path for (path, _), rule in by_path.items() if rule is PUBLIC}
    # the schema viewers are routes with the public rule; /openapi.json is FastAPI's own
    assert public == PUBLIC_PATHS | LOGIN_PATHS | (SCHEMA_PATHS - {"/openapi.json"})
    for (path, method), rule in by_path.items():
        if method in WRITE_METHODS and path not in READ_POSTS | {PROMETHEUS_OTHER} | LOGIN_PATHS:
            assert rule not in (READ, PUBLIC), f"{method} {path} writes with the {rule.name} rule"
        if path.startswith("/api/v1/admin/"):
            assert rule is ADMIN, f"{method} {path} is an admin route with the {rule.name} rule"
    assert by_path[("/api/v1/enroll", "POST")] is ENROLL
    assert by_path[("/api/v1/token/rotate", "POST")] is NODE
    assert by_path[("/api/v1/ingest", "POST")] is INGEST
    assert all(by_path[(path, "POST")] is READ for path in READ_POSTS)
    other = {method: rule for (path, method), rule in by_path.items() if path == PROMETHEUS_OTHER}
    assert set(other) >= WRITE_METHODS and set(other.values()) == {READ}
    assert by_path[("/metrics", "GET")] is READ
    assert by_path[("/", "GET")] is READ


def test_what_answers_without_a_token_is_exactly_health_and_the_schema(
    closed: TestClient,
) -> None:
    """Every route the application serves, API or not, is asked without a token."""
    routes = closed.app.routes  # type: ignore[attr-defined]
    contexts = routes if iter_route_contexts is None else iter_route_contexts(routes)
    served = sorted(
        (method, context.path)
        for context in contexts
        if context.path is not None  # a mount has no methods of its own
        for method in (context.methods or {"GET"}) & {"GET", "POST", "PUT", "PATCH", "DELETE"}
    )
    assert ("GET", "/openapi.json") in served and ("GET", "/api/v1/nodes") in served
    open_paths = {
        path for method, path in served if _call(closed, method, path, None).status_code != 401
    }
    assert open_paths == PUBLIC_PATHS | SCHEMA_PATHS | LOGIN_PATHS | STATIC_PATHS
    schema = closed.get("/openapi.json").json()
    assert set(schema) <= {"openapi", "info", "paths", "components", "tags"}, "schema only"


def test_the_readme_names_every_route_open_without_a_token() -> None:
    text = " ".join(README.read_text().split())
    start = text.index("**Security.**")
    security = text[start : text.index("| role |", start)]
    named = PUBLIC_PATHS | LOGIN_PATHS | STATIC_PATHS | (SCHEMA_PATHS - {"/docs/oauth2-redirect"})
    for path in sorted(named):
        assert f"`{path}`" in security, f"the README's security paragraph omits {path}"


def _cases(routes: list[tuple[Route, Access]]) -> list[tuple[str, str, Access]]:
    return sorted((method, route.path, rule) for route, rule in routes for method in route.methods)


def _concrete(path: str) -> str:
    """The route's path with placeholder values for its parameters."""
    return re.sub(r"\{[^}]+\}", "x", path)


def _gzip_batch(node_id: str = NODE_ID) -> bytes:
    return encode_batch(make_batch(timestamp=START, node=identity(node_id=node_id)))


def _request_kwargs(method: str, path: str) -> dict[str, Any]:
    """A body good enough to get past parsing, for the routes that take one."""
    if path == "/api/v1/ingest":
        return {
            "content": _gzip_batch(),
            "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        }
    if path == "/api/v1/ingest/bulk":
        record = _gzip_batch()
        return {
            "content": struct.pack(">I", len(record)) + record,
            "headers": {"Content-Type": BULK_MEDIA_TYPE},
        }
    if path == "/api/v1/enroll":
        return {"json": {"node_id": OTHER_NODE, "name": "gpu02", "hostname": "gpu02"}}
    if path == "/api/v1/admin/tokens" and method == "POST":
        return {"json": {"role": "read"}}
    if path in ("/api/v1/history", "/api/v1/latest"):
        return {"params": {"metric": "DCGM_FI_DEV_GPU_UTIL"}}
    if path.startswith(PROMETHEUS):
        params = {"query": "up", "start": "0", "end": "60", "step": "15", "match[]": "up"}
        return {"params": params}
    return {}


def test_other_prometheus_paths_only_answer_not_found_or_not_allowed(
    routes: list[tuple[Route, Access]], closed: TestClient
) -> None:
    """Why the catch-all may carry the read rule for every method: it writes nothing."""
    token = _issue(services_of(closed).credentials, Role.READ)
    methods = next(route.methods for route, _ in routes if route.path == PROMETHEUS_OTHER)
    for method in sorted(methods):
        unknown = _call(closed, method, f"{PROMETHEUS}/admin/tsdb/delete_series", token)
        assert unknown.status_code == 404, method
        assert unknown.json()["errorType"] == "not_found", method
    wrong_method = _call(closed, "DELETE", f"{PROMETHEUS}/query", token)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == "error"


def _call(client: TestClient, method: str, path: str, token: str | None) -> Any:
    kwargs = _request_kwargs(method, path)
    headers = {**kwargs.pop("headers", {}), **(bearer(token) if token else {})}
    return client.request(method, _concrete(path), headers=headers, **kwargs)


def _issue(store: CredentialStore, role: Role, node_id: str = NODE_ID) -> str:
    return store.create(role, node_id=node_id if role is Role.NODE else None).token


def _right_role(rule: Access) -> Role:
    return next(role for role in ISSUABLE_ROLES if role in rule.roles)


def _wrong_role(rule: Access) -> Role:
    return next(role for role in ISSUABLE_ROLES if role not in rule.roles)


def test_rules_hold_for_every_route(
    routes: list[tuple[Route, Access]], closed: TestClient, clock: FakeClock
) -> None:
    store = services_of(closed).credentials
    checked = 0
    for method, path, rule in _cases(routes):
        where = f"{method} {path} ({rule.name})"
        if path in LOGIN_PATHS:
            continue
        if rule is PUBLIC:
            assert _call(closed, method, path, None).status_code == 200, where
            continue
        missing = _call(closed, method, path, None)
        assert missing.status_code == 401, where
        assert missing.json()["error"]["code"] == "unauthenticated", where
        assert missing.headers["WWW-Authenticate"].startswith("Bearer"), where
        assert _call(closed, method, path, "dcm_wrong_token").status_code == 401, where

        right = _right_role(rule)
        node_id = NODE_ID if right is Role.NODE else None
        revoked = store.create(right, node_id=node_id)
        store.revoke(revoked.credential.token_id)
        assert _call(closed, method, path, revoked.token).status_code == 401, where
        expired = store.create(right, node_id=node_id, ttl_seconds=1)
        clock.now += 1
        assert _call(closed, method, path, expired.token).status_code == 401, where

        wrong = _call(closed, method, path, _issue(store, _wrong_role(rule)))
        assert wrong.status_code == 403, where
        assert wrong.json()["error"]["code"] == "forbidden", where
        checked += 1
    assert checked >= 15


def test_reads_need_a_read_token_when_reads_are_closed(
    routes: list[tuple[Route, Access]], closed: TestClient
) -> None:
    store = services_of(closed).credentials
    read_token = _issue(store, Role.READ)
    admin_token = _issue(store, Role.ADMIN)
    reads = [(method, path) for method, path, rule in _cases(routes) if rule is READ]
    assert ("GET", "/api/v1/nodes") in reads and ("GET", "/metrics") in reads
    for method, path in reads:
        assert _call(closed, method, path, None).status_code == 401, path
        for token in (read_token, admin_token):
            assert _call(closed, method, path, token).status_code in (200, 404), path


def test_open_reads_admit_anonymous_readers(
    routes: list[tuple[Route, Access]], make_app: Callable[..., FastAPI]
) -> None:
    with TestClient(make_app(open_reads=True)) as client:
        for method, path, rule in _cases(routes):
            if path in LOGIN_PATHS:
                continue
            status = _call(client, method, path, None).status_code
            if rule in (READ, PUBLIC):
                assert status in (200, 404), f"{method} {path}"
            else:
                assert status == 401, f"{method} {path}: open reads open no writes"


def test_node_tokens_write_only_their_own_node(
    routes: list[tuple[Route, Access]], closed: TestClient
) -> None:
    """A node's token sending another node's batch: 403 node_mismatch (in bulk, per record:
    status retry with that status and code, so the agent keeps the data)."""
    store = services_of(closed).credentials
    other_token = _issue(store, Role.NODE, node_id=OTHER_NODE)
    own_token = _issue(store, Role.NODE, node_id=NODE_ID)
    scoped = [(m, p) for m, p, _ in _cases(routes) if p in NODE_SCOPED and m in WRITE_METHODS]
    assert ("POST", "/api/v1/ingest") in scoped
    for method, path in scoped:
        response = _call(closed, method, path, other_token)
        if path.endswith("/bulk"):
            assert response.status_code == 200, response.text
            (result,) = response.json()["results"]
            assert (result["status"], result["http_status"], result["code"]) == (
                "retry",
                403,
                "node_mismatch",
            )
        else:
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "node_mismatch"
        assert _call(closed, method, path, own_token).status_code == 200, path


def test_config_file_tokens_authenticate_by_role(make_app: Callable[..., FastAPI]) -> None:
    read, admin, bootstrap = (
        "dcm_cfg_read_0123456789",
        "dcm_cfg_admin_0123456",
        "dcm_cfg_boot_01234",
    )
    app = make_app(
        open_reads=False,
        read_token_sha256=[sha256_hex(read)],
        admin_key_sha256=[sha256_hex(admin)],
        bootstrap_token_sha256=[sha256_hex(bootstrap)],
    )
    with TestClient(app) as client:
        assert client.get("/api/v1/nodes", headers=bearer(read)).status_code == 200
        assert client.get("/api/v1/admin/tokens", headers=bearer(read)).status_code == 403
        assert client.get("/api/v1/admin/tokens", headers=bearer(admin)).status_code == 200
        assert client.get("/api/v1/nodes", headers=bearer(bootstrap)).status_code == 403
        assert client.get("/api/v1/nodes", headers=bearer(TOKEN)).status_code == 403
        body = {"node_id": NODE_ID, "name": "gpu01", "hostname": "gpu01"}
        enrolled = client.post("/api/v1/enroll", json=body, headers=bearer(bootstrap))
        assert enrolled.status_code == 201
        assert client.get("/healthz").status_code == 200


def test_a_malformed_authorization_header_is_401(closed: TestClient) -> None:
    response = closed.get("/api/v1/nodes", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
