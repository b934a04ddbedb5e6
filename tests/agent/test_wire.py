"""The wire codec: round trips, and every way a body can be refused names its problem."""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.wire.codec import WireError, decode_batch, encode_batch, inflate
from agent.wire.schema import Batch, MetricFamily
from tests.factories import make_batch

LIMIT = 1 << 20


def _document() -> dict[str, object]:
    return json.loads(make_batch().model_dump_json())


def _gz(document: object) -> bytes:
    return gzip.compress(json.dumps(document).encode())


def test_round_trip_is_exact() -> None:
    batch = make_batch()
    assert decode_batch(encode_batch(batch), "gzip", LIMIT) == batch


def test_identity_encoding_is_accepted() -> None:
    batch = make_batch()
    assert decode_batch(batch.model_dump_json().encode(), None, LIMIT) == batch


@pytest.mark.parametrize(
    ("mutate", "code", "needle"),
    [
        (lambda d: d.update(schema_version=3), "unsupported_schema_version", "schema_version 3"),
        (lambda d: d.update(seq="7"), "invalid_batch", "seq"),
        (lambda d: d.update(seq=-1), "invalid_batch", "seq"),
        (lambda d: d.update(extra_field=1), "invalid_batch", "extra_field"),
        (lambda d: d.pop("node"), "invalid_batch", "node"),
        (lambda d: d["node"].update(node_id="not-hex"), "invalid_batch", "node.node_id"),
        (
            lambda d: d["metrics"][0].update(name="bad-name"),
            "invalid_batch",
            "metrics.0.name",
        ),
        (
            lambda d: d["metrics"][0]["samples"][0][0].update({"bad-label": "x"}),
            "invalid_batch",
            "metrics.0.samples.0.0",
        ),
        (
            lambda d: d["metrics"][0]["samples"][0][0].update(instance="x"),
            "invalid_batch",
            "reserved",
        ),
        (
            lambda d: d["metrics"][0]["samples"][0].__setitem__(1, "1.5"),
            "invalid_batch",
            "valid number",
        ),
        (
            lambda d: d["metrics"][0]["samples"][0][0].update({f"l{i}": "v" for i in range(40)}),
            "invalid_batch",
            "metrics.0.samples.0.0",
        ),
        (lambda d: d["metrics"][0].update(samples=[]), "invalid_batch", "metrics.0.samples"),
    ],
)
def test_invalid_documents_are_refused_with_the_location(mutate, code, needle) -> None:
    document = _document()
    mutate(document)
    with pytest.raises(WireError) as caught:
        decode_batch(_gz(document), "gzip", LIMIT)
    assert caught.value.code == code
    assert needle in caught.value.message


def test_nan_is_refused() -> None:
    text = json.dumps(_document()).replace("100.0", "NaN", 1)
    with pytest.raises(WireError) as caught:
        decode_batch(text.encode(), "identity", LIMIT)
    assert caught.value.code == "invalid_batch"
    assert "finite" in caught.value.message


@pytest.mark.parametrize(
    ("body", "encoding", "code"),
    [
        (b"{", None, "malformed_json"),
        (b"[1, 2]", None, "invalid_batch"),
        (b"\x00\x01", "gzip", "bad_compression"),
        (gzip.compress(b"{}")[:-6], "gzip", "bad_compression"),
        (gzip.compress(b"{}") + b"junk", "gzip", "bad_compression"),
        (b"{}", "br", "unsupported_encoding"),
        (b" " * (LIMIT + 1), None, "body_too_large"),
    ],
)
def test_undecodable_bodies(body: bytes, encoding: str | None, code: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_batch(body, encoding, LIMIT)
    assert caught.value.code == code


def test_compression_bomb_is_stopped_at_the_limit() -> None:
    bomb = gzip.compress(b"0" * (200 * LIMIT), compresslevel=9)
    assert len(bomb) < LIMIT / 4
    with pytest.raises(WireError) as caught:
        inflate(bomb, "gzip", LIMIT)
    assert caught.value.code == "body_too_large"


def test_problems_are_listed_individually() -> None:
    document = _document()
    document["seq"] = "x"
    document["interval_seconds"] = -1
    with pytest.raises(WireError) as caught:
        decode_batch(_gz(document), "gzip", LIMIT)
    locations = {problem.location for problem in caught.value.problems}
    assert {"seq", "interval_seconds"} <= locations


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.sampled_from([None, "gzip", "identity", "deflate"]))
def test_arbitrary_bytes_only_ever_raise_wire_errors(body: bytes, encoding: str | None) -> None:
    with contextlib.suppress(WireError):
        decode_batch(body, encoding, LIMIT)


_label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda name: not name.startswith("__") and name not in ("instance", "job")
)


# Any text but NUL, which the codec refuses (PostgreSQL text cannot hold it).
_label_values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(_label_names, _label_values, max_size=5),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_valid_family_round_trips(samples: list[tuple[dict[str, str], float]]) -> None:
    batch = make_batch(metrics=[MetricFamily(name="x_metric", samples=samples)])
    decoded = decode_batch(encode_batch(batch), "gzip", LIMIT)
    assert decoded.metrics[0].samples == batch.metrics[0].samples


def test_gzip_json_is_what_is_sent() -> None:
    payload = encode_batch(make_batch())
    document = json.loads(zlib.decompress(payload, 16 + zlib.MAX_WBITS))
    assert document["schema_version"] == 1
    assert Batch.model_validate_json(json.dumps(document)) == make_batch()
