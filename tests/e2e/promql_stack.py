"""A real Prometheus beside dcmon on the same live samples, for the differential PromQL test.

Started on 127.0.0.1, all on free ports: ``prometheus-node-exporter``; dcmon server A with an
agent of simulated GPUs pushing to it; dcmon server B; Prometheus 2.42 scraping node_exporter,
A's ``/metrics`` (``honor_labels``, so ``instance`` stays the agent's node name) and itself,
every second, and remote-writing everything it stores to B. B only ever receives Prometheus'
samples, so the two systems hold the same series with the same millisecond timestamps and
values, and nothing B holds flows back into what Prometheus scrapes (A is never written by
Prometheus). Queries then go to Prometheus' and B's query APIs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.processes import agent_argv, get, running, server_spec, wait_for
from tests.integration import free_port

SCRAPE_SECONDS = 1
NODE_NAME = "diff-node"
SIMULATED_GPUS = 2
READY_SECONDS = 60.0
# node_exporter collectors: the ones dashboard 1860 reads, less ``processes``, whose per-state
# series come and go between scrapes (node_processes_state{state="D"}): the intermittent-series
# staleness difference that ``diff_test_intermittent`` shows deterministically.
NODE_EXPORTER_COLLECTORS = (
    "cpu", "meminfo", "loadavg", "filesystem", "diskstats", "netdev", "stat", "vmstat", "time",
    "uname", "netstat", "sockstat", "pressure", "filefd", "entropy", "conntrack", "timex",
    "schedstat", "softnet",
)  # fmt: skip


@dataclass(frozen=True)
class Stack:
    """Where the two query APIs are, and the labels the test's queries need."""

    prometheus_url: str  # ends before /api/v1
    dcmon_url: str  # ends before /api/v1 (dcmon's /prometheus prefix included)
    node_exporter_instance: str
    started_at: float  # Unix seconds, before the first scrape


# Recording rules that make samples dcmon's remote-write receiver treats specially: a series
# present 10 s out of every 20 s and one present 1 s out of 20 (Prometheus writes a stale marker
# each time they vanish, dcmon synthesises its own), NaN and +Inf values (not stored), a series
# without an instance label. All but diff_test_no_instance are on one node, instance="rules",
# with diff_test_steady always there.
RULES = """\
groups:
  - name: differential
    interval: 1s
    rules:
      - {record: diff_test_steady, expr: vector(1), labels: {instance: rules}}
      - record: diff_test_blinking
        expr: vector(1) and on() (vector(time()) % 20 < 10)
        labels: {instance: rules}
      - record: diff_test_intermittent
        expr: vector(1) and on() (vector(time()) % 20 < 1)
        labels: {instance: rules}
      - {record: diff_test_nan, expr: vector(0) / 0, labels: {instance: rules}}
      - {record: diff_test_inf, expr: vector(1) / 0, labels: {instance: rules}}
      - {record: diff_test_no_instance, expr: vector(1)}
"""
# Summary quantiles are NaN while their window holds no observations, and flip between NaN and
# numbers as the test's own queries are observed: dropped at scrape, so the compared data holds
# no accidental NaN (the rules above hold deliberate ones).
_DROP_QUANTILES = """
    metric_relabel_configs:
      - {source_labels: [quantile], regex: ".+", action: drop}"""


def _prometheus_config(
    node_exporter: int, server_a: int, prometheus: int, server_b: int, token_file: Path, rules: Path
) -> str:
    return f"""\
global:
  scrape_interval: {SCRAPE_SECONDS}s
  scrape_timeout: {SCRAPE_SECONDS}s
  evaluation_interval: 1m  # Prometheus' default: the default subquery step, as in dcmon
rule_files: ["{rules}"]
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{node_exporter}"]}}]{_DROP_QUANTILES}
  - job_name: dcmon
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{server_a}"]}}]{_DROP_QUANTILES}
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prometheus}"]}}]{_DROP_QUANTILES}
remote_write:
  - url: http://127.0.0.1:{server_b}/api/v1/write
    authorization:
      credentials_file: {token_file}
    queue_config:
      batch_send_deadline: 200ms
      max_samples_per_send: 5000
      min_backoff: 50ms
      max_backoff: 1s
"""


def _ready(url: str) -> bool:
    return get(url).status_code == 200


