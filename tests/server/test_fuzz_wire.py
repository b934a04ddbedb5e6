"""Fuzzing the wire: ``decode_batch`` only ever returns a Batch or raises WireError, and no body
posted to the ingest routes gets a 5xx.

Three kinds of input: random bytes under every Content-Encoding; gzip of random JSON (deep
nesting, odd numbers, odd strings); and valid batches with a few fields mutated (a value
replaced by something near a boundary or of another type, a key dropped, an unknown key added),
which reach the checks and the store behind the schema.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire.codec import WireError, decode_batch
from agent.wire.schema import Batch, GpuEvent, JobGpuUsage
from server.ingest.bulk import join_records
from tests.factories import GPU_LABELS, make_batch
from tests.server.conftest import START, push
from tests.server.ingest.helpers import push_bulk

LIMIT = 1 << 20
Path = tuple[str | int, ...]

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 1e308, -1e308, 5e-324])
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
_odd_strings = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "\U0001f600", "\n", "x" * 300, "x" * 2000, "GPU-0"]
)
_replacements = _json_values | _odd_strings
_boundaries = st.sampled_from([-1, 0, 2**63 - 1, 2**63, 2**64, 10**40, 1e308, 5e-324])


def _base_document() -> dict[str, Any]:
    """A valid batch using every part of the schema (metrics, inventory, events, jobs)."""
    batch = make_batch(timestamp=START)
    full = batch.model_copy(
        update={
            "events": [
                GpuEvent(
                    time=START - 1,
                    source="nvml",
                    code=79,
                    gpu_index=0,
                    uuid=GPU_LABELS["UUID"],
                    severity="critical",
                    action="RESET_GPU",
                )
            ],
            "jobs": [
                JobGpuUsage(
                    job_id="1234",
                    scheduler="slurm",
                    user="alice",
                    gpu_index=0,
                    uuid=GPU_LABELS["UUID"],
                    pids=[4242],
                    since=START - 100,
                    memory_used_bytes=1 << 30,
                    sm_percent=55.0,
                    gpu_seconds=99.0,
                    energy_joules=12_000.0,
                )
            ],
        }
    )
    document: dict[str, Any] = json.loads(Batch.model_validate(full.model_dump()).model_dump_json())
    return document


BASE = _base_document()


def _paths(node: Any, prefix: Path = ()) -> list[Path]:
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths.extend(_paths(value, (*prefix, index)))
    return paths


def _parent(document: Any, path: Path) -> Any:
    node = document
    for part in path[:-1]:
        node = node[part]
    return node


def _leaf(document: Any, path: Path) -> Any:
    return _parent(document, path)[path[-1]]


@st.composite
def near_valid_documents(draw: st.DrawFn) -> Any:
    """A valid batch document with one to three mutations: a value replaced by anything, a
    number by a boundary value, a NUL put into a string, a key dropped or an unknown one added."""
    document: Any = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in _paths(document) if path]
        if not paths:
            break
        action = draw(st.sampled_from(["number", "number", "nul", "replace", "drop", "add"]))
        numbers = [p for p in paths if isinstance(_leaf(document, p), int | float)]
        strings = [p for p in paths if isinstance(_leaf(document, p), str)]
        if action == "number" and numbers:
            path = draw(st.sampled_from(numbers))
            _parent(document, path)[path[-1]] = draw(_boundaries)
            continue
        if action == "nul" and strings:
            path = draw(st.sampled_from(strings))
            _parent(document, path)[path[-1]] += "\x00"
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        if action in ("replace", "number", "nul"):
            parent[path[-1]] = draw(_replacements)
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(_replacements)
        else:
            parent.append(draw(_replacements))
    return document


def _gz(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode("utf-8", "surrogatepass"))


def _nested(depth: int) -> bytes:
    return gzip.compress(b"[" * depth + b"]" * depth)


bodies = st.one_of(
    st.tuples(st.binary(max_size=512), st.sampled_from([None, "gzip", "identity", "br"])),
    st.tuples(_json_values.map(_gz), st.just("gzip")),
    st.tuples(near_valid_documents().map(_gz), st.just("gzip")),
    st.tuples(st.integers(1, 100_000).map(_nested), st.just("gzip")),
)


def _decodes_or_refuses(body: bytes, encoding: str | None) -> None:
    try:
        batch = decode_batch(body, encoding, LIMIT)
    except WireError as exc:
        assert exc.code in {
            "unsupported_encoding",
            "body_too_large",
            "bad_compression",
            "malformed_json",
            "unsupported_schema_version",
            "invalid_batch",
        }
        assert exc.message
        return
    assert isinstance(batch, Batch)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_decode_returns_a_batch_or_raises_a_wire_error(body: tuple[bytes, str | None]) -> None:
    _decodes_or_refuses(*body)


@settings(max_examples=300, deadline=None)
@given(near_valid_documents())
def test_a_decoded_batch_encodes_again(document: Any) -> None:
    """Whatever the server accepts, the agent's encoder can produce (the schema is the same)."""
    with contextlib.suppress(WireError):
        batch = decode_batch(_gz(document), "gzip", LIMIT)
        again = Batch.model_validate_json(batch.model_dump_json())
        assert again == batch


