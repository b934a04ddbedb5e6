"""Grafana dashboards 1860 (node exporter full) and 12239 (DCGM exporter) with dcmon as their
Prometheus data source: every panel target that returns data from a Prometheus scraping dcmon
returns the same data from dcmon's ``/prometheus/api/v1/``.

Started on 127.0.0.1: dcmon server A, dcmon server B, Prometheus 2.42 scraping A's
``/metrics?timestamps=true`` every second (``honor_labels``: ``instance`` stays the node's name;
``honor_timestamps``: each sample is stored at dcmon's own time) and remote-writing what it
stores to B, and only then an agent of simulated GPUs pushing to A every 2 s. So Prometheus
holds exactly A's samples, and B exactly Prometheus'. Each target is compared twice:

- **dcmon itself** (A, the acceptance): the dashboard's variables resolved on A, as Grafana
  would with dcmon as its data source. Prometheus adds ``job`` (the scrape job's name) to what
  it scrapes and dcmon's series have none, so ``$job`` has no values on A and is empty, as in
  Grafana (``job=""`` matches a series without ``job``), and ``job`` is removed from
  Prometheus' answers before comparing;
- **remote-written** (B): the same expression as on Prometheus, the answers compared as they
  are.

Every target ``expr`` of both dashboards (rows' panels too) gets Grafana's variables: ``$job``,
``$nodename``, ``$node`` from the dashboards' own ``label_values`` variable queries (the first
value, as Grafana picks), ``$instance`` and ``$gpu`` as "All" (every value, as a regex
alternation), ``$__interval`` 5 s (the range step), ``$__rate_interval`` 6 s (Grafana's
max(interval + scrape interval, 4 scrape intervals)), ``$__range`` the range. Each is asked as
an instant query and as a range query, at times a few ms off every sample's millisecond:
Prometheus 2's range windows are closed on the left and dcmon's (Prometheus 3's) open, so a
sample exactly on a window's edge would count in one only.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import agent_argv, get, running, server_spec, wait_for
from tests.e2e.promql_compare import differences
from tests.integration import free_port, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DASHBOARDS = Path(__file__).parents[2] / ".." / "shared" / "data" / "grafana"
FILES = {"1860": "node-exporter-full.json", "12239": "dcgm-exporter-dashboard.json"}
COLLECT_SECONDS = 40
RANGE_SECONDS = 30
STEP_SECONDS = 5
RATE_INTERVAL = "6s"
NODE_NAME = "dash-node"
# Targets where dcmon and Prometheus are known to differ, with why: each must still differ, so a
# fix shows up as a failure here and the entry is removed.
KNOWN_DIFFERENCES: dict[str, str] = {}


@dataclass(frozen=True)
class Systems:
    prometheus: str  # the base URL before /api/v1
    dcmon: str  # server B: Prometheus' samples, remote-written
    native: str  # server A: the agent's own pushes


def _config(server_a: int, server_b: int, token_file: Path) -> str:
    return f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: dcmon
    honor_labels: true
    honor_timestamps: true
    params: {{timestamps: ["true"]}}
    static_configs: [{{targets: ["127.0.0.1:{server_a}"]}}]
remote_write:
  - url: http://127.0.0.1:{server_b}/api/v1/write
    authorization:
      credentials_file: {token_file}
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 1s}}
"""


