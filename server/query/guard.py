"""A check of a query's plan before it runs: no subquery may ask for a step grid so fine that
building it alone would exhaust memory (``up[1y:1ms]`` is 31.5 billion steps).

The engine evaluates a subquery's inner expression once over its whole grid, so the grid's
length bounds the work; Prometheus bounds it only through its samples limit, counted while it
runs. Here the engine's own bound (which it checks again, exactly, before it builds a grid)
is checked up front, from the plan alone, before any series is read.
"""

from __future__ import annotations

from server.promql import plan
from server.promql.engine import DEFAULT_MAX_SUBQUERY_STEPS as MAX_SUBQUERY_STEPS
from server.promql.engine import DEFAULT_SUBQUERY_STEP_MS
from server.query.errors import QueryError


def check_subqueries(expr: plan.Expr, span_ms: int) -> None:
    """Raises: QueryError (execution) when a subquery's grid, over ``span_ms`` (the outer
    query's end - start; 0 for an instant query), has more than MAX_SUBQUERY_STEPS steps."""
    if isinstance(expr, plan.Subquery):
        step_ms = expr.step_ms or DEFAULT_SUBQUERY_STEP_MS
        steps = (span_ms + expr.range_ms) // step_ms + 1
        if steps > MAX_SUBQUERY_STEPS:
            raise QueryError(
                "execution",
                f"a subquery's range and step ask for {steps} steps; the limit is "
                f"{MAX_SUBQUERY_STEPS} (use a larger subquery step)",
            )
        check_subqueries(expr.expr, span_ms + expr.range_ms)
    elif isinstance(expr, plan.MatrixSelector):
        check_subqueries(expr.selector, span_ms)
    elif isinstance(expr, plan.Call):
        for arg in expr.args:
            check_subqueries(arg, span_ms)
    elif isinstance(expr, plan.Aggregate):
        check_subqueries(expr.expr, span_ms)
        if expr.param is not None:
            check_subqueries(expr.param, span_ms)
    elif isinstance(expr, plan.Binary):
        check_subqueries(expr.lhs, span_ms)
        check_subqueries(expr.rhs, span_ms)
    elif isinstance(expr, plan.Unary):
        check_subqueries(expr.expr, span_ms)
