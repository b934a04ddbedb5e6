"""The function table's interface: what the engine needs to know about, and call in, a function.

functions.py (and its siblings) fill ``FUNCTIONS: dict[str, FunctionSpec]``. The engine type-checks
a call against ``arg_types`` / ``variadic``, evaluates each argument over the whole step grid
(see values.py for what each argument looks like), calls ``impl(ctx, call, args)``, and, when
``drops_name`` is set, marks every output series' ``drop_name`` (delayed ``__name__`` removal).
An implementation keeps the ``drop_name`` of its inputs (e.g. ``last_over_time`` over a flagged
subquery) and may clear it (``label_replace`` with ``dst="__name__"``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

from server.promql.plan import Call, ValueType
from server.promql.values import IntArray, Value


@dataclass
class Annotations:
    """Prometheus' warnings and infos, without the "PromQL warning: " prefix, deduplicated."""

    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def info(self, message: str) -> None:
        if message not in self.infos:
            self.infos.append(message)


@dataclass(frozen=True)
class EvalContext:
    """The query a node is evaluated for: the step grid and the query's bounds, in ms.

    ``steps_ms`` is the grid the node's values cover (inside a subquery, the subquery's grid).
    ``start_ms``/``end_ms``/``step_ms`` are the outer query's (``step_ms`` is 0 for an instant
    query), as ``start()``, ``end()`` and ``step()`` see them.
    """

    steps_ms: IntArray
    start_ms: int
    end_ms: int
    step_ms: int
    lookback_ms: int
    annotations: Annotations

    @property
    def num_steps(self) -> int:
        return len(self.steps_ms)


FunctionImpl = Callable[[EvalContext, Call, list[Value]], Value]


@dataclass(frozen=True)
class FunctionSpec:
    """One PromQL function.

    ``variadic`` follows Prometheus: 0 means exactly ``arg_types``; ``n > 0`` means the last ``n``
    argument types are optional; -1 means the last type repeats any number of times (>= 0 extra).
    ``at_unsafe`` marks functions never folded under ``@`` (time(), timestamp(), date functions,
    predict_linear): the conformance harness does not re-run them pinned.
    """

    name: str
    arg_types: tuple[ValueType, ...]
    return_type: ValueType
    impl: FunctionImpl
    variadic: int = 0
    drops_name: bool = True
    experimental: bool = False
    at_unsafe: bool = False


def default_functions() -> Mapping[str, FunctionSpec]:
    """Returns: the table in server.promql.functions, or an empty one before it exists."""
    try:
        module = importlib.import_module("server.promql.functions")
    except ModuleNotFoundError:
        return {}
    return cast(Mapping[str, FunctionSpec], module.FUNCTIONS)
