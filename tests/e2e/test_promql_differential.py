"""dcmon's PromQL beside a real Prometheus on the same live samples: the answers must agree.

Prometheus 2.42 scrapes a real node_exporter, a dcmon server's ``/metrics`` (an agent with
simulated GPUs pushes to it) and itself every second, evaluates a few recording rules, and
remote-writes all of it to a second dcmon server (``tests/e2e/promql_stack.py``). Once that
server holds every sample Prometheus holds, each query (``tests/e2e/promql_queries.py``:
hand-written ones over selectors, range functions, aggregations, binary and set operations,
subqueries, label, histogram, time and math functions; every target of Grafana dashboard 12239;
the targets of dashboard 1860 that answer on Prometheus) is asked of both as an instant query
and as a range query, at times off every sample's millisecond. Answers must have the same
series, the same timestamps and values within 1e-9 relative (NaN equals NaN).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.promql_compare import differences, order_differences, series_count
from tests.e2e.promql_queries import (
    EXPECTED_EMPTY,
    HAND_WRITTEN,
    KNOWN_DIFFERENCES,
    SUBQUERIES_WITH_INNER_RANGES,
    dashboard_targets,
    fill,
)
from tests.e2e.promql_stack import (
    QueryFailed,
    Stack,
    ask,
    grid_offsets_ms,
    off_grid,
    running_stack,
    wait_caught_up,
)
from tests.integration import require_binary

# The shared setup (about 100 s: a run of samples, then every query) runs in the first test.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
NODE_EXPORTER_FULL = SHARED / "data" / "grafana" / "node-exporter-full.json"
DCGM_DASHBOARD = SHARED / "data" / "grafana" / "dcgm-exporter-dashboard.json"
RANGE_SECONDS = 40
STEP_SECONDS = 5
LONGEST_WINDOW_SECONDS = 45  # the longest range, subquery range plus offset of the queries
# Every window of a range query starts after the first samples, with a margin: a counter that
# starts during the run (Prometheus' own) has a small first value, and 2.42 applies rate's
# zero clamp before the 1.1 x average spacing test where Prometheus 3 applies it after, so a
# window reaching past the series' start may extrapolate differently.
START_MARGIN_SECONDS = 5
COLLECT_SECONDS = RANGE_SECONDS + LONGEST_WINDOW_SECONDS + START_MARGIN_SECONDS
SETTLE_SECONDS = 2.0  # the evaluation time sits this far (and up to 2 s more) before now
MIN_QUERIES = 150


@dataclass(frozen=True)
class Answer:
    data: dict[str, Any] | None
    error: str = ""


@dataclass(frozen=True)
class Asked:
    template: str  # the query before its variables are filled
    query: str
    source: str  # "hand-written", "1860" or "12239"
    kind: str  # "instant" or "range"
    dcmon: Answer
    prometheus: Answer

    def problems(self) -> list[str]:
        ours, theirs = self.dcmon, self.prometheus
        if ours.data is None or theirs.data is None:
            if ours.data is None and theirs.data is None and _kind(ours) == _kind(theirs):
                return []  # both refuse it, with the same status and error type
            return [f"dcmon error: {ours.error or '-'}; Prometheus error: {theirs.error or '-'}"]
        problems = differences(ours.data, theirs.data)
        if not problems and self.kind == "instant" and self.template.startswith("sort"):
            problems = order_differences(ours.data, theirs.data)
        return problems

    def empty_on_prometheus(self) -> bool:
        data = self.prometheus.data
        return data is None or series_count(data) == 0


def _kind(answer: Answer) -> str:
    """Returns: an error's status and type ("422 execution"), without its message."""
    return answer.error.split(":", 1)[0]


@dataclass(frozen=True)
class Run:
    asked: list[Asked]
    known: list[Asked]
    skipped_1860: list[str]  # targets empty on Prometheus: their metrics do not exist here
    eval_time: float


def _answer(client: httpx.Client, base: str, endpoint: str, params: dict[str, str]) -> Answer:
    try:
        return Answer(ask(client, base, endpoint, params))
    except QueryFailed as exc:
        return Answer(None, str(exc))


def _ask_both(
    client: httpx.Client, stack: Stack, template: str, source: str, at: float
) -> list[Asked]:
    query = fill(template, stack.node_exporter_instance)
    instant = {"query": query, "time": f"{at:.3f}"}
    ranged = {
        "query": query,
        "start": f"{at - RANGE_SECONDS:.3f}",
        "end": f"{at:.3f}",
        "step": str(STEP_SECONDS),
    }
    out = []
    for kind, endpoint, params in (("instant", "query", instant), ("range", "query_range", ranged)):
        theirs = _answer(client, stack.prometheus_url, endpoint, params)
        ours = _answer(client, stack.dcmon_url, endpoint, params)
        out.append(Asked(template, query, source, kind, ours, theirs))
    return out


