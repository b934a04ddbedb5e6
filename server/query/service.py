"""What each endpoint answers, over the engine and the series index; raises ``QueryError``.

Limits (settings): ``query_timeout_seconds`` (a request's ``timeout`` can only shorten it),
``query_max_samples`` (samples one query may load), and Prometheus' fixed 11,000 points per
series of a range query. The engine runs synchronously in the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from agent import __version__
from agent.wire.catalog import Catalog
from agent.wire.schema import LABEL_NAME_RE
from server.promql import plan
from server.promql.engine import Engine, Result
from server.promql.errors import PromQLError
from server.promql.parse import parse
from server.promql.values import NAME
from server.query.envelope import annotation_lists, query_data
from server.query.errors import QueryError, bad_param
from server.query.guard import check_subqueries
from server.query.params import MIN_MS, Params, parse_duration, parse_limit, parse_time
from server.query.source import Deadline, Found, StorageSource
from server.storage.reader import Reader
from server.storage.store import Store

MAX_POINTS_PER_SERIES: Final = 11_000
# The Prometheus version whose API and PromQL this one follows (Grafana picks features by it).
PROMETHEUS_VERSION: Final = "3.0.0"


@dataclass(frozen=True)
class QueryLimits:
    timeout_seconds: float
    max_samples: int


@dataclass(frozen=True)
class Answer:
    """A successful answer's ``data`` with its warnings and infos."""

    data: Any
    warnings: list[str]
    infos: list[str]


class QueryService:
    """The Prometheus query API over one store, reader and catalog."""

    def __init__(
        self,
        store: Store,
        reader: Reader,
        catalog: Catalog,
        limits: QueryLimits,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._reader = reader
        self._catalog = catalog
        self._limits = limits
        self._clock = clock

    # --- PromQL ---------------------------------------------------------------------------

    def instant(self, params: Params) -> Answer:
        expr = _parse_query(params)
        text = params.get("time")
        t_ms = self._now_ms() if text is None else parse_time(text, "time")
        limit = parse_limit(params.get("limit"))
        check_subqueries(expr, 0)
        source = self._source(params)
        engine = Engine(source)
        return self._answer(lambda: engine.instant(expr, t_ms), source, is_range=False, limit=limit)

    def range(self, params: Params) -> Answer:
        expr = _parse_query(params)
        start_ms = parse_time(_required(params, "start"), "start")
        end_ms = parse_time(_required(params, "end"), "end")
        step_ms = parse_duration(_required(params, "step"), "step")
        if end_ms < start_ms:
            raise bad_param("end", "end timestamp must not be before start time")
        if step_ms <= 0:
            raise bad_param(
                "step",
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
            )
        if (end_ms - start_ms) // step_ms > MAX_POINTS_PER_SERIES:
            raise QueryError(
                "bad_data",
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)",
            )
        if expr.type not in (plan.ValueType.SCALAR, plan.ValueType.VECTOR):
            raise QueryError(
                "bad_data",
                f'invalid parameter "query": invalid expression type "{_type_name(expr.type)}" '
                "for range query, must be Scalar or instant Vector",
            )
        limit = parse_limit(params.get("limit"))
        check_subqueries(expr, end_ms - start_ms)
        source = self._source(params)
        engine = Engine(source)
        return self._answer(
            lambda: engine.range(expr, start_ms, end_ms, step_ms),
            source,
            is_range=True,
            limit=limit,
        )

    def _source(self, params: Params) -> StorageSource:
        seconds = self._limits.timeout_seconds
        limit = f"limit: query_timeout_seconds = {seconds:g}"
        text = params.get("timeout")
        if text is not None:
            asked = parse_duration(text, "timeout") / 1000
            if 0 < asked < seconds:
                seconds, limit = asked, f"limit: timeout = {text}"
        deadline = Deadline.after(seconds, limit)
        return StorageSource(self._store, self._reader, deadline, self._limits.max_samples)

    def _answer(
        self, run: Callable[[], Result], source: StorageSource, *, is_range: bool, limit: int
    ) -> Answer:
        try:
            result = run()
        except RecursionError:
            raise QueryError("bad_data", "query is nested too deeply to evaluate") from None
        source.deadline.check("expression evaluation")
        data, truncated = query_data(result, is_range=is_range, limit=limit)
        warnings, infos = annotation_lists(result)
        return Answer(data, warnings + truncated, infos)

    # --- series and labels ----------------------------------------------------------------

    def series(self, params: Params) -> Answer:
        selectors = _selectors(params, required=True)
        found = self._find(selectors, params)
        rows = sorted({f.labels for f in found})
        return _limited([dict(labels) for labels in rows], params)

    def labels(self, params: Params) -> Answer:
        names: set[str] = set()
        for item in self._find(_selectors(params), params):
            names.update(name for name, _ in item.labels)
        return _limited(sorted(names), params)

    def label_values(self, name: str, params: Params) -> Answer:
        if not LABEL_NAME_RE.fullmatch(name):
            raise QueryError("bad_data", f"invalid label name: {name!r}")
        values: set[str] = set()
        for item in self._find(_selectors(params), params):
            values.update(value for key, value in item.labels if key == name)
        return _limited(sorted(values), params)

    def _find(self, selectors: list[plan.VectorSelector], params: Params) -> list[Found]:
        """Returns: the series any selector matches (all series without one), deduplicated;
        with ``start``, only series written since then (the index knows no first write)."""
        start = params.get("start")
        end = params.get("end")
        start_ms = None if start is None else parse_time(start, "start")
        if end is not None and start_ms is not None and parse_time(end, "end") < start_ms:
            raise bad_param("end", "end timestamp must not be before start time")
        if start_ms is not None and start_ms <= MIN_MS:
            start_ms = None
        source = self._source(params)
        everything = (plan.Matcher(NAME, plan.MatchOp.RE, ".+"),)
        chosen = [s.matchers for s in selectors] or [everything]
        seen: dict[int, Found] = {}
        for matchers in chosen:
            for item in source.find(matchers, since_ms=start_ms):
                seen.setdefault(item.series.id, item)
        return list(seen.values())

    # --- catalog and build ----------------------------------------------------------------

    def metadata(self, params: Params) -> Answer:
        limit = parse_limit(params.get("limit"))
        wanted = params.get("metric")
        stored = set(self._store.index.metrics())
        data: dict[str, list[dict[str, str]]] = {}
        for name in sorted(stored):
            spec = self._catalog.get(name)
            if spec is None or (wanted and name != wanted):
                continue
            if limit and len(data) >= limit:
                break
            data[name] = [{"type": spec.type, "help": spec.help, "unit": spec.unit}]
        return Answer(data, [], [])

    def exemplars(self, params: Params) -> Answer:
        """dcmon keeps no exemplars: a valid query gets an empty list."""
        if params.get("query") is not None:
            _parse_query(params)
        for name in ("start", "end"):
            text = params.get(name)
            if text is not None:
                parse_time(text, name)
        return Answer([], [], [])

    @staticmethod
    def buildinfo() -> Answer:
        data = {
            "version": PROMETHEUS_VERSION,
            "revision": f"dcmon-{__version__}",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }
        return Answer(data, [], [])

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise bad_param(name, f"missing {name}")
    return value