@contextmanager
def stack(tmp_path: Path, prometheus: str) -> Iterator[Systems]:
    """Server A with an agent, server B, Prometheus scraping A and writing to B, for
    COLLECT_SECONDS; everything stopped at the end."""
    with ExitStack() as stack:
        specs = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            # B holds only what Prometheus wrote to it, to be compared sample by sample.
            spec = server_spec(tmp_path / name, self_series=name == "a")
            stack.enter_context(running(spec.argv, tmp_path / f"server-{name}.log"))
            specs.append(spec)
        spec_a, spec_b = specs
        for spec in specs:
            wait_for(lambda s=spec: get(s.url + "/readyz").status_code == 200, 60, "dcmon ready")
        # Prometheus first, so it scrapes every batch the agent pushes from the first one.
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(_config(spec_a.port, spec_b.port, spec_b.token_file))
        argv = [
            prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        ]  # fmt: skip
        stack.enter_context(running(argv, tmp_path / "prometheus.log"))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(url + "/-/ready").status_code == 200, 60, "Prometheus ready")
        scraped = f"{url}/api/v1/query?query=up"
        wait_for(lambda: '"1"' in get(scraped).text, 30, "Prometheus' first scrape of A")
        # Pushes every 2 s, scraped every 1 s: no batch is replaced before Prometheus saw it.
        agent = agent_argv(
            tmp_path / "a", spec_a, "--gpu-backend", "simulated", "--simulated-gpus", "2",
            "--node-name", NODE_NAME, "--interval", "2",
        )  # fmt: skip
        stack.enter_context(running(agent, tmp_path / "agent.log"))
        wait_for(
            lambda: "DCGM_FI_DEV_GPU_TEMP{" in get(spec_a.url + "/metrics").text,
            30,
            "the agent's samples on server A's /metrics",
        )
        time.sleep(COLLECT_SECONDS)
        yield Systems(url, spec_b.url + "/prometheus", spec_a.url + "/prometheus")


def ask(client: httpx.Client, base: str, endpoint: str, params: dict[str, str]) -> Any:
    """Returns: ``data`` of a success envelope; raises AssertionError with the error otherwise.
    Sent as Grafana sends it: a form POST, but a GET for label values (a GET-only endpoint)."""
    url = f"{base}/api/v1/{endpoint}"
    if endpoint.startswith("label/"):
        response = client.get(url, params=params)
    else:
        response = client.post(url, data=params)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (
        f"{base} {endpoint} {params}: {response.status_code} {body}"
    )
    return body["data"]


# --- the dashboards' targets ---------------------------------------------------------------


def targets(dashboard: dict[str, Any]) -> list[str]:
    """Returns: every panel target's ``expr``, rows' nested panels included, in order."""
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.*),\s*)?(\w+)\)$")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Returns: ``expr`` with each ``$var``, ``${var}``, ``${var:fmt}``, ``[[var]]`` replaced."""

    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(one, expr)


def _regex_escape(value: str) -> str:
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", value)


def variables(
    client: httpx.Client, base: str, dashboard: dict[str, Any], at: float
) -> dict[str, str]:
    """Returns: each query variable's value as Grafana sets it (its ``label_values`` query
    asked in order, each using the values before it; empty when it has none), plus Grafana's
    built-in intervals."""
    values = {
        "__interval": f"{STEP_SECONDS}s",
        "__interval_ms": str(STEP_SECONDS * 1000),
        "__rate_interval": RATE_INTERVAL,
        "__range": f"{RANGE_SECONDS}s",
        "__range_s": str(RANGE_SECONDS),
        "__range_ms": str(RANGE_SECONDS * 1000),
    }
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(substitute(text, values))
        assert match, f"not a label_values variable: {text}"
        selector, label = match.groups()
        params = {"start": str(at - 3600), "end": str(at)}
        if selector:
            params["match[]"] = selector
        found: list[str] = ask(client, base, f"label/{label}/values", params)
        if not found:
            values[variable["name"]] = ""
        elif variable.get("includeAll"):
            values[variable["name"]] = "(" + "|".join(map(_regex_escape, found)) + ")"
        else:
            values[variable["name"]] = found[0]
    return values


# --- comparing ----------------------------------------------------------------------------


def has_data(data: dict[str, Any]) -> bool:
    return data["resultType"] == "scalar" or bool(data["result"])


def off_grid(client: httpx.Client, base: str, at: float, margin_ms: int = 3) -> float:
    """Returns: a time in the second before ``at`` whose milliseconds are ``margin_ms`` or more
    from every sample's milliseconds of the last 10 s (and from whole seconds)."""
    data = ask(client, base, "query", {"query": '{__name__=~".+"}[10s]', "time": f"{at:.3f}"})
    taken = {round(float(t) * 1000) % 1000 for row in data["result"] for t, _ in row["values"]}
    taken.add(0)
    for ms in range(999, 0, -1):
        if all(min((ms - o) % 1000, (o - ms) % 1000) >= margin_ms for o in taken):
            return math.floor(at) - 1 + ms / 1000
    raise AssertionError(f"no millisecond is {margin_ms} ms from all of {sorted(taken)}")


