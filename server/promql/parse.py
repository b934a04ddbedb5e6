"""The parser boundary: PromQL text -> the promql-parser package's AST -> dcmon's typed plan.

This is the only module that imports ``promql_parser``. Its errors become ``ParseError``; valid
syntax this engine does not evaluate (``or`` inside selectors, binop fill modifiers) becomes
``UnsupportedError`` here, before any data is read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import promql_parser as pp

from server.promql import plan
from server.promql.errors import ParseError, UnsupportedError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

_MATCH_OPS: list[tuple[Any, Any]] = [
    (pp.MatchOp.Equal, plan.MatchOp.EQUAL),
    (pp.MatchOp.NotEqual, plan.MatchOp.NOT_EQUAL),
    (pp.MatchOp.Re, plan.MatchOp.RE),
    (pp.MatchOp.NotRe, plan.MatchOp.NOT_RE),
]
_VALUE_TYPES: list[tuple[Any, Any]] = [
    (pp.ValueType.Vector, plan.ValueType.VECTOR),
    (pp.ValueType.Scalar, plan.ValueType.SCALAR),
    (pp.ValueType.Matrix, plan.ValueType.MATRIX),
    (pp.ValueType.String, plan.ValueType.STRING),
]
_CARDINALITIES: list[tuple[Any, Any]] = [
    (pp.VectorMatchCardinality.OneToOne, plan.Cardinality.ONE_TO_ONE),
    (pp.VectorMatchCardinality.ManyToOne, plan.Cardinality.MANY_TO_ONE),
    (pp.VectorMatchCardinality.OneToMany, plan.Cardinality.ONE_TO_MANY),
    (pp.VectorMatchCardinality.ManyToMany, plan.Cardinality.MANY_TO_MANY),
]


def _lookup(table: list[tuple[Any, Any]], key: Any) -> Any:
    """The parser's enums are not hashable, so the tables are searched by equality."""
    for theirs, ours in table:
        if theirs == key:
            return ours
    raise UnsupportedError(f"unknown parser value {key!r}")


def parse(text: str) -> plan.Expr:
    """Returns: the plan of a PromQL expression. Raises: ParseError, UnsupportedError."""
    try:
        ast = pp.parse(text)
    except ValueError as exc:
        raise ParseError(str(exc)) from exc
    return _convert(ast)


def _ms(delta: timedelta | None) -> int:
    return 0 if delta is None else delta // _MS


def _at(modifier: Any) -> plan.At | None:
    if modifier is None:
        return None
    if modifier.type == pp.AtModifierType.Start:
        return plan.AtEdge.START
    if modifier.type == pp.AtModifierType.End:
        return plan.AtEdge.END
    try:
        moment: datetime = modifier.at
    except (ValueError, OverflowError) as exc:  # past what a timestamp can hold
        raise ParseError(f"timestamp out of bounds for @ modifier: {exc}") from exc
    except BaseException as exc:  # the binding panics on negative fractional times
        if type(exc).__name__ != "PanicException":
            raise
        raise UnsupportedError("negative fractional '@' times are not supported") from exc
    return (moment - _EPOCH) // _MS


def _selector(node: Any) -> plan.VectorSelector:
    if node.matchers.or_matchers:
        raise UnsupportedError("'or' between label matchers is not supported")
    matchers: list[plan.Matcher] = []
    if node.name is not None:
        matchers.append(plan.Matcher("__name__", plan.MatchOp.EQUAL, node.name))
    for m in node.matchers.matchers:
        try:
            matchers.append(plan.Matcher(m.name, _lookup(_MATCH_OPS, m.op), m.value))
        except Exception as exc:  # re.error: RE2 syntax Python's re does not read
            raise UnsupportedError(f"regular expression {m.value!r}: {exc}") from exc
    name = node.name
    if name is None:
        for m in matchers:
            if m.name == "__name__" and m.op is plan.MatchOp.EQUAL:
                name = m.value
    return plan.VectorSelector(name, tuple(matchers), _ms(node.offset), _at(node.at))


def _matching(modifier: Any) -> plan.VectorMatching | None:
    if modifier is None:
        return None
    fill = modifier.fill_values
    if fill is not None and (fill.lhs is not None or fill.rhs is not None):
        raise UnsupportedError("fill modifiers on binary operators are not supported")
    card = _lookup(_CARDINALITIES, modifier.card)
    matching = modifier.matching
    on = matching is not None and matching.type == pp.LabelModifierType.Include
    labels = tuple(matching.labels) if matching is not None else ()
    include = tuple(modifier.group_labels or ())
    return plan.VectorMatching(card, on, labels, include)


def _convert(node: Any) -> plan.Expr:  # noqa: PLR0911 - one branch per AST node type
    if isinstance(node, pp.ParenExpr):
        return _convert(node.expr)
    if isinstance(node, pp.NumberLiteral):
        return plan.NumberLiteral(float(node.val))
    if isinstance(node, pp.StringLiteral):
        return plan.StringLiteral(node.val)
    if isinstance(node, pp.VectorSelector):
        return _selector(node)
    if isinstance(node, pp.MatrixSelector):
        return plan.MatrixSelector(_selector(node.vector_selector), _ms(node.range))
    if isinstance(node, pp.SubqueryExpr):
        step = None if node.step is None else _ms(node.step)
        return plan.Subquery(
            _convert(node.expr), _ms(node.range), step, _ms(node.offset), _at(node.at)
        )
    if isinstance(node, pp.UnaryExpr):
        inner = _convert(node.expr)
        if isinstance(inner, plan.NumberLiteral):
            return plan.NumberLiteral(-inner.value)
        return plan.Unary("-", inner)
    if isinstance(node, pp.Call):
        args = tuple(_convert(arg) for arg in node.args)
        return plan.Call(node.func.name, args, _lookup(_VALUE_TYPES, node.func.return_type))
    if isinstance(node, pp.AggregateExpr):
        param = None if node.param is None else _convert(node.param)
        modifier = node.modifier
        without = modifier is not None and modifier.type == pp.AggModifierType.Without
        grouping = tuple(modifier.labels) if modifier is not None else ()
        return plan.Aggregate(str(node.op).lower(), _convert(node.expr), param, grouping, without)
    if isinstance(node, pp.BinaryExpr):
        bin_modifier = node.modifier
        return plan.Binary(
            str(node.op).lower(),
            _convert(node.lhs),
            _convert(node.rhs),
            bool(bin_modifier is not None and bin_modifier.return_bool),
            _matching(bin_modifier),
        )
    raise UnsupportedError(f"unsupported expression node {type(node).__name__}")
