"""What each endpoint answers, over the engine and the series index; raises ``QueryError``.

Limits (settings): ``query_timeout_seconds`` (a request's ``timeout`` can only shorten it),
``query_max_samples`` (samples one query may load), and Prometheus' fixed 11,000 points per
series of a range query. The engine runs synchronously in the caller's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from agent import __version__
from agent.wire.catalog import Catalog
from agent.wire.schema import LABEL_NAME_RE
from server.promql import plan
from server.promql.engine import DEFAULT_LOOKBACK_MS, Engine, Result
from server.promql.errors import PromQLError
from server.promql.parse import parse
from server.promql.values import NAME
from server.query.envelope import annotation_lists, query_data
from server.query.errors import QueryError, bad_param
from server.query.guard import check_subqueries
from server.query.params import MIN_MS, Params, parse_duration, parse_limit, parse_time
from server.query.source import Deadline, Found, StaleRule, StorageSource
from server.storage.reader import Reader
from server.storage.store import NodeNaming, Store

MAX_POINTS_PER_SERIES: Final = 11_000
# The Prometheus version whose API and PromQL this one follows (Grafana picks features by it).
PROMETHEUS_VERSION: Final = "3.0.0"


@dataclass(frozen=True)
class QueryLimits:
    timeout_seconds: float
    max_samples: int
    stale_after_intervals: float = 3.0
    stale_after_min_seconds: float = 30.0


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
        engine = Engine(source, lookback_ms=_lookback_ms(params))
        return self._answer(
            lambda: engine.instant(expr, t_ms), source, params, is_range=False, limit=limit
        )

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
        engine = Engine(source, lookback_ms=_lookback_ms(params))
        return self._answer(
            lambda: engine.range(expr, start_ms, end_ms, step_ms),
            source,
            params,
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
        limits = self._limits
        rule = StaleRule(limits.stale_after_intervals, limits.stale_after_min_seconds, self._clock)
        return StorageSource(
            self._store, self._reader, deadline, limits.max_samples, rule, self._catalog
        )

    def _answer(
        self,
        run: Callable[[], Result],
        source: StorageSource,
        params: Params,
        *,
        is_range: bool,
        limit: int,
    ) -> Answer:
        started = time.perf_counter()
        try:
            result = run()
        except RecursionError:
            raise QueryError("bad_data", "query is nested too deeply to evaluate") from None
        source.deadline.check("expression evaluation")
        evaluated = time.perf_counter()
        data, truncated = query_data(result, is_range=is_range, limit=limit)
        if params.get("stats"):
            data["stats"] = query_stats(
                evaluated - started, time.perf_counter() - evaluated, source.samples_loaded
            )
        warnings, infos = annotation_lists(result)
        return Answer(data, warnings + truncated, infos)

    # --- series and labels ----------------------------------------------------------------

    def series(self, params: Params) -> Answer:
        selectors = _selectors(params, required=True)
        found = self._find(selectors, params)
        rows = sorted({f.labels for f in found})
        return _limited([dict(labels) for labels in rows], params)

    def labels(self, params: Params) -> Answer:
        selectors = _selectors(params)
        if not selectors:
            return _limited(sorted(self._index_names(params)), params)
        names: set[str] = set()
        for item in self._find(selectors, params):
            names.update(name for name, _ in item.labels)
        return _limited(sorted(names), params)

    def label_values(self, name: str, params: Params) -> Answer:
        if not LABEL_NAME_RE.fullmatch(name):
            raise QueryError("bad_data", f"invalid label name: {name!r}")
        selectors = _selectors(params)
        if not selectors and name == NAME:
            return _limited(sorted(self._index_metrics(params)), params)
        values: set[str] = set()
        for item in self._find(selectors, params):
            values.update(value for key, value in item.labels if key == name)
        return _limited(sorted(values), params)

    def _index_metrics(self, params: Params) -> dict[str, set[int]]:
        """Returns: metric name -> pks of the known nodes with a series of it (written since
        ``start`` when given), from the series index alone: no series' labels are parsed."""
        start_ms = _since_ms(params)
        index = self._store.index
        nodes = self._nodes()
        found: dict[str, set[int]] = {}
        for metric in index.metrics():
            for node_pk, series in index.metric(metric).items():
                if node_pk in nodes and any(
                    start_ms is None or (index.seen_ms(item.id) or 0) >= start_ms for item in series
                ):
                    found.setdefault(metric, set()).add(node_pk)
        return found

    def _nodes(self) -> dict[int, NodeNaming]:
        try:
            return self._store.node_naming()
        except SQLAlchemyError as exc:
            raise QueryError("internal", f"reading nodes failed: {exc}") from exc

    def _index_names(self, params: Params) -> set[str]:
        """Returns: label names of every series, from the index's names per metric and the
        nodes' label names (with ``start``: of the metrics written since then; a name only
        older series of such a metric had is listed too, as Prometheus lists a block's)."""
        found = self._index_metrics(params)
        if not found:
            return set()
        nodes = self._nodes()
        names = {NAME, "instance"}
        for metric, node_pks in found.items():
            names.update(self._store.index.label_names(metric))
            for pk in node_pks:
                names.update(nodes[pk].labels)
        return names

    def _find(self, selectors: list[plan.VectorSelector], params: Params) -> list[Found]:
        """Returns: the series any selector matches (all series without one), deduplicated;
        with ``start``, only series written since then (the index knows no first write)."""
        start_ms = _since_ms(params)
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


def _since_ms(params: Params) -> int | None:
    """Returns: ``start`` in ms, None when absent or at Prometheus' minimum time.
    Raises: QueryError when ``start`` or ``end`` is bad or ``end`` is before ``start``."""
    start = params.get("start")
    end = params.get("end")
    start_ms = None if start is None else parse_time(start, "start")
    end_ms = None if end is None else parse_time(end, "end")
    if end_ms is not None and start_ms is not None and end_ms < start_ms:
        raise bad_param("end", "end timestamp must not be before start time")
    if start_ms is not None and start_ms <= MIN_MS:
        return None
    return start_ms


def _lookback_ms(params: Params) -> int:
    """Returns: the ``lookback_delta`` parameter in ms; the engine's 5 minutes when absent,
    zero or negative (as Prometheus)."""
    text = params.get("lookback_delta")
    if text is None or text == "":
        return DEFAULT_LOOKBACK_MS
    ms = parse_duration(text, "lookback_delta")
    return ms if ms > 0 else DEFAULT_LOOKBACK_MS


def query_stats(eval_seconds: float, encode_seconds: float, samples: int) -> dict[str, Any]:
    """Returns: ``data.stats`` of a query asked with ``stats``: Prometheus' timings (seconds;
    dcmon queues no query and prepares it inside evaluation) and the raw samples loaded from
    storage (Prometheus counts samples per step instead; dcmon keeps no per-step counts)."""
    return {
        "timings": {
            "evalTotalTime": eval_seconds + encode_seconds,
            "resultSortTime": encode_seconds,
            "queryPreparationTime": 0.0,
            "innerEvalTime": eval_seconds,
            "execQueueTime": 0.0,
            "execTotalTime": eval_seconds + encode_seconds,
        },
        "samples": {"totalQueryableSamples": samples},
    }


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