def _checked(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"]


def test_posted_bodies_never_get_a_server_error(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app()) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(bodies)
        def check(body: tuple[bytes, str | None]) -> None:
            payload, encoding = body
            headers = {"Content-Encoding": encoding} if encoding else {"Content-Encoding": ""}
            _checked(push(client, body=payload, headers=headers))

        check()


def test_posted_near_valid_batches_never_get_a_server_error(
    make_app: Callable[..., FastAPI], database_url: str
) -> None:
    """Batches that pass or nearly pass the schema reach the checks and the store, on both
    backends: PostgreSQL refuses some of what SQLite stores (NUL characters)."""
    with TestClient(make_app(database_url=database_url)) as client:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(near_valid_documents())
        def check(document: Any) -> None:
            _checked(push(client, body=_gz(document)))

        check()


def test_bulk_bodies_never_get_a_server_error(
    make_app: Callable[..., FastAPI], database_url: str
) -> None:
    with TestClient(make_app(database_url=database_url)) as client:

        @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            st.lists(near_valid_documents().map(_gz) | st.binary(max_size=64), max_size=4),
            st.binary(max_size=8),
        )
        def check(records: list[bytes], tail: bytes) -> None:
            _checked(push_bulk(client, body=join_records(records) + tail))

        check()


def _set(path: Path, value: Any) -> Any:
    document: Any = json.loads(json.dumps(BASE))
    _parent(document, path)[path[-1]] = value
    return document


# What fuzzing found (500s: integers past 64 bits overflow the columns; PostgreSQL text refuses
# NUL), kept as fixed examples on both backends.
FOUND = [
    pytest.param(("seq",), 2**63, "seq", id="seq-past-int64"),
    pytest.param(("inventory", "gpus", 0, "memory_total_bytes"), 2**64, "memory", id="gpu-memory"),
    pytest.param(("events", 0, "pid"), 10**40, "events.0.pid", id="event-pid"),
    pytest.param(("jobs", 0, "memory_used_bytes"), 2**63, "memory_used", id="job-memory"),
    pytest.param(("node", "name"), "gpu\x0001", "node.name", id="nul-in-node-name"),
    pytest.param(("jobs", 0, "job_id"), "\x00", "jobs.0.job_id", id="nul-in-job-id"),
    pytest.param(("events", 0, "message"), "Xid \x00", "events.0.message", id="nul-in-message"),
]


@pytest.mark.parametrize(("path", "value", "location"), FOUND)
def test_values_the_database_cannot_hold_are_refused_with_their_location(
    make_app: Callable[..., FastAPI], database_url: str, path: Path, value: Any, location: str
) -> None:
    with TestClient(make_app(database_url=database_url)) as client:
        response = push(client, body=_gz(_set(path, value)))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_batch"
        assert location in error["message"]
        assert client.get("/api/v1/nodes").json() == {"nodes": []}


def test_a_nul_in_a_label_value_is_refused_too() -> None:
    document = _set(("metrics", 0, "samples", 0, 0, "cpu"), "0\x00")
    with pytest.raises(WireError) as caught:
        decode_batch(_gz(document), "gzip", LIMIT)
    assert caught.value.problems[0].location == "metrics.0.samples.0.0.cpu"


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    document = _set(("node", "hostname"), "C:\\u0000dir")  # a backslash, then "u0000dir"
    assert b"\\u0000" in json.dumps(document).encode()
    batch = decode_batch(_gz(document), "gzip", LIMIT)
    assert batch.node.hostname == "C:\\u0000dir"
