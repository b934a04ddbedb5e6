"""Binary operators over a whole step grid: arithmetic, comparisons (``bool``) and set operators.

Vector/vector matching follows engine.go: VectorBinop, VectorAnd/Or/Unless and resultMetric: the
signature is the ``on`` labels, or all labels but ``__name__`` and the ``ignoring`` ones; the
"one" side must be unique per signature at each step; cardinality errors carry Prometheus'
messages. Comparisons filter (keeping the left value) unless ``bool``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from server.promql.errors import EvalError
from server.promql.plan import ARITHMETIC_OPS, COMPARISON_OPS, Cardinality, VectorMatching
from server.promql.values import (
    NAME,
    BoolArray,
    FloatArray,
    Labels,
    Scalar,
    Vector,
    VectorSeries,
    format_labels,
    only_labels,
    with_label,
    without_labels,
)

_Op = Callable[[FloatArray, FloatArray], FloatArray]


def _pow(a: FloatArray, b: FloatArray) -> FloatArray:
    result: FloatArray = np.power(a, b)
    return result


def _mod(a: FloatArray, b: FloatArray) -> FloatArray:
    result: FloatArray = np.fmod(a, b)
    return result


_ARITHMETIC: dict[str, _Op] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": _mod,
    "^": _pow,
    "atan2": np.arctan2,
}
_COMPARISON: dict[str, Callable[[FloatArray, FloatArray], BoolArray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def arithmetic(op: str, lhs: FloatArray, rhs: FloatArray) -> FloatArray:
    """Returns: ``lhs op rhs`` elementwise with IEEE results (no exceptions)."""
    with np.errstate(all="ignore"):
        return _ARITHMETIC[op](lhs, rhs)


def compare(op: str, lhs: FloatArray, rhs: FloatArray) -> BoolArray:
    with np.errstate(invalid="ignore"):
        return _COMPARISON[op](lhs, rhs)


def scalar_scalar(op: str, lhs: Scalar, rhs: Scalar) -> Scalar:
    """Scalar op scalar; comparisons (which must be ``bool``) give 0/1."""
    if op in COMPARISON_OPS:
        return Scalar(compare(op, lhs.values, rhs.values).astype(np.float64))
    return Scalar(arithmetic(op, lhs.values, rhs.values))


def vector_scalar(
    op: str, vector: Vector, scalar: Scalar, scalar_left: bool, return_bool: bool
) -> Vector:
    """Vector op scalar (or scalar op vector when ``scalar_left``)."""
    out = []
    for s in vector.series:
        lhs, rhs = (scalar.values, s.values) if scalar_left else (s.values, scalar.values)
        if op in ARITHMETIC_OPS:
            out.append(VectorSeries(s.labels, arithmetic(op, lhs, rhs), s.present, True))
            continue
        keep = compare(op, lhs, rhs)
        if return_bool:
            out.append(VectorSeries(s.labels, keep.astype(np.float64), s.present, True))
        else:
            out.append(VectorSeries(s.labels, s.values, s.present & keep, s.drop_name))
    return Vector([s for s in out if s.present.any()])


def signature(labels: Labels, matching: VectorMatching) -> Labels:
    """Returns: the labels two series must share to match."""
    if matching.on:
        return only_labels(labels, matching.labels)
    return without_labels(labels, (*matching.labels, NAME))


def set_operation(op: str, lhs: Vector, rhs: Vector, matching: VectorMatching) -> Vector:
    """``and`` / ``or`` / ``unless``, per step; values and labels pass through untouched."""
    steps = _num_steps(lhs, rhs)

    def presence(vector: Vector) -> dict[Labels, BoolArray]:
        seen: dict[Labels, BoolArray] = {}
        for s in vector.series:
            sig = signature(s.labels, matching)
            seen[sig] = seen.get(sig, np.zeros(steps, dtype=bool)) | s.present
        return seen

    none = np.zeros(steps, dtype=bool)
    out: list[VectorSeries] = []
    if op == "or":
        left = presence(lhs)
        out.extend(lhs.series)
        for s in rhs.series:
            mask = s.present & ~left.get(signature(s.labels, matching), none)
            out.append(VectorSeries(s.labels, s.values, mask, s.drop_name, s.sample_ts))
    else:
        right = presence(rhs)
        for s in lhs.series:
            other = right.get(signature(s.labels, matching), none)
            mask = s.present & (other if op == "and" else ~other)
            out.append(VectorSeries(s.labels, s.values, mask, s.drop_name, s.sample_ts))
    return Vector([s for s in out if s.present.any()])


def _num_steps(*vectors: Vector) -> int:
    for vector in vectors:
        for s in vector.series:
            return len(s.present)
    return 0


def _merge_one_side(
    members: list[VectorSeries], side: str, matching: VectorMatching
) -> tuple[FloatArray, BoolArray, Labels]:
    """Merges the "one" side's series of one signature; two at one step is an error."""
    if len(members) == 1:
        return members[0].values, members[0].present, members[0].labels
    counts = np.sum([s.present for s in members], axis=0)
    if (counts > 1).any():
        step = int(np.flatnonzero(counts > 1)[0])
        both = sorted(s.labels for s in members if s.present[step])[:2]
        group = signature(both[0], matching) if matching.on else without_labels(both[0], (NAME,))
        if not matching.on:
            group = without_labels(group, matching.labels)
        raise EvalError(
            f"found duplicate series for the match group {format_labels(group)} on the {side} "
            f"hand-side of the operation: [{format_labels(both[0])}, {format_labels(both[1])}]"
            ";many-to-many matching not allowed: matching labels must be unique on one side"
        )
    values = np.full(len(counts), np.nan)
    present = np.zeros(len(counts), dtype=bool)
    for s in members:
        values = np.where(s.present, s.values, values)
        present |= s.present
    return values, present, members[0].labels


