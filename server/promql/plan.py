"""The typed plan: dcmon's own PromQL syntax tree, built once from the parser's AST (parse.py).

Every node is a frozen dataclass, so plans can be compared, hashed and rewritten with
``dataclasses.replace`` (the conformance harness pins selectors with ``@`` that way). Times are
int64 milliseconds; offsets are already signed; parentheses are gone. ``type`` on each node is
its PromQL value type.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass

from server.promql.regex import compile_re2


class ValueType(enum.Enum):
    """PromQL value types (Prometheus' ``parser.ValueType``)."""

    SCALAR = "scalar"
    VECTOR = "vector"
    MATRIX = "matrix"
    STRING = "string"


class MatchOp(enum.Enum):
    """Label matcher operators."""

    EQUAL = "="
    NOT_EQUAL = "!="
    RE = "=~"
    NOT_RE = "!~"


@dataclass(frozen=True)
class Matcher:
    """One label matcher; regexes are fully anchored and ``.`` matches newlines (Prometheus 3),
    RE2's inline flags are scoped for Python (regex.py)."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.op in (MatchOp.RE, MatchOp.NOT_RE) and self._regex is None:
            object.__setattr__(self, "_regex", compile_re2(self.value))

    def matches(self, value: str) -> bool:
        """Returns: whether a label value (``""`` when the label is absent) satisfies this."""
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op is MatchOp.RE else not hit


class AtEdge(enum.Enum):
    """``@ start()`` / ``@ end()``: resolved to the query's start or end time."""

    START = "start"
    END = "end"


# ``@`` modifier: a pinned time in ms, a query edge, or None when absent.
At = int | AtEdge


@dataclass(frozen=True)
class NumberLiteral:
    value: float

    @property
    def type(self) -> ValueType:
        return ValueType.SCALAR


@dataclass(frozen=True)
class StringLiteral:
    value: str

    @property
    def type(self) -> ValueType:
        return ValueType.STRING


@dataclass(frozen=True)
class VectorSelector:
    """``name{matchers} offset o @ t``; ``matchers`` include the ``__name__`` one, if any."""

    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at: At | None = None

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR


@dataclass(frozen=True)
class MatrixSelector:
    """``selector[range]``: windows ``(t - offset - range, t - offset]`` per step."""

    selector: VectorSelector
    range_ms: int

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX


@dataclass(frozen=True)
class Subquery:
    """``expr[range:step] offset o @ t``; ``step_ms`` None means the engine's default step."""

    expr: Expr
    range_ms: int
    step_ms: int | None = None
    offset_ms: int = 0
    at: At | None = None

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX


@dataclass(frozen=True)
class Call:
    """A function call; ``return_type`` comes from the parser's function signature."""

    name: str
    args: tuple[Expr, ...]
    return_type: ValueType = ValueType.VECTOR

    @property
    def type(self) -> ValueType:
        return self.return_type


# Aggregation operators taking a parameter before the vector.
PARAM_AGGREGATIONS = frozenset(
    {"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"}
)


@dataclass(frozen=True)
class Aggregate:
    """``op by|without (grouping) ([param,] expr)``; no clause is ``by ()``."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR


class Cardinality(enum.Enum):
    ONE_TO_ONE = "one-to-one"
    MANY_TO_ONE = "many-to-one"  # group_left
    ONE_TO_MANY = "one-to-many"  # group_right
    MANY_TO_MANY = "many-to-many"  # set operators


@dataclass(frozen=True)
class VectorMatching:
    """How two vectors pair up: ``on(labels)`` if ``on`` else ``ignoring(labels)``."""

    card: Cardinality = Cardinality.ONE_TO_ONE
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()  # group_left/group_right labels copied from the one side


ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
COMPARISON_OPS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPS = frozenset({"and", "or", "unless"})


@dataclass(frozen=True)
class Binary:
    """``lhs op [bool] [on|ignoring(...)] [group_x(...)] rhs``; ``matching`` between vectors."""

    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching | None = None

    @property
    def type(self) -> ValueType:
        if ValueType.VECTOR in (self.lhs.type, self.rhs.type):
            return ValueType.VECTOR
        return ValueType.SCALAR


@dataclass(frozen=True)
class Unary:
    """``-expr`` or ``+expr``."""

    op: str
    expr: Expr

    @property
    def type(self) -> ValueType:
        return self.expr.type


Expr = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | Subquery
    | Call
    | Aggregate
    | Binary
    | Unary
)


def walk(node: object) -> Iterator[object]:
    """Yields: ``node`` and every plan node below it, depth first (matchers are leaves of
    their selector, not nodes)."""
    yield node
    if is_dataclass(node) and not isinstance(node, type):
        for item in fields(node):
            value = getattr(node, item.name)
            for child in value if isinstance(value, tuple) else (value,):
                if is_dataclass(child) and not isinstance(child, Matcher | type):
                    yield from walk(child)
