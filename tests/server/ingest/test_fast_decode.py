"""The fast decoder (msgspec) against the reference decoder (pydantic): the same bodies give the
same batch, or the same refusal (code, message and problems), including the wire fuzz corpus."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.wire import codec
from agent.wire.codec import WireError
from agent.wire.schema import LABEL_NAME_RE, METRIC_NAME_RE, Batch, CompactBatch
from server.ingest import fast_decode
from tests.server.test_fuzz_wire import BASE, LIMIT, bodies, near_valid_documents

Outcome = tuple[str, Any]


def _outcome(decode: Any, body: bytes, encoding: str | None) -> Outcome:
    try:
        batch = decode(body, encoding, LIMIT)
    except WireError as exc:
        return ("refused", (exc.code, exc.message, exc.problems))
    assert isinstance(batch, Batch)
    return ("batch", (batch, batch.model_fields_set, batch.model_dump_json()))


def _same(body: bytes, encoding: str | None = "gzip") -> Outcome:
    reference = _outcome(codec.decode_batch, body, encoding)
    assert _outcome(fast_decode.decode_batch, body, encoding) == reference
    return reference


def _gz(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode("utf-8", "surrogatepass"))


def _family(name: str, *samples: Any) -> dict[str, Any]:
    return {"name": name, "samples": list(samples)}


def _with_metrics(*families: Any) -> bytes:
    return _gz({**BASE, "metrics": list(families)})


def test_a_valid_batch_decodes_to_the_same_batch() -> None:
    kind, _ = _same(_gz(BASE))
    assert kind == "batch"
    assert fast_decode._fast(json.dumps(BASE).encode()) is not None, "the fast path took it"


def _compact(**changes: Any) -> dict[str, Any]:
    document = {key: value for key, value in BASE.items() if key != "metrics"}
    document.update(schema_version=2, layout="0123456789abcdef0123456789abcdef")
    document["values"] = [1.0, 2, -0.5, 1e300]
    document.update(changes)
    return document


def test_a_compact_batch_decodes_to_the_same_batch() -> None:
    kind, (batch, fields_set, _) = _same(_gz(_compact()))
    assert kind == "batch" and isinstance(batch, CompactBatch)
    assert batch.values == [1.0, 2.0, -0.5, 1e300] and "values" in fields_set
    assert fast_decode._fast(json.dumps(_compact()).encode()) is not None, "the fast path took it"


@pytest.mark.parametrize(
    "document",
    [
        _compact(layout="XYZ"),  # not a layout key
        _compact(metrics=[{"name": "up", "samples": [[{}, 1.0]]}]),  # a compact batch has none
        _compact(values=[1.0, "2"]),
        _compact(values=[1.0, 1e999]),  # past a double: JSON's only way to say infinity
        _compact(values=None),
        {**_compact(), "schema_version": 1},  # values in a full batch
        {key: value for key, value in _compact().items() if key != "layout"},
        {key: value for key, value in _compact().items() if key != "values"},
    ],
)
def test_a_faulty_compact_batch_gets_the_same_refusal(document: dict[str, Any]) -> None:
    kind, (code, _message, _problems) = _same(_gz(document))
    assert kind == "refused"
    assert code in {"invalid_batch", "unsupported_schema_version"}


def test_a_batch_without_metrics_decodes_to_the_same_batch() -> None:
    document = {key: value for key, value in BASE.items() if key != "metrics"}
    kind, (batch, fields_set, _) = _same(_gz(document))
    assert kind == "batch" and batch.metrics == [] and "metrics" not in fields_set


GOOD = {"gpu": "0"}
EDGE_CASES = [
    pytest.param(_with_metrics(_family("up\n", [GOOD, 1.0])), id="metric-name-newline"),
    pytest.param(_with_metrics(_family("up", [{"gpu\n": "0"}, 1.0])), id="label-name-newline"),
    pytest.param(_with_metrics(_family("1up", [GOOD, 1.0])), id="metric-name-digit"),
    pytest.param(_with_metrics(_family("up", [{"instance": "x"}, 1.0])), id="reserved-instance"),
    pytest.param(_with_metrics(_family("up", [{"__name__": "x"}, 1.0])), id="reserved-dunder"),
    pytest.param(_with_metrics(_family("up", [GOOD, True])), id="bool-value"),
    pytest.param(_with_metrics(_family("up", [GOOD, 3])), id="int-value"),
    pytest.param(_with_metrics(_family("up", [GOOD, 10**400])), id="huge-int-value"),
    pytest.param(_with_metrics(_family("up", [GOOD, 2**64])), id="int-past-64-bits"),
    pytest.param(_with_metrics(_family("up", [GOOD, "1"])), id="string-value"),
    pytest.param(_with_metrics(_family("up", [GOOD, 1.0, 2.0])), id="three-item-sample"),
    pytest.param(_with_metrics(_family("up")), id="empty-family"),
    pytest.param(_with_metrics(_family("up", [{"a": 1}, 1.0])), id="label-value-number"),
    pytest.param(_with_metrics(_family("up", [{"a": "x" * 1025}, 1.0])), id="long-label-value"),
    pytest.param(_with_metrics(_family("u" * 201, [GOOD, 1.0])), id="long-metric-name"),
    pytest.param(
        _with_metrics(_family("up", [{f"l{i}": "v" for i in range(33)}, 1.0])), id="33-labels"
    ),
    pytest.param(_with_metrics({**_family("up", [GOOD, 1.0]), "x": 1}), id="unknown-family-key"),
    pytest.param(_gz({**BASE, "extra": 1}), id="unknown-batch-key"),
    pytest.param(_gz({**BASE, "seq": -1}), id="negative-seq"),
    pytest.param(_gz({**BASE, "schema_version": 2}), id="schema-version-2"),
    pytest.param(_gz({**BASE, "schema_version": 1.0}), id="schema-version-float"),
    pytest.param(_gz({**BASE, "metrics": {}}), id="metrics-object"),
    pytest.param(_gz([BASE]), id="array-body"),
    pytest.param(gzip.compress(b'{"metrics": [], "metrics": []}'), id="repeated-key"),
    pytest.param(
        gzip.compress(json.dumps(BASE).encode()[:-1] + b', "metrics": []}'), id="metrics-twice"
    ),
    pytest.param(gzip.compress(json.dumps(BASE).replace('"0"', '"0\\u0000"').encode()), id="nul"),
    pytest.param(gzip.compress(json.dumps(BASE).encode() + b" "), id="trailing-space"),
    pytest.param(gzip.compress(json.dumps(BASE).encode() + b"x"), id="trailing-garbage"),
    pytest.param(gzip.compress(b"\xef\xbb\xbf" + json.dumps(BASE).encode()), id="utf8-bom"),
    pytest.param(_with_metrics(_family("up", [GOOD, 1.0]), _family("up", [GOOD, 2.0])), id="dup"),
]


@pytest.mark.parametrize("body", EDGE_CASES)
def test_edge_cases_get_the_same_answer(body: bytes) -> None:
    _same(body)


def test_refusals_carry_the_reference_message() -> None:
    kind, (code, message, _problems) = _same(_with_metrics(_family("up", [{"job": "x"}, 1.0])))
    assert kind == "refused" and code == "invalid_batch" and "reserved" in message


def test_the_patterns_are_the_schemas_anchored_at_the_very_end() -> None:
    assert fast_decode.whole_match(METRIC_NAME_RE.pattern) == METRIC_NAME_RE.pattern[:-1] + r"\Z"
    assert fast_decode.whole_match(LABEL_NAME_RE.pattern) == LABEL_NAME_RE.pattern[:-1] + r"\Z"


def test_every_other_field_of_the_schema_is_validated_by_pydantic() -> None:
    assert set(fast_decode.OTHER_FIELDS) | {"metrics", "values"} == set(CompactBatch.model_fields)
    assert set(Batch.model_fields) <= set(CompactBatch.model_fields)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_fuzzed_bodies_get_the_same_answer(body: tuple[bytes, str | None]) -> None:
    _same(*body)


@settings(max_examples=400, deadline=None)
@given(near_valid_documents())
def test_near_valid_batches_get_the_same_answer(document: Any) -> None:
    _same(_gz(document))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.sampled_from(["gpu", "UUID", "a_b", "job", "__x", "9a", "é", "ok\n", "x" * 201]),
                st.text(max_size=4) | st.sampled_from(["x" * 1024, "x" * 1025]),
                max_size=4,
            ),
            st.floats(allow_nan=False) | st.integers() | st.booleans(),
        ),
        max_size=5,
    ),
    st.sampled_from(["up", "DCGM_FI_DEV_GPU_UTIL", "a:b", "0up", "up\n", "u" * 201]),
)
def test_generated_families_get_the_same_answer(samples: list[Any], name: str) -> None:
    _same(_with_metrics(_family(name, *[list(sample) for sample in samples])))