def vector_vector(  # noqa: PLR0912 - one branch per matching rule
    op: str, lhs: Vector, rhs: Vector, matching: VectorMatching, return_bool: bool
) -> Vector:
    """Arithmetic or comparison between two vectors with one-to-one or group_x matching."""
    card = matching.card
    many, one = (rhs, lhs) if card is Cardinality.ONE_TO_MANY else (lhs, rhs)
    one_side = "left" if card is Cardinality.ONE_TO_MANY else "right"
    one_groups: dict[Labels, list[VectorSeries]] = {}
    for s in one.series:
        one_groups.setdefault(signature(s.labels, matching), []).append(s)
    merged = {sig: _merge_one_side(m, one_side, matching) for sig, m in one_groups.items()}
    steps = _num_steps(lhs, rhs)
    matched_count: dict[Labels, FloatArray] = {}
    out: dict[Labels, VectorSeries] = {}
    drops_name = op in ARITHMETIC_OPS
    for s in many.series:
        sig = signature(s.labels, matching)
        if sig not in merged:
            continue
        one_values, one_present, one_labels = merged[sig]
        both = s.present & one_present
        if not both.any():
            continue
        if card is Cardinality.ONE_TO_ONE:
            count = matched_count.setdefault(sig, np.zeros(steps)) + both
            matched_count[sig] = count
            if (count > 1).any():
                raise EvalError(
                    "multiple matches for labels: "
                    "many-to-one matching must be explicit (group_left/group_right)"
                )
        left, right = (one_values, s.values) if one is lhs else (s.values, one_values)
        labels = _result_labels(s.labels, one_labels, matching, drops_name)
        if op in ARITHMETIC_OPS:
            values, mask, drop = arithmetic(op, left, right), both, False
        else:
            keep = compare(op, left, right)
            if return_bool:
                values, mask, drop = keep.astype(np.float64), both, True
            else:
                values, mask, drop = left, both & keep, s.drop_name
        previous = out.get(labels)
        if previous is not None:
            if (previous.present & both).any():
                if card is Cardinality.ONE_TO_ONE:
                    raise EvalError("vector cannot contain metrics with the same labelset")
                raise EvalError(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                )
            values = np.where(previous.present, previous.values, values)
            mask = mask | previous.present
        out[labels] = VectorSeries(labels, values, mask, drop)
    return Vector([s for s in out.values() if s.present.any()])


def _result_labels(many: Labels, one: Labels, matching: VectorMatching, drop_name: bool) -> Labels:
    labels = without_labels(many, (NAME,)) if drop_name else many
    if matching.card is Cardinality.ONE_TO_ONE:
        if matching.on:
            labels = only_labels(labels, matching.labels)
        else:
            labels = without_labels(labels, matching.labels)
    for name in matching.include:
        labels = with_label(labels, name, dict(one).get(name, ""))
    return labels
