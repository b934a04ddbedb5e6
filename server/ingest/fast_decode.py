"""The server's fast path of ``codec.decode_batch``: the samples decoded by msgspec.

Stage: transport -> ingest (server side: msgspec is in the ``server`` extra, and the agent
never decodes a batch). Input: a request body and its Content-Encoding. Output: the same
validated ``Batch`` as ``codec.decode_batch``, or the same ``WireError``.

Validating a 400-sample batch with pydantic costs about 1 ms of the server's CPU, most of it in
the samples (a tuple, a label dict and a reserved-label check per sample). Here msgspec decodes
the metric families into structs that enforce the schema's limits on them (name and label
patterns, lengths, counts, finite values: msgspec refuses ``NaN`` tokens and numbers that
overflow a double), while every other field is kept as raw JSON and validated by the pydantic
schema itself, in a document of its own. The pydantic schema (``schema.py``) stays the one
definition: the msgspec types are derived from its constants, and a test feeds both decoders
the same good and bad batches (``tests/server/ingest/test_fast_decode.py``).

Whatever the fast path does not take (a msgspec error, a reserved label, a NUL escape, an error
in the other fields) goes to the reference decoder (``codec.validate_batch``) on the same bytes,
so a refused batch gets exactly the code, message and problem list it always got. The fast path
may only refuse more than the schema, never less: a body it refuses wrongly costs time, not
correctness.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Raw, Struct
from pydantic import ValidationError

from agent.wire.codec import NUL_ESCAPE, inflate, validate_batch
from agent.wire.schema import (
    LABEL_NAME_RE,
    MAX_FAMILIES_PER_BATCH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS_PER_SAMPLE,
    MAX_NAME_LENGTH,
    MAX_SAMPLES_PER_BATCH,
    MAX_SAMPLES_PER_FAMILY,
    METRIC_NAME_RE,
    RESERVED_LABELS,
    Batch,
    CompactBatch,
    MetricFamily,
)


def whole_match(pattern: str) -> str:
    """Returns: ``pattern`` anchored at the very end, as pydantic's (Rust) regex reads ``$``;
    Python's ``$``, which msgspec uses, also matches before a final newline."""
    return (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    )


# The name patterns are checked in ``_names_valid``, once per distinct name (set): msgspec
# would run Python's regex on every label of every sample, slower than pydantic's whole decode.
_METRIC_NAME = re.compile(whole_match(METRIC_NAME_RE.pattern))
_LABEL_NAME = re.compile(whole_match(LABEL_NAME_RE.pattern))
_MetricName = Annotated[str, Meta(max_length=MAX_NAME_LENGTH)]
_LabelName = Annotated[str, Meta(max_length=MAX_NAME_LENGTH)]
_LabelValue = Annotated[str, Meta(max_length=MAX_LABEL_VALUE_LENGTH)]
_Labels = Annotated[dict[_LabelName, _LabelValue], Meta(max_length=MAX_LABELS_PER_SAMPLE)]


class _Family(Struct, forbid_unknown_fields=True, gc=False):
    """``schema.MetricFamily``'s fields and limits, but for the name patterns and the reserved
    labels (``_names_valid``)."""

    name: _MetricName
    samples: Annotated[
        list[tuple[_Labels, float]], Meta(min_length=1, max_length=MAX_SAMPLES_PER_FAMILY)
    ]


METRICS_FIELD = "metrics"
VALUES_FIELD = "values"
OTHER_FIELDS = tuple(
    name for name in CompactBatch.model_fields if name not in (METRICS_FIELD, VALUES_FIELD)
)
"""Every other field of either form (``Batch``, ``CompactBatch``), kept raw and validated by
pydantic."""

