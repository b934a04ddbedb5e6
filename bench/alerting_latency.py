"""Latency from a sample's ingest to the webhook receiving its alert: dcmon beside Prometheus.

Real processes on 127.0.0.1: two fresh ``dcmon server`` processes, one with the default rule
query offset (the largest push interval among live nodes) and one with offset 0, each
evaluating one rule group at ``--interval`` that holds the pack's ``GpuXidFatal`` (copied from
``alerts/gpu.yaml``: ``increase(dcmon_gpu_xid_errors_total{xid=~"<fatal codes>"}[5m]) > 0``,
no ``for``) and sending through its direct receivers (``[notify] receivers_file``, a route
with ``group_by: ['...']``, ``group_wait: 0s``, ``group_interval: 1s``) to a webhook sink, an
HTTP server in this script. Beside them, Debian's Prometheus scrapes the first server's
``/metrics`` (read token, ``honor_labels``, as ``deploy/prometheus/prometheus.yml`` does) at
``--interval``, evaluates ``dcmon rules export`` of the same group at ``--interval`` and
sends to Debian's Alertmanager (the same route) whose webhook goes to a sink of its own.

``--nodes`` simulated nodes (``bench/loadgen.py``, 400 series) push to both servers paced at
``--interval`` throughout, so every round and scrape has a fleet to read. One more node, the
trip node, pushes a small batch to both servers every interval and trips ``--trips`` times,
each on a new (gpu, xid) pair, so each trip is a new alert. As an agent does
(``agent/events/collector.py``), the GPU's counter for that code appears at 0 in one tick and
is 1 from the next: the clock starts when a server acknowledges the push that carries the 1
(the sample's ingest) and stops when a sink receives the firing alert. Prometheus' clock
starts at the first server's acknowledgement. Trips are spaced 2 intervals + interval/trips
apart, so the pushes that carry the 1 sweep every phase of the evaluation grid once.

Expected shape: dcmon evaluates at ``slot - offset``; a sample stamped at its push is seen by
the first slot at least ``offset`` after it, so the latency is offset + up to one interval +
the round and the notification: with the default offset (one push interval) between 1 and 2
intervals, with offset 0 up to one interval. Prometheus: up to one scrape interval until the
sample is scraped, up to one evaluation interval until a round reads it, then Alertmanager.
Target: sample -> notification <= evaluation interval + 2 s, judged on every trip (the max).

    .venv/bin/python bench/alerting_latency.py                 # 100 nodes, 10 s, 10 trips
    .venv/bin/python bench/alerting_latency.py --nodes 20 --trips 5 --json out.json
    .venv/bin/python bench/alerting_latency.py --smoke         # CI: 10 nodes, 2 s, 3 trips;
                                                               # fails when any alert is late
                                                               # past its bound or missing
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from agent_overhead import (
    BenchError,
    cpu_model,
    free_port,
    http_get,
    peer_required,
    smoke_verdict,
    started,
    wait_until,
)
from alerting_load import PACK_DIR, exported, promtool_check
from loadgen import READY_TIMEOUT_SECONDS, LoadRun, Plan, Server, Tally, dcmon_server, percentile
from promql_peer import PROMETHEUS, prometheus_version

RULE = "GpuXidFatal"
ALERTMANAGER_BINARIES = ("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager")
TARGET_SLACK_SECONDS = 2.0
ROUTE = {
    "receiver": "hook",
    "group_by": ["..."],  # every alert its own group: a trip waits for no other
    "group_wait": "0s",
    "group_interval": "1s",
    "repeat_interval": "1h",
}
_XID_CODES = re.compile(r'xid=~"([0-9|]+)"')
MODEL_NAME = "NVIDIA H100 80GB HBM3"


# --- what is evaluated -----------------------------------------------------------------------


def pack_rule() -> dict[str, Any]:
    """Returns: the pack's ``GpuXidFatal`` rule as written in ``alerts/gpu.yaml``."""
    document = yaml.safe_load((PACK_DIR / "gpu.yaml").read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == RULE:
                return dict(rule)
    raise BenchError(f"alerts/gpu.yaml has no {RULE} rule")


def fatal_codes(rule: dict[str, Any]) -> list[str]:
    match = _XID_CODES.search(rule["expr"])
    if not match:
        raise BenchError(f"{RULE}'s expression names no XID codes: {rule['expr']}")
    return match.group(1).split("|")


def rule_file(folder: Path, interval_s: float, rule: dict[str, Any]) -> Path:
    group = {"name": "alerting-latency", "interval": f"{interval_s:g}s", "rules": [rule]}
    path = folder / "latency-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False, width=400))
    return path


def receivers(url: str) -> dict[str, Any]:
    """An Alertmanager configuration (also dcmon's receivers file) sending to ``url``."""
    hook = {"url": url, "send_resolved": False}
    return {"route": ROUTE, "receivers": [{"name": "hook", "webhook_configs": [hook]}]}


# --- the webhook sinks -----------------------------------------------------------------------


class Sink:
    """An HTTP server taking webhook posts; remembers when each firing alert first arrived
    (monotonic seconds), keyed by its (gpu, xid) labels."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.arrivals: dict[tuple[str, str], float] = {}
        self.posts = 0
        self.problems: list[str] = []
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                sink.received(body, now)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def received(self, body: bytes, now: float) -> None:
        with self._changed:
            self.posts += 1
            try:
                alerts = json.loads(body)["alerts"]
            except (ValueError, KeyError, TypeError) as exc:
                self.problems.append(f"{self.name}: a post that is not a webhook payload: {exc}")
                return
            for alert in alerts:
                labels = alert.get("labels", {})
                if alert.get("status") == "firing" and labels.get("alertname") == RULE:
                    key = (labels.get("gpu", ""), labels.get("xid", ""))
                    self.arrivals.setdefault(key, now)
            self._changed.notify_all()

    def wait_for(self, keys: set[tuple[str, str]], deadline: float) -> bool:
        with self._changed:
            while not keys <= self.arrivals.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the trip node ---------------------------------------------------------------------------


@dataclass
class Trip:
    gpu: str
    xid: str
    acks: dict[str, float] = field(default_factory=dict)  # server -> ack of the "1" (monotonic)
    latency_s: dict[str, float] = field(default_factory=dict)  # side -> seconds (absent: lost)


class TripNode:
    """One node pushing a small batch to every server each tick: a GPU temperature, and the
    XID counters it has so far (as an agent does, a counter keeps its value once born)."""

    def __init__(self, servers: dict[str, Server], interval_s: float) -> None:
        self.servers = servers
        self.interval_s = interval_s
        self.counters: dict[tuple[str, str], float] = {}
        self.seq = 0
        self.name = "trip-0000"
        self.identity = {
            "node_id": uuid.uuid5(uuid.NAMESPACE_OID, "dcmon-bench:latency:trip").hex,
            "name": self.name,
            "hostname": self.name,
        }
        self._connections = {
            name: http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            for name, s in servers.items()
        }

    def _labels(self, gpu: str) -> dict[str, str]:
        index = int(gpu)
        return {
            "gpu": gpu,
            "UUID": f"GPU-{uuid.uuid5(uuid.NAMESPACE_OID, f'latency:{index}')}",
            "pci_bus_id": f"00000000:{0x18 + index:02X}:00.0",
            "device": f"nvidia{gpu}",
            "modelName": MODEL_NAME,
            "Hostname": self.name,
        }

    def push(self) -> dict[str, float]:
        """Push one tick to every server; returns: each server's acknowledgement (monotonic)."""
        self.seq += 1
        metrics: list[dict[str, Any]] = [
            {"name": "DCGM_FI_DEV_GPU_TEMP", "samples": [[self._labels("0"), 40.0]]}
        ]
        if self.counters:
            samples = [[{**self._labels(g), "xid": x}, v] for (g, x), v in self.counters.items()]
            metrics.append({"name": "dcmon_gpu_xid_errors_total", "samples": samples})
        batch = {
            "schema_version": 1, "node": self.identity, "seq": self.seq,
            "timestamp": round(time.time(), 3), "interval_seconds": self.interval_s,
            "metrics": metrics,
        }  # fmt: skip
        body = gzip.compress(json.dumps(batch).encode(), compresslevel=1)
        acks = {}
        for name, server in self.servers.items():
            connection = self._connections[name]
            headers = {
                "Content-Type": "application/json", "Content-Encoding": "gzip",
                "Authorization": f"Bearer {server.token}",
            }  # fmt: skip
            for attempt in (1, 2):  # the server closes a keep-alive connection idle > 5 s
                try:
                    connection.request("POST", "/api/v1/ingest", body, headers)
                    response = connection.getresponse()
                    answer = response.read()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()
                    if attempt == 2:
                        raise BenchError(f"the trip node's push to {name} failed: {exc}") from exc
            acks[name] = time.monotonic()
            if response.status != 200 or json.loads(answer).get("status") not in (
                "accepted",
                "duplicate",
            ):
                raise BenchError(
                    f"{name} refused the trip node's push: {response.status} {answer!r}"
                )
        return acks

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()


# --- the peer --------------------------------------------------------------------------------


def alertmanager_binary() -> str | None:
    return next((b for b in ALERTMANAGER_BINARIES if Path(b).exists()), None)


@contextmanager
def alertmanager(binary: str, scratch: Path, sink: Sink) -> Iterator[int]:
    """Alertmanager with ``ROUTE`` to ``sink``; yields its port."""
    config = scratch / "alertmanager.yml"
    config.write_text(json.dumps(receivers(sink.url)))  # JSON is YAML
    port = free_port()
    argv = [
        binary, f"--config.file={config}", f"--storage.path={scratch / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn",
    ]  # fmt: skip
    with started("Alertmanager", argv, scratch / "alertmanager.log") as child:
        ready = lambda: http_get(port, "/-/ready", 2.0)[0] == 200  # noqa: E731
        wait_until("Alertmanager to be ready", child, ready, READY_TIMEOUT_SECONDS)
        yield port


@contextmanager
def prometheus(
    scratch: Path, server: Server, rules: Path, alertmanager_port: int, interval_s: float
) -> Iterator[int]:
    """Prometheus scraping ``server`` as deploy/prometheus/prometheus.yml does, at
    ``interval_s``, evaluating ``rules`` and sending to Alertmanager; yields its port."""
    token = scratch / "dcmon-read.token"
    token.write_text(server.read_token)
    token.chmod(0o600)
    every = f"{interval_s:g}s"
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "dcmon", "honor_labels": True, "scrape_interval": every,
                "scrape_timeout": f"{min(interval_s, 10.0):g}s", "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials_file": str(token)},
                "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
            }
        ],
    }  # fmt: skip
    path = scratch / "prometheus.yml"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [
        PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={scratch / 'prometheus'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    with started("Prometheus", argv, scratch / "prometheus.log") as child:
        ready = lambda: http_get(port, "/-/ready", 2.0)[0] == 200  # noqa: E731
        wait_until("Prometheus to be ready", child, ready, READY_TIMEOUT_SECONDS)
        yield port


def scrape_health(port: int) -> str:
    """Returns: Prometheus' view of its dcmon target ("up", or the last error)."""
    status, text = http_get(port, "/api/v1/targets", 10.0)
    if status != 200:
        return f"/api/v1/targets answered {status}"
    targets = json.loads(text)["data"]["activeTargets"]
    if not targets:
        return "no target"
    target = targets[0]
    return "up" if target["health"] == "up" else f"{target['health']}: {target['lastError']}"


# --- one measurement -------------------------------------------------------------------------


@dataclass
class LatencyResult:
    nodes: int
    interval_s: float
    trips: list[Trip]
    sides: dict[str, str]  # side -> what it is
    background: dict[str, Any]
    problems: list[str]
    seconds: float


SIDES = {
    "dcmon": "dcmon, default query offset (push interval)",
    "dcmon-offset0": "dcmon, query offset 0",
    "prometheus": "Prometheus scraping dcmon -> Alertmanager",
}


def server_env(rules: Path, receivers_file: Path, interval_s: float) -> dict[str, str]:
    return {
        "DCMON_SERVER_RULE_FILES": json.dumps([str(rules)]),
        "DCMON_SERVER_RULES_SHIPPED": "false",
        "DCMON_SERVER_RULE_EVALUATION_INTERVAL_SECONDS": f"{interval_s:g}",
        "DCMON_SERVER_RULE_LEADER_CHECK_SECONDS": "0.5",
        "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "3600",
        "DCMON_SERVER_NOTIFY__RECEIVERS_FILE": str(receivers_file),
    }


def measure(
    nodes: int, interval_s: float, trips: int, peer: bool, scratch: Path, workers: int = 1
) -> LatencyResult:
    """Run the servers (and the peer), the background load and the trips; returns figures."""
    began = time.monotonic()
    rule = pack_rule()
    codes = fatal_codes(rule)
    rules = rule_file(scratch, interval_s, rule)
    sides = {k: v for k, v in SIDES.items() if peer or k != "prometheus"}
    sinks = {side: Sink(side) for side in sides}
    problems: list[str] = []
    with ExitStack() as stack:
        for sink in sinks.values():
            stack.callback(sink.close)
        servers: dict[str, Server] = {}
        for side, offset in (("dcmon", None), ("dcmon-offset0", "0")):
            folder = scratch / side
            folder.mkdir()
            receivers_file = folder / "receivers.yaml"
            receivers_file.write_text(json.dumps(receivers(sinks[side].url)))
            env = server_env(rules, receivers_file, interval_s)
            if offset is not None:
                env["DCMON_SERVER_RULE_QUERY_OFFSET_SECONDS"] = offset
            servers[side] = stack.enter_context(dcmon_server(folder, env=env))
        prometheus_port = 0
        if peer:
            binary = alertmanager_binary()
            assert binary is not None
            exported_rules = exported([rules], scratch / "exported.yaml")
            complaint = promtool_check(exported_rules)
            if complaint:
                raise BenchError(f"promtool check rules refused the export: {complaint}")
            am_port = stack.enter_context(alertmanager(binary, scratch, sinks["prometheus"]))
            prometheus_port = stack.enter_context(
                prometheus(scratch, servers["dcmon"], exported_rules, am_port, interval_s)
            )
        # Background: every simulated node pushes to both servers, paced at the interval.
        schedule_s = trips * (2 + 1 / trips) * interval_s
        wait_s = 2 * interval_s + 15.0  # the slowest expected path, and then some
        warmup_s = 2 * interval_s
        runs = []
        for server in servers.values():
            plan = Plan(
                server.target(), "paced", nodes, min(nodes, 16), workers,
                interval_seconds=interval_s, seconds=warmup_s + schedule_s + wait_s + 5,
            )  # fmt: skip
            runs.append(stack.enter_context(LoadRun(plan)))
        for run in runs:
            run.start()
        node = TripNode(servers, interval_s)
        stack.callback(node.close)
        # Warm-up: the fleet's first pushes create its series; the trip node becomes live.
        warm_end = time.monotonic() + warmup_s
        while time.monotonic() < warm_end:
            node.push()
            time.sleep(min(interval_s, max(0.0, warm_end - time.monotonic())))
        done: list[Trip] = []
        next_tick = time.monotonic()
        for number in range(trips):
            trip = Trip(str(number % 8), codes[(number // 8) % len(codes)])
            key = (trip.gpu, trip.xid)
            node.counters[key] = 0.0  # born at 0 in the tick of the first XID ...
            time.sleep(max(0.0, next_tick - time.monotonic()))
            node.push()
            node.counters[key] = 1.0  # ... and counting from the next tick
            time.sleep(max(0.0, next_tick + interval_s - time.monotonic()))
            trip.acks = node.push()
            done.append(trip)
            print(f"  trip {number + 1}/{trips}: gpu {trip.gpu} xid {trip.xid}", flush=True)
            # The next trip's "1" lands interval/trips later in the evaluation grid's phase;
            # the gap until its "0" (interval + interval/trips) is well within staleness.
            next_tick += (2 + 1 / trips) * interval_s
        # Keep the node live, at its interval, while the last alerts are on their way.
        deadline = time.monotonic() + wait_s
        keys = {(t.gpu, t.xid) for t in done}
        tick = time.monotonic() + interval_s
        for sink in sinks.values():
            while not sink.wait_for(keys, min(tick, deadline)) and time.monotonic() < deadline:
                node.push()
                tick += interval_s
        if peer:
            health = scrape_health(prometheus_port)
            if health != "up":
                problems.append(f"Prometheus' scrape of dcmon is not up: {health}")
        for trip in done:
            key = (trip.gpu, trip.xid)
            for side, sink in sinks.items():
                if key in sink.arrivals:
                    ack = trip.acks["dcmon" if side == "prometheus" else side]
                    trip.latency_s[side] = sink.arrivals[key] - ack
                else:
                    problems.append(f"{side}: no alert for gpu {trip.gpu} xid {trip.xid}")
        for sink in sinks.values():
            problems += sink.problems
        background = Tally()
        print("  stopping the background load", flush=True)
        for run in runs:
            background.merge(run.finish(1.0))
    if background.failures:
        problems.append(f"background load: {background.failures} pushes failed")
    return LatencyResult(
        nodes, interval_s, done, sides,
        {"pushes": background.requests, "samples": background.samples,
         "failures": background.failures},
        problems, time.monotonic() - began,
    )  # fmt: skip


# --- output ----------------------------------------------------------------------------------


def side_figures(result: LatencyResult) -> dict[str, dict[str, Any]]:
    target = result.interval_s + TARGET_SLACK_SECONDS
    figures = {}
    for side, what in result.sides.items():
        values = [t.latency_s[side] for t in result.trips if side in t.latency_s]
        lost = len(result.trips) - len(values)
        worst = max(values) if values else math.nan
        verdict = "PASS" if values and not lost and worst <= target else "MISS"
        figures[side] = {
            "what": what, "median_s": percentile(values, 0.5), "max_s": worst,
            "min_s": min(values) if values else math.nan, "per_trip_s": values, "lost": lost,
            "verdict": verdict,
        }  # fmt: skip
    return figures


def report(result: LatencyResult) -> dict[str, Any]:
    interval = result.interval_s
    target = interval + TARGET_SLACK_SECONDS
    figures = side_figures(result)
    print()
    print(f"  {'sample -> webhook, s':<46}{'median':>8}{'min':>8}{'max':>8}{'lost':>6}  target")
    for row in figures.values():
        print(
            f"  {row['what']:<46}{row['median_s']:>8.2f}{row['min_s']:>8.2f}{row['max_s']:>8.2f}"
            f"{row['lost']:>6}  {row['verdict']}"
        )
    print(
        f"  target: every trip <= evaluation interval + {TARGET_SLACK_SECONDS:g} s = "
        f"{target:g} s (judged on the max); group interval {interval:g} s, "
        f"{len(result.trips)} trips, {result.nodes} background nodes"
    )
    print(
        f"  default offset = the push interval ({interval:g} s): a sample waits >= one interval "
        "before any round reads it, so latency = offset + up to one interval + round + send"
    )
    for side, row in figures.items():
        print(f"  per trip {side}: " + ", ".join(f"{v:.2f}" for v in row["per_trip_s"]))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="background nodes (default 100)")
    parser.add_argument("--interval", type=float, default=10.0, help="group/push/scrape, s")
    parser.add_argument("--trips", type=int, default=10, help="alerts tripped (default 10)")
    parser.add_argument("--no-peer", action="store_true", help="skip Prometheus/Alertmanager")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--smoke", action="store_true", help="CI: 10 nodes, 2 s, 3 trips")
    args = parser.parse_args()
    return run(args)


def run(args: argparse.Namespace) -> int:
    """The whole benchmark as ``main`` parsed it (``bench/alerting.py --latency`` calls it)."""
    if args.smoke:
        args.nodes, args.interval, args.trips = 10, 2.0, 3
    if args.nodes < 1 or args.trips < 1 or args.interval < 1:
        print("alerting_latency: --nodes, --trips >= 1, --interval >= 1", file=sys.stderr)
        return 2
    version = None if args.no_peer else prometheus_version()
    peer = version is not None and alertmanager_binary() is not None
    print(f"alerting latency benchmark on {os.cpu_count()} x {cpu_model()}")
    if peer:
        am = subprocess.run(
            [str(alertmanager_binary()), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        am_version = (am.stdout or am.stderr).splitlines()[0:1]
        print(f"  peer: {version}; {am_version[0] if am_version else 'Alertmanager'}")
    else:
        print(f"  peer: skipped ({'--no-peer' if args.no_peer else 'missing'})")
    print(
        f"  {args.nodes} background nodes and a trip node pushing every {args.interval:g} s; "
        f"one group ({RULE}) at {args.interval:g} s; {args.trips} trips",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="dcmon-bench-latency-") as scratch:
            result = measure(args.nodes, args.interval, args.trips, peer, Path(scratch))
    except BenchError as exc:
        print(f"alerting_latency: {exc}", file=sys.stderr)
        return 2
    figures = report(result)
    for line in result.problems:
        print(f"  note: {line}")
    command = [".venv/bin/python", "bench/alerting_latency.py"]
    if args.smoke:
        command.append("--smoke")
    else:
        command += ["--nodes", str(args.nodes), "--interval", f"{args.interval:g}"]
        command += ["--trips", str(args.trips)]
    command += ["--no-peer"] if args.no_peer else []
    print(f"  took {result.seconds:.0f} s; reproduce: " + " ".join(command))
    if args.json:
        document = {
            "nodes": args.nodes, "interval_s": args.interval, "target_s": args.interval + 2,
            "sides": figures, "trips": [asdict(t) for t in result.trips],
            "background": result.background, "command": " ".join(command),
        }  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2))
    if not args.smoke:
        return 0
    problems = list(result.problems)
    if not peer and not args.no_peer and peer_required():
        problems.append("Prometheus or Alertmanager is missing (DCMON_REQUIRE_INTEGRATION=1)")
    # Each side's bound: what its design allows (two intervals) plus a margin for a busy CI.
    bound = 2 * args.interval + 5.0
    for side, row in figures.items():
        if row["max_s"] > bound:
            problems.append(f"{side}: an alert took {row['max_s']:.1f} s (> {bound:g} s)")
    return smoke_verdict("alerting_latency", problems)


if __name__ == "__main__":
    sys.exit(main())