def wait_caught_up(client: httpx.Client, systems: Systems, at: float) -> None:
    """Waits until dcmon holds as many samples as Prometheus in the 20 s up to ``at``."""
    params = {"query": '{__name__=~".+"}[20s]', "time": f"{at:.3f}"}

    def counts(base: str) -> dict[str, int]:
        data = ask(client, base, "query", params)
        return {json.dumps(r["metric"], sort_keys=True): len(r["values"]) for r in data["result"]}

    wanted = counts(systems.prometheus)
    assert wanted, "Prometheus holds no samples"
    wait_for(lambda: counts(systems.dcmon) == wanted, 30, "dcmon to hold Prometheus' samples")


def without_job(data: dict[str, Any]) -> dict[str, Any]:
    """Returns: ``data`` with the ``job`` label (Prometheus' scrape job) removed from its
    series."""
    if data["resultType"] not in ("vector", "matrix"):
        return data
    rows = [{**row, "metric": {k: v for k, v in row["metric"].items() if k != "job"}}
            for row in data["result"]]  # fmt: skip
    return {**data, "result": rows}


def compare(
    client: httpx.Client, systems: Systems, expr: str, native_expr: str, end: float
) -> tuple[bool, list[str]]:
    """Returns: whether Prometheus' answer has data, and how dcmon's differ: B's to the same
    expression, A's to the expression with A's variables (instant, range)."""

    def asks(query: str) -> list[tuple[str, dict[str, str]]]:
        return [
            ("query", {"query": query, "time": f"{end:.3f}"}),
            (
                "query_range",
                {
                    "query": query,
                    "start": f"{end - RANGE_SECONDS:.3f}",
                    "end": f"{end:.3f}",
                    "step": str(STEP_SECONDS),
                },
            ),
        ]

    with_data = False
    problems: list[str] = []
    for (endpoint, params), (_, native_params) in zip(asks(expr), asks(native_expr), strict=True):
        theirs = ask(client, systems.prometheus, endpoint, params)
        if not has_data(theirs):
            continue
        with_data = True
        ours = ask(client, systems.dcmon, endpoint, params)
        problems += [f"B {endpoint}: {p}" for p in differences(ours, theirs)]
        native = ask(client, systems.native, endpoint, native_params)
        problems += [f"A {endpoint}: {p}" for p in differences(native, without_job(theirs))]
    return with_data, problems


def test_dashboard_panels_agree_with_prometheus(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    dashboards = {key: json.loads((DASHBOARDS / name).read_text()) for key, name in FILES.items()}
    with stack(tmp_path, prometheus) as systems, httpx.Client(timeout=60.0) as client:
        now = time.time() - 3
        wait_caught_up(client, systems, now)
        end = off_grid(client, systems.prometheus, now)
        report: list[str] = []
        failures: list[str] = []
        still_differ: set[str] = set()
        for key, dashboard in dashboards.items():
            values = variables(client, systems.prometheus, dashboard, end)
            native_values = variables(client, systems.native, dashboard, end)
            exprs = targets(dashboard)
            with_data = agreed = 0
            for raw in exprs:
                expr = substitute(raw, values)
                native_expr = substitute(raw, native_values)
                assert "$" not in expr and "[[" not in expr, f"unsubstituted: {expr}"
                has, problems = compare(client, systems, expr, native_expr, end)
                with_data += has
                agreed += has and not problems
                if raw in KNOWN_DIFFERENCES:
                    if problems:
                        still_differ.add(raw)
                elif problems:
                    failures.append(f"[{key}] {expr}\n    " + "\n    ".join(problems[:3]))
            report.append(
                f"dashboard {key}: {len(exprs)} targets, {with_data} with data on Prometheus, "
                f"{agreed} agreed"
            )
        print("\n".join(report))
        assert not failures, f"{len(failures)} targets differ:\n" + "\n".join(failures)
        fixed = set(KNOWN_DIFFERENCES) - still_differ
        assert not fixed, f"known differences that now agree (remove them): {sorted(fixed)}"
        assert all(" 0 with data" not in line for line in report), report