def _templates() -> list[tuple[str, str]]:
    """Returns: every (query template, source) to ask, each template once."""
    out: list[tuple[str, str]] = [(q, "hand-written") for q in HAND_WRITTEN]
    out += [(q, "12239") for q in dashboard_targets(DCGM_DASHBOARD)]
    out += [(q, "1860") for q in dashboard_targets(NODE_EXPORTER_FULL)]
    seen: set[str] = set()
    distinct = []
    for template, source in out:
        if template not in seen:
            seen.add(template)
            distinct.append((template, source))
    return distinct


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    prometheus = require_binary("prometheus")
    node_exporter = require_binary("prometheus-node-exporter", "node_exporter")
    tmp_path = tmp_path_factory.mktemp("promql-differential")
    with (
        running_stack(tmp_path, prometheus, node_exporter, COLLECT_SECONDS) as stack,
        httpx.Client(timeout=60.0) as client,
    ):
        earliest = stack.started_at + START_MARGIN_SECONDS + COLLECT_SECONDS + 2.0
        time.sleep(max(0.0, earliest + SETTLE_SECONDS - time.time()))
        latest = time.time() - SETTLE_SECONDS
        offsets = grid_offsets_ms(client, stack, latest)
        at = off_grid(latest, offsets)
        assert at - RANGE_SECONDS - LONGEST_WINDOW_SECONDS > stack.started_at + START_MARGIN_SECONDS
        stored_differently = {k.metric for k in KNOWN_DIFFERENCES if k.stored_differently}
        wait_caught_up(client, stack, at, timeout=60.0, skip=stored_differently)
        asked: list[Asked] = []
        skipped: list[str] = []
        templates = _templates()
        if 0 in offsets:
            left_out = sorted(SUBQUERIES_WITH_INNER_RANGES)
            print(f"\na sample sits on a whole second, so these are left out: {left_out}")
            templates = [t for t in templates if t[0] not in SUBQUERIES_WITH_INNER_RANGES]
        for template, source in templates:
            pair = _ask_both(client, stack, template, source, at)
            if source == "1860" and all(a.empty_on_prometheus() for a in pair):
                skipped.append(template)
                continue
            asked += pair
        known = []
        for item in KNOWN_DIFFERENCES:
            known += _ask_both(client, stack, item.query, "known", at)
        yield Run(asked, known, skipped, at)


def test_query_lists_are_consistent() -> None:
    assert set(HAND_WRITTEN) >= SUBQUERIES_WITH_INNER_RANGES
    assert set(HAND_WRITTEN) >= EXPECTED_EMPTY
    assert len(set(HAND_WRITTEN)) == len(HAND_WRITTEN), "a hand-written query is repeated"


def test_enough_distinct_queries_from_every_source(run: Run) -> None:
    queries = {a.query for a in run.asked}
    by_source = {s: {a.query for a in run.asked if a.source == s} for s in ("1860", "12239")}
    print(
        f"\n{len(queries)} distinct queries ({len(by_source['1860'])} of dashboard 1860, "
        f"{len(by_source['12239'])} of 12239), {len(run.skipped_1860)} 1860 targets without "
        f"data here; {len(run.asked)} asked (instant and range) at {run.eval_time:.3f}"
    )
    assert len(queries) >= MIN_QUERIES
    assert len(by_source["12239"]) == len(dashboard_targets(DCGM_DASHBOARD))
    assert len(by_source["1860"]) >= 100, "dashboard 1860 barely answers: " + str(
        run.skipped_1860[:5]
    )


def test_hand_written_queries_are_not_vacuous(run: Run) -> None:
    """Every hand-written query answers something on Prometheus, as an instant or a range
    query, but the few expected to be empty; so no agreement is two empty answers by accident."""
    hand = [a for a in run.asked if a.source == "hand-written"]
    answering = {a.template for a in hand if not a.empty_on_prometheus()}
    empty = {a.template for a in hand} - answering
    assert empty == EXPECTED_EMPTY, sorted(empty ^ EXPECTED_EMPTY)


def test_dcmon_answers_as_prometheus_does(run: Run) -> None:
    failures = [(a, a.problems()) for a in run.asked]
    failures = [(a, p) for a, p in failures if p]
    both_refused = [a for a in run.asked if a.dcmon.data is None and a.prometheus.data is None]
    agreed = len(run.asked) - len(failures)
    print(
        f"\n{len({a.query for a in run.asked})} queries, {len(run.asked)} asked "
        f"({sum(a.kind == 'instant' for a in run.asked)} instant, "
        f"{sum(a.kind == 'range' for a in run.asked)} range): {agreed} agree, "
        f"{len(failures)} differ, {len(both_refused)} refused by both"
    )
    for a in both_refused:
        print(f"  refused by both ({a.kind}): {a.query}: {a.prometheus.error}")
    report = [f"[{a.source} {a.kind}] {a.query}\n    " + "\n    ".join(p) for a, p in failures]
    assert not failures, f"{len(failures)} answers differ:\n" + "\n".join(report)


def test_known_differences_still_differ(run: Run) -> None:
    """The known differences are real and current: each differs on both kinds of query, and
    this fails once one agrees, so that its entry is removed."""
    reasons = {k.query: k.reason for k in KNOWN_DIFFERENCES}
    agreeing = [f"[{a.kind}] {a.query}" for a in run.known if not a.problems()]
    for a in run.known:
        print(
            f"\nknown ({a.kind}) {a.query}: {reasons[a.template]}\n    "
            + "\n    ".join(a.problems())
        )
    assert not agreeing, f"these now agree; remove them from KNOWN_DIFFERENCES: {agreeing}"
    assert all(not a.empty_on_prometheus() for a in run.known)
