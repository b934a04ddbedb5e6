"""Runs Prometheus' PromQL test scripts through dcmon's engine and classifies every ``eval``.

Each eval is *passed*, *failed* (a wrong answer, or the wrong error behaviour) or *unsupported*
(the engine raised UnsupportedError, or the eval expects native histogram values). Native
histogram samples are loaded as marked, opaque samples: the engine drops or counts them where
Prometheus does, and refuses the rest. An eval is *float-only* when it expects no histogram value
and none of its selectors matches a series holding a histogram sample. Like Prometheus'
``promqltest``, an instant eval is also re-run with every selector pinned by ``@ t`` at several
evaluation times (unless it calls a time-dependent function), and as a range query over
``[t-1m, t+1m]`` whose point at ``t`` must agree. Annotation expectations (``expect warn|info``)
are not checked: the engine emits none that the harness compares.

The engine runs with the test engine's options (lookback 5m, subquery step 1m).
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from server.promql import plan
from server.promql.engine import Engine
from server.promql.errors import PromQLError, UnsupportedError
from server.promql.functions import FUNCTIONS
from server.promql.functions_histogram import almost_equal as float_almost_equal
from server.promql.parse import parse
from server.promql.seam import MemorySeries, RawSeries, labels_match
from server.promql.values import Labels, Matrix, Scalar, String, Vector
from tests.server.promql.promqltest import (
    Clear,
    Eval,
    Load,
    SeriesLine,
    nhcb_series,
    parse_script,
)

EPSILON = 1e-6
_QUERY_CONTEXT = re.compile(r"(start|end|range|step)\(\)")


class Mismatch(Exception):
    """The engine's answer differs from the expected one."""