@contextmanager
def running_stack(
    tmp_path: Path, prometheus: str, node_exporter: str, collect_seconds: float
) -> Iterator[Stack]:
    """Start everything, let Prometheus collect for ``collect_seconds``; stop all at the end."""
    with ExitStack() as stack:
        exporter_port = free_port()
        exporter_argv = [
            node_exporter, f"--web.listen-address=127.0.0.1:{exporter_port}",
            "--collector.disable-defaults",
            *(f"--collector.{name}" for name in NODE_EXPORTER_COLLECTORS),
        ]  # fmt: skip
        stack.enter_context(running(exporter_argv, tmp_path / "node_exporter.log"))

        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        spec_a = server_spec(tmp_path / "a")
        spec_b = server_spec(tmp_path / "b", self_series=False)  # holds only what it was sent
        stack.enter_context(running(spec_a.argv, tmp_path / "server-a.log"))
        stack.enter_context(running(spec_b.argv, tmp_path / "server-b.log"))
        for url in (spec_a.url, spec_b.url):
            wait_for(partial(_ready, url + "/readyz"), 60, f"dcmon at {url} ready")
        agent = agent_argv(
            tmp_path / "a", spec_a, "--gpu-backend", "simulated",
            "--simulated-gpus", str(SIMULATED_GPUS), "--node-name", NODE_NAME,
        )  # fmt: skip
        stack.enter_context(running(agent, tmp_path / "agent.log"))
        wait_for(
            lambda: "DCGM_FI_DEV_GPU_TEMP{" in get(spec_a.url + "/metrics").text,
            30,
            "the agent's samples on server A's /metrics",
        )
        wait_for(
            lambda: get(f"http://127.0.0.1:{exporter_port}/metrics").status_code == 200,
            30,
            "node_exporter",
        )

        prometheus_port = free_port()
        rules = tmp_path / "rules.yml"
        rules.write_text(RULES)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            _prometheus_config(
                exporter_port, spec_a.port, prometheus_port, spec_b.port, spec_b.token_file, rules
            )
        )
        prometheus_argv = [
            prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn",
        ]  # fmt: skip
        started_at = time.time()
        stack.enter_context(running(prometheus_argv, tmp_path / "prometheus.log"))
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        wait_for(
            lambda: get(prometheus_url + "/-/ready").status_code == 200, READY_SECONDS, "ready"
        )
        time.sleep(collect_seconds)
        yield Stack(
            prometheus_url=prometheus_url,
            dcmon_url=spec_b.url + "/prometheus",
            node_exporter_instance=f"127.0.0.1:{exporter_port}",
            started_at=started_at,
        )


class QueryFailed(Exception):
    """A query API answered something other than a success envelope."""


def ask(client: httpx.Client, base: str, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
    """Returns: the ``data`` of a successful query answer. Raises: QueryFailed otherwise."""
    response = client.get(f"{base}/api/v1/{endpoint}", params=params)
    try:
        body = response.json()
    except json.JSONDecodeError:
        raise QueryFailed(f"{response.status_code}: {response.text[:200]}") from None
    if response.status_code != 200 or body.get("status") != "success":
        raise QueryFailed(f"{response.status_code} {body.get('errorType')}: {body.get('error')}")
    data: dict[str, Any] = body["data"]
    return data


def _sample_counts(
    client: httpx.Client, base: str, at: float, window: str, skip: Collection[str]
) -> dict[str, int]:
    params = {"query": f'{{__name__=~".+"}}[{window}]', "time": f"{at:.3f}"}
    data = ask(client, base, "query", params)
    counts = {}
    for item in data["result"]:
        if item["metric"]["__name__"] not in skip:
            counts[json.dumps(item["metric"], sort_keys=True)] = len(item["values"])
    return counts


def _count_problems(wanted: dict[str, int], got: dict[str, int]) -> str:
    missing = [f"{k}: {v} vs {got.get(k)}" for k, v in wanted.items() if got.get(k) != v]
    extra = sorted(got.keys() - wanted.keys())
    return (
        f"samples differ (Prometheus vs dcmon) for {len(missing)} series, e.g. {missing[:3]}; "
        f"{len(extra)} only in dcmon, e.g. {extra[:3]}"
    )


def wait_caught_up(
    client: httpx.Client, stack: Stack, at: float, timeout: float, skip: Collection[str] = ()
) -> None:
    """Wait until dcmon holds every sample Prometheus holds in the 15 s up to ``at``, then
    check that it holds the same number of samples per series over the whole run; metrics
    ``skip`` (known to be stored differently) are left out.

    Raises: AssertionError when the samples never agree.
    """
    wanted = _sample_counts(client, stack.prometheus_url, at, "15s", skip)
    try:
        wait_for(
            lambda: _sample_counts(client, stack.dcmon_url, at, "15s", skip) == wanted,
            timeout,
            "dcmon to hold what Prometheus holds",
        )
    except AssertionError:
        got = _sample_counts(client, stack.dcmon_url, at, "15s", skip)
        raise AssertionError("newest " + _count_problems(wanted, got)) from None
    wanted = _sample_counts(client, stack.prometheus_url, at, "1h", skip)
    got = _sample_counts(client, stack.dcmon_url, at, "1h", skip)
    assert got == wanted, "over the whole run, " + _count_problems(wanted, got)


def grid_offsets_ms(client: httpx.Client, stack: Stack, at: float) -> set[int]:
    """Returns: every scrape's and rule evaluation's millisecond within its second (every
    sample has the time of one), over the whole run."""
    params = {"query": '{__name__=~"up|diff_test_steady"}[1h]', "time": f"{at:.3f}"}
    data = ask(client, stack.prometheus_url, "query", params)
    return {
        round(float(t) * 1000) % 1000 for item in data["result"] for t, _value in item["values"]
    }


def off_grid(at: float, offsets: set[int], margin_ms: int = 3) -> float:
    """Returns: a time within a second before ``at`` whose milliseconds are at least ``margin_ms``
    from every sample's and from whole seconds (the grid of whole-second steps and ranges)."""
    taken = offsets | {0}
    base = math.floor(at) - 1
    for ms in range(999, 0, -1):
        if all(min((ms - o) % 1000, (o - ms) % 1000) >= margin_ms for o in taken):
            return base + ms / 1000
    raise AssertionError(f"no millisecond is {margin_ms} ms away from all of {sorted(taken)}")
