"""Prometheus evaluating the exported pack on the same samples, for ``bench/alerting.py``.

Prometheus evaluates rules at the wall clock's time only, so the samples it gets are dcmon's
moved forward in time by one constant: the same nodes, series, values and spacing
(``promql_peer.backfill`` renders them from the same seed), with the history ending a little
after the last round Prometheus is timed on. The rounds therefore sit at the same place in the
history as dcmon's (the last ones at its end), and every window sees the same data before it.
The blocks end in the (near) future; Prometheus reads them as any block, and appends of the
rules' own ``ALERTS`` series older than a loaded block's end are refused by its head
(``out of bounds``), so the hysteresis rules' ``ALERTS`` idiom does not hold there. Its log is
checked and the count printed.

Per group and round, Prometheus' own ``prometheus_rule_group_last_duration_seconds`` (the
round's wall time) and ``..._last_evaluation_timestamp_seconds`` are read from its
``/metrics`` twice per interval; a round of the pack is one evaluation of every group (their
sum). CPU is the process' user + system time from ``/proc`` over the timed window, divided by
the rounds in it (so it also holds what Prometheus does besides rules: little, with no scrape).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent_overhead import BenchError, cpu_seconds, free_port, http_get, started, wait_until
from loadgen import READY_TIMEOUT_SECONDS, Plan
from promql_peer import PROMETHEUS, backfill

_GROUP_METRIC = re.compile(
    r"^prometheus_rule_group_last_(duration_seconds|evaluation_timestamp_seconds)"
    r'\{rule_group="[^"]*;([^"]+)"\} (\S+)$'
)


@dataclass
class PeerResult:
    wall_s: list[float] = field(default_factory=list)
    cpu_s: float = float("nan")  # per round
    groups: int = 0
    firing: int = 0
    pending: int = 0
    backfilled: int = 0
    backfill_s: float = 0.0
    out_of_bounds: int = 0
    problems: list[str] = field(default_factory=list)


def _group_figures(port: int) -> dict[str, tuple[float, float]]:
    """Returns: {group: (last evaluation time s, its duration s)} from Prometheus' /metrics."""
    status, text = http_get(port, "/metrics", 10.0)
    if status != 200:
        raise BenchError(f"Prometheus /metrics answered {status}")
    seen: dict[str, dict[str, float]] = defaultdict(dict)
    for line in text.splitlines():
        match = _GROUP_METRIC.match(line)
        if match:
            seen[match.group(2)][match.group(1)] = float(match.group(3))
    return {
        group: (values["evaluation_timestamp_seconds"], values["duration_seconds"])
        for group, values in seen.items()
        if len(values) == 2
    }


def _alert_counts(port: int) -> tuple[int, int]:
    status, text = http_get(port, "/api/v1/alerts", 60.0)
    if status != 200:
        raise BenchError(f"Prometheus /api/v1/alerts answered {status}")
    alerts = json.loads(text)["data"]["alerts"]
    firing = sum(1 for a in alerts if a["state"] == "firing")
    return firing, sum(1 for a in alerts if a["state"] == "pending")


def _count(port: int, expr: str) -> float:
    query = urllib.parse.urlencode({"query": expr})
    status, text = http_get(port, f"/api/v1/query?{query}", 60.0)
    if status != 200:
        raise BenchError(f"Prometheus query {expr!r} answered {status}: {text[:200]}")
    result = json.loads(text)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def measure(
    plan: Plan,
    rules: Path,
    scratch: Path,
    interval_s: float,
    rounds: int,
    setup_estimate_s: float,
    expected_series: int,
) -> PeerResult:
    """Backfill ``plan`` moved so its end falls ``rounds`` + 1 intervals after Prometheus is
    expected ready (``setup_estimate_s`` from now), start Prometheus with ``rules``, and time
    the rounds whose evaluation times fall in the last ``rounds`` intervals of the data.
    """
    assert plan.ticks is not None
    result = PeerResult()
    data_end_ms = plan.start_ms + plan.ticks * round(plan.interval_seconds * 1000)
    target_end_s = time.time() + setup_estimate_s + (rounds + 1) * interval_s
    shift_ms = round(target_end_s * 1000) - data_end_ms
    shift_ms -= shift_ms % round(plan.interval_seconds * 1000)  # keep the tick grid's phase
    moved = replace(plan, start_ms=plan.start_ms + shift_ms)
    end_s = (data_end_ms + shift_ms) / 1000
    data_dir = scratch / "prometheus-data"
    began = time.monotonic()
    result.backfilled = backfill(moved, scratch, data_dir)
    result.backfill_s = time.monotonic() - began
    config = scratch / "prometheus.yml"
    config.write_text(
        f"global:\n  evaluation_interval: {interval_s:g}s\n"
        f"rule_files:\n  - {json.dumps(str(rules))}\nscrape_configs: []\n"
    )
    port = free_port()
    argv = [
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
        "--log.level=info",
    ]  # fmt: skip
    log = scratch / "prometheus.log"
    with started("Prometheus", argv, log) as child:
        wait_until(
            "Prometheus to be ready",
            child,
            lambda: http_get(port, "/-/ready", 2.0)[0] == 200,
            READY_TIMEOUT_SECONDS,
        )
        window_start = end_s - rounds * interval_s
        late = time.time() - window_start
        if late > 0:
            result.problems.append(
                f"Prometheus was ready {late:.0f} s after its first timed round was due "
                f"(setup took longer than the {setup_estimate_s:.0f} s estimate): fewer rounds"
            )
        while time.time() < window_start:
            time.sleep(min(1.0, window_start - time.time()))
        cpu0 = cpu_seconds(child.pid)
        seen: dict[str, dict[float, float]] = defaultdict(dict)
        while time.time() < end_s + 1.0:
            for group, (at, duration) in _group_figures(port).items():
                if window_start - interval_s < at <= end_s:
                    seen[group][at] = duration
            time.sleep(interval_s / 2)
        cpu = cpu_seconds(child.pid) - cpu0
        served = _count(port, "count(DCGM_FI_DEV_GPU_TEMP)")
        if served != expected_series:
            result.problems.append(
                f"Prometheus holds {served:g} GPU temperature series at the end, not "
                f"{expected_series}"
            )
        result.firing, result.pending = _alert_counts(port)
        child.check_alive()
    result.groups = len(seen)
    per_group = [sorted(evaluations.items()) for evaluations in seen.values()]
    complete = min((len(items) for items in per_group), default=0)
    result.wall_s = [sum(items[-complete + k][1] for items in per_group) for k in range(complete)]
    measured = max(1.0, (end_s - window_start) / interval_s)
    result.cpu_s = cpu / measured
    result.out_of_bounds = log.read_text(errors="replace").count("out of bounds")
    return result