class HistogramSource:
    """The in-memory seam with native histogram samples loaded as marked, opaque samples (the
    engine drops, counts or refuses them). The histograms ``load_with_nhcb`` derives from
    classic buckets are not built: any selection reaching one is refused."""

    def __init__(self) -> None:
        self.series = MemorySeries()
        self.derived: set[Labels] = set()
        self.histogram_series: set[Labels] = set()

    def clear(self) -> None:
        self.series.clear()
        self.derived.clear()
        self.histogram_series.clear()

    def select(
        self, matchers: Sequence[plan.Matcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        if any(labels_match(labels, matchers) for labels in self.derived):
            raise UnsupportedError("native histograms built from classic buckets")
        return self.series.select(matchers, start_ms, end_ms)

    def reaches_histograms(self, node: plan.Expr) -> bool:
        """Returns: whether any selector of ``node`` matches a series holding histograms."""
        return any(
            labels_match(labels, matchers)
            for matchers in selector_matchers(node)
            for labels in self.histogram_series | self.derived
        )

    def load(self, command: Load) -> None:
        for line in command.series:
            if line.has_histogram:
                self.histogram_series.add(line.labels)
            points = [
                (i * command.interval_ms, p) for i, p in enumerate(line.points) if p is not None
            ]
            if points:
                self.series.add(
                    line.labels,
                    [t for t, _ in points],
                    [p if isinstance(p, float) else math.nan for _, p in points],
                    [not isinstance(p, float) for _, p in points],
                )
        if command.with_nhcb:
            self.derived.update(nhcb_series(command))


def selector_matchers(node: object) -> list[tuple[plan.Matcher, ...]]:
    """Returns: the matchers of every vector selector in ``node``."""
    if isinstance(node, plan.VectorSelector):
        return [tuple(node.matchers)]
    found: list[tuple[plan.Matcher, ...]] = []
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            for child in value if isinstance(value, tuple) else (value,):
                found.extend(selector_matchers(child))
    return found


def almost_equal(a: float, b: float) -> bool:
    """Prometheus' ``almost.Equal`` with promqltest's epsilon; NaN equals NaN, and the stale
    marker only itself."""
    stale_a, stale_b = _is_stale(a), _is_stale(b)
    if stale_a or stale_b:
        return stale_a and stale_b
    return float_almost_equal(a, b, EPSILON)


def _is_stale(value: float) -> bool:
    return struct.pack("<d", value) == struct.pack(
        "<d", float(np.uint64(0x7FF0000000000002).view(np.float64))
    )


# --- @ pinning (promqltest's atModifierTestCases) ----------------------------------------------


def _has_unsafe_call(node: object) -> bool:
    if isinstance(node, plan.Call):
        spec = FUNCTIONS.get(node.name)
        if spec is not None and spec.at_unsafe:
            return True
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            children = value if isinstance(value, tuple) else (value,)
            if any(_has_unsafe_call(child) for child in children):
                return True
    return False


def pin_at(node: plan.Expr, t_ms: int) -> plan.Expr:
    """Returns: ``node`` with ``@ t_ms`` on every selector and subquery that lacks one (nothing
    inside a subquery is touched: the subquery itself gets pinned)."""
    if isinstance(node, plan.VectorSelector):
        return node if node.at is not None else dataclasses.replace(node, at=t_ms)
    if isinstance(node, plan.MatrixSelector):
        return dataclasses.replace(node, selector=pin_at(node.selector, t_ms))  # type: ignore[arg-type]
    if isinstance(node, plan.Subquery):
        return node if node.at is not None else dataclasses.replace(node, at=t_ms)
    if isinstance(node, plan.Call):
        return dataclasses.replace(node, args=tuple(pin_at(a, t_ms) for a in node.args))
    if isinstance(node, plan.Aggregate):
        param = None if node.param is None else pin_at(node.param, t_ms)
        return dataclasses.replace(node, expr=pin_at(node.expr, t_ms), param=param)
    if isinstance(node, plan.Binary):
        return dataclasses.replace(node, lhs=pin_at(node.lhs, t_ms), rhs=pin_at(node.rhs, t_ms))
    if isinstance(node, plan.Unary):
        return dataclasses.replace(node, expr=pin_at(node.expr, t_ms))
    return node


# --- comparison ---------------------------------------------------------------------------------


def _fmt(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def _expected_points(
    line: SeriesLine, start_ms: int, step_ms: int, end_ms: int
) -> list[tuple[int, float]]:
    points = []
    for i, p in enumerate(line.points):
        t = start_ms + i * step_ms
        if t > end_ms:
            raise Mismatch(
                f"{_fmt(line.labels)}: {len(line.points)} expected points, more than the range"
            )
        if isinstance(p, float):
            points.append((t, p))
    return points


def _compare_series(
    actual: dict[Labels, list[tuple[int, float]]], expected: Sequence[SeriesLine], ev: Eval
) -> None:
    wanted = {line.labels: line for line in expected}
    for labels, points in actual.items():
        if labels not in wanted:
            raise Mismatch(f"unexpected series {_fmt(labels)} with {points}")
        want = _expected_points(wanted[labels], ev.start_ms, ev.step_ms, ev.end_ms)
        if len(want) != len(points):
            raise Mismatch(f"{_fmt(labels)}: expected {want}, got {points}")
        for (t_want, v_want), (t_got, v_got) in zip(want, points, strict=True):
            if t_want != t_got or not almost_equal(v_got, v_want):
                raise Mismatch(f"{_fmt(labels)}: expected {want}, got {points}")
    missing = [labels for labels in wanted if labels not in actual]
    if missing:
        raise Mismatch(f"expected series not found: {', '.join(_fmt(m) for m in missing)}")


def compare_instant(value: object, ev: Eval, check_order: bool = True) -> None:
    """Checks an instant query's value against the eval's expectation."""
    if ev.string is not None:
        if not isinstance(value, String) or value.value != ev.string:
            raise Mismatch(f"expected string {ev.string!r}, got {value!r}")
        return
    if ev.scalar is not None:
        if not isinstance(value, Scalar):
            raise Mismatch(f"expected scalar {ev.scalar}, got {type(value).__name__}")
        if not almost_equal(float(value.values[0]), ev.scalar):
            raise Mismatch(f"expected scalar {ev.scalar}, got {value.values[0]}")
        return
    if isinstance(value, Matrix):
        if ev.range_vector is None:
            raise Mismatch("got a range vector where an instant vector was expected")
        _compare_matrix(value, ev)
        return
    if not isinstance(value, Vector):
        raise Mismatch(f"expected a vector, got {type(value).__name__}")
    rows = [(s.labels, float(s.values[0])) for s in value.series if s.present[0]]
    if len({labels for labels, _ in rows}) != len(rows):
        raise Mismatch("result holds the same label set twice")
    if check_order and ev.ordered:
        got_order = [labels for labels, _ in rows]
        want_order = [line.labels for line in ev.series]
        if got_order != want_order:
            raise Mismatch(f"expected order {want_order}, got {got_order}")
    _compare_series({labels: [(ev.start_ms, v)] for labels, v in rows}, ev.series, ev)


def _compare_matrix(value: Matrix, ev: Eval) -> None:
    actual: dict[Labels, list[tuple[int, float]]] = {}
    for s in value.series:
        lo, hi = int(s.starts[0]), int(s.ends[0])
        if hi > lo:
            if s.labels in actual:
                raise Mismatch(f"range vector holds {_fmt(s.labels)} twice")
            actual[s.labels] = [
                (int(t), float(v)) for t, v in zip(s.ts[lo:hi], s.values[lo:hi], strict=True)
            ]
    _compare_series(actual, ev.series, ev)


def points_of(value: object, steps_ms: np.ndarray) -> dict[Labels, list[tuple[int, float]]]:
    """Returns: a range query's answer as points per series (label-sorted, gaps omitted)."""
    if isinstance(value, Scalar):
        return {(): [(int(t), float(v)) for t, v in zip(steps_ms, value.values, strict=True)]}
    if not isinstance(value, Vector):
        raise Mismatch(f"a range query returned {type(value).__name__}")
    out: dict[Labels, list[tuple[int, float]]] = {}
    for s in value.series:
        points = [
            (int(t), float(v)) for t, v, p in zip(steps_ms, s.values, s.present, strict=True) if p
        ]
        if not points:
            continue
        if s.labels in out:
            raise Mismatch(f"result holds {_fmt(s.labels)} twice")
        out[s.labels] = points
    return out


# --- running ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # "passed", "failed" or "unsupported"
    detail: str = ""
    float_only: bool = True  # no histogram expected, none in any series its selectors match


@dataclass
class FileReport:
    name: str
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == status)


def _expects_failure(ev: Eval, error: PromQLError) -> Outcome:
    fail = ev.fail
    if fail is None:
        return Outcome("failed", f"unexpected error: {error.message}")
    if not fail.matches(error.message):
        return Outcome("failed", f"error {error.message!r} does not match {fail}")
    return Outcome("passed")


class Runner:
    """Executes one script's commands against a fresh engine."""

    def __init__(self) -> None:
        self.source = HistogramSource()
        self.engine = Engine(self.source, lookback_ms=300_000, subquery_step_ms=60_000)

    def run(self, name: str, text: str) -> FileReport:
        report = FileReport(name)
        for command in parse_script(text, name):
            if isinstance(command, Clear):
                self.source.clear()
            elif isinstance(command, Load):
                self.source.load(command)
            elif isinstance(command, Eval):
                report.outcomes[command.line] = self.evaluate(command)
        return report

    def evaluate(self, ev: Eval) -> Outcome:
        outcome = self._outcome(ev)
        try:
            reaches = self.source.reaches_histograms(parse(ev.expr))
        except PromQLError:
            reaches = False
        return dataclasses.replace(outcome, float_only=not ev.has_histogram and not reaches)

    def _outcome(self, ev: Eval) -> Outcome:
        if ev.has_histogram:
            return Outcome("unsupported", "expects native histogram values")
        try:
            node = parse(ev.expr)
            if ev.instant:
                self._instant(node, ev)
            else:
                self._range(node, ev)
        except UnsupportedError as exc:
            return Outcome("unsupported", exc.message)
        except PromQLError as exc:
            return _expects_failure(ev, exc)
        except Mismatch as exc:
            return Outcome("failed", str(exc))
        except Exception as exc:  # a crash is a failure to report, not a reason to stop
            return Outcome("failed", f"crash: {type(exc).__name__}: {exc}")
        if ev.fail is not None:
            return Outcome("failed", "expected an error, got a result")
        return Outcome("passed")

    def _range(self, node: plan.Expr, ev: Eval) -> None:
        result = self.engine.range(node, ev.start_ms, ev.end_ms, ev.step_ms)
        if ev.fail is not None:
            return
        if ev.scalar is not None:
            raise Mismatch("a range query cannot give a scalar expectation")
        _compare_series(points_of(result.value, result.steps_ms), ev.series, ev)

    def _instant(self, node: plan.Expr, ev: Eval) -> None:
        at = ev.end_ms
        result = self.engine.instant(node, at)
        if ev.fail is not None:
            return
        compare_instant(result.value, ev)
        if not _has_unsafe_call(node):
            times = [-10 * at, 0, at // 5, at, 10 * at] if at else [-1000, 0, 1000]
            pinned = pin_at(node, at)
            for t in times:
                try:
                    compare_instant(self.engine.instant(pinned, t).value, ev)
                except Mismatch as exc:
                    raise Mismatch(
                        f"pinned with @ {at / 1000:g}, evaluated at {t / 1000:g}: {exc}"
                    ) from exc
        if ev.range_vector is not None or ev.string is not None or _QUERY_CONTEXT.search(ev.expr):
            return
        ranged = self.engine.range(node, at - 60_000, at + 60_000, 60_000)
        if ev.ordered:
            return
        at_t = {
            labels: [(t, v) for t, v in points if t == at]
            for labels, points in points_of(ranged.value, ranged.steps_ms).items()
        }
        at_t = {labels: points for labels, points in at_t.items() if points}
        try:
            if ev.scalar is not None:
                got = at_t.get((), [(at, math.nan)])[0][1]
                if not almost_equal(got, ev.scalar):
                    raise Mismatch(f"expected scalar {ev.scalar}, got {got}")
            else:
                _compare_series(at_t, ev.series, ev)
        except Mismatch as exc:
            raise Mismatch(f"in range mode: {exc}") from exc