def _parse_query(params: Params) -> plan.Expr:
    text = _required(params, "query")
    try:
        return parse(text)
    except PromQLError as exc:
        raise bad_param("query", exc.message) from exc
    except ValueError as exc:  # the parser's binding lets a few of its own errors through
        raise bad_param("query", str(exc)) from exc
    except RecursionError:
        raise bad_param("query", "nested too deeply") from None


def _selectors(params: Params, *, required: bool = False) -> list[plan.VectorSelector]:
    texts = params.all("match[]")
    if required and not texts:
        raise QueryError("bad_data", "no match[] parameter provided")
    selectors = []
    for text in texts:
        try:
            expr = parse(text)
        except PromQLError as exc:
            raise bad_param("match[]", exc.message) from exc
        except ValueError as exc:  # as in _parse_query
            raise bad_param("match[]", str(exc)) from exc
        except RecursionError:
            raise bad_param("match[]", "nested too deeply") from None
        if not isinstance(expr, plan.VectorSelector):
            raise bad_param("match[]", f"{text!r} is not a series selector")
        selectors.append(expr)
    return selectors


def _limited(rows: list[Any], params: Params) -> Answer:
    limit = parse_limit(params.get("limit"))
    if limit and len(rows) > limit:
        return Answer(rows[:limit], ["results truncated due to limit"], [])
    return Answer(rows, [], [])


def _type_name(value_type: plan.ValueType) -> str:
    names = {plan.ValueType.MATRIX: "range vector", plan.ValueType.STRING: "string"}
    return names.get(value_type, value_type.value)