_Envelope: Any = msgspec.defstruct(
    "_Envelope",
    [
        (
            METRICS_FIELD,
            Annotated[list[_Family], Meta(max_length=MAX_FAMILIES_PER_BATCH)] | msgspec.UnsetType,
            msgspec.UNSET,
        ),
        (
            VALUES_FIELD,
            Annotated[list[float], Meta(max_length=MAX_SAMPLES_PER_BATCH)] | msgspec.UnsetType,
            msgspec.UNSET,
        ),
        *((name, Raw | msgspec.UnsetType, msgspec.UNSET) for name in OTHER_FIELDS),
    ],
    forbid_unknown_fields=True,
    gc=False,
)
_DECODER = msgspec.json.Decoder(_Envelope)
_COMPACT = b"2"  # CompactBatch's schema_version, as its raw JSON
_OTHER_KEYS = tuple((name, f'"{name}":'.encode()) for name in OTHER_FIELDS)

_VALID_METRICS: set[str] = set()
_VALID_LABEL_SETS: set[tuple[str, ...]] = set()
_REMEMBERED_MAX = 4096


def decode_batch(body: bytes, content_encoding: str | None, max_decompressed_bytes: int) -> Batch:
    """``codec.decode_batch``, faster for a valid batch.

    Raises:
        WireError: the body cannot be decoded or does not match the schema (the reference
            decoder's error).
    """
    raw = inflate(body, content_encoding, max_decompressed_bytes)
    batch = _fast(raw)
    return validate_batch(raw) if batch is None else batch


def _fast(raw: bytes) -> Batch | None:
    """Returns: the batch, or None for a body the reference decoder must judge."""
    if NUL_ESCAPE in raw:
        return None
    try:
        envelope = _DECODER.decode(raw)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    families = envelope.metrics
    if families is not msgspec.UNSET and not _names_valid(families):
        return None
    rest = _rest(envelope, compact_allowed=not families)
    if rest is None:
        return None
    if families is msgspec.UNSET:
        return rest
    metrics = [MetricFamily.model_construct(name=f.name, samples=f.samples) for f in families]
    return rest.model_copy(update={METRICS_FIELD: metrics})


def _rest(envelope: Any, compact_allowed: bool) -> Batch | None:
    """Returns: the envelope's other fields (and its values, in a compact batch) validated by
    the schema's form, or None for the reference decoder to judge."""
    parts = [
        key + bytes(value)
        for name, key in _OTHER_KEYS
        if (value := getattr(envelope, name)) is not msgspec.UNSET
    ]
    version = envelope.schema_version
    compact = version is not msgspec.UNSET and bytes(version) == _COMPACT
    values = envelope.values
    if compact and not compact_allowed:
        return None  # a compact batch has no families: the reference decoder says so
    if values is not msgspec.UNSET:
        if not compact:
            return None  # values in a full batch: the reference decoder names the fault
        parts.append(b'"values":[]')  # the values themselves were checked by msgspec
    try:
        rest = (CompactBatch if compact else Batch).model_validate_json(
            b"{" + b",".join(parts) + b"}"
        )
    except ValidationError:
        return None
    return rest if values is msgspec.UNSET else rest.model_copy(update={VALUES_FIELD: values})


def _names_valid(families: list[_Family]) -> bool:
    """Returns: whether every metric name and label name matches the schema's pattern and no
    sample sets a label the server reserves (``schema._refuse_reserved``). The same few names
    and label-name tuples repeat in every batch, so the ones found valid are remembered."""
    metrics = _VALID_METRICS
    label_sets = _VALID_LABEL_SETS
    for family in families:
        if family.name not in metrics:
            if _METRIC_NAME.match(family.name) is None:
                return False
            _remember(metrics, family.name)
        for labels, _value in family.samples:
            names = tuple(labels)
            if names in label_sets:
                continue
            for name in names:
                if (
                    name in RESERVED_LABELS
                    or name.startswith("__")
                    or _LABEL_NAME.match(name) is None
                ):
                    return False
            _remember(label_sets, names)
    return True


def _remember(valid: set[Any], item: object) -> None:
    if len(valid) < _REMEMBERED_MAX:
        valid.add(item)
