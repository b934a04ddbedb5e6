"""Which Grafana panels have data on dcmon: dashboards 1860 and 12239, and dcmon's own.

Started on 127.0.0.1 (free ports, temporary directories): the real ``dcmon demo --scenario
faults`` (a server evaluating the shipped rule pack, an agent for this machine with 8 simulated
GPUs carrying the demo's jobs, the simulated faulty node ``demo-gpu-node`` whose timeline starts
40 s in, so its XID comes 20 s after the start, late enough for a slow start to catch it, its
webhook receiver, and the quick benchmark of both nodes), with hint rounds every 10 s and the
idle bar at its 60 s floor; Debian's node_exporter; and Prometheus 2.42 scraping both every 2 s
from ``deploy/prometheus/prometheus.yml`` (job ``dcmon`` with ``honor_labels``, job ``node``),
evaluating the exported rule pack every 2 s.

- (a) Dashboard 1860: every target once with ``$job=node`` and node_exporter's instance, once
  with ``$job=dcmon`` and the demo agent's node; one with data on node_exporter and none on
  dcmon fails, unless ``KNOWN_1860`` says why (and dcmon still has none for it).
- (b) Dashboard 12239: every target has data, through Prometheus and through dcmon's API.
- (c) dcmon's dashboards (``dashboards/*.json``): every target of every panel has data, through
  Prometheus and through dcmon's API, except the panels ``KNOWN_EMPTY`` lists with the reason
  (each checked to be still empty). Targets still empty are asked again until the benchmark
  runs, rule rounds, hint rounds and notifications have come, at most until ``DEADLINE_S``
  after the demo started; then a per-panel list of result counts is printed.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from server.demo_faults import FAULTY_NODE
from tests.e2e import test_grafana_dashboards as reference
from tests.e2e.processes import DCMON, get, running, wait_for
from tests.integration import free_port, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
OURS = ROOT / "dashboards"
INTERVAL = "2s"  # the agents' push, Prometheus' scrape and rule evaluation interval
DEADLINE_S = 150.0  # after the demo started: the slowest of its parts comes within ~80 s
RANGE_S = 60
BUILTINS = {"__interval": "5s", "__interval_ms": "5000", "__rate_interval": "10s",
            "__range": "120s", "__range_s": "120", "__range_ms": "120000"}  # fmt: skip
SYSTEMS = ("prometheus", "dcmon")
# Dashboard 1860's targets with data from node_exporter and none from dcmon, with why. Each must
# still have none on dcmon: an entry that gets data is to be removed.
KNOWN_1860: dict[str, str] = {}
# Where no interface of this machine knows its speed (virtual NICs: the kernel's -1), node_exporter
# reports -125000 bytes/s and dcmon leaves the unknown out (agent/collectors/host/netclass.py).
_SPEED = 'node_network_speed_bytes{instance="$node",job="$job"}'
_NO_SPEED_1860 = {
    f"{_SPEED} * 8",
    *(f"({_SPEED} > bool 0) * (rate(node_network_{way}_bytes_total{{instance=\"$node\","
      f"job=\"$job\"}}[$__rate_interval]) / {_SPEED})" for way in ("receive", "transmit")),
}  # fmt: skip
# dcmon's panels without data in the demo, by (dashboard uid, panel title, system), with why.
# Each must still have none: an entry that gets data is to be removed.
KNOWN_EMPTY: dict[tuple[str, str, str], str] = {
    ("dcmon-gpu", "vGPU license", "prometheus"): "only vGPUs report it",
    ("dcmon-gpu", "vGPU license", "dcmon"): "only vGPUs report it",
    ("dcmon-gpu", "Retired pages", "prometheus"): "GPUs before Ampere only; H100s remap rows",
    ("dcmon-gpu", "Retired pages", "dcmon"): "GPUs before Ampere only; H100s remap rows",
}  # fmt: skip


@dataclass(frozen=True)
class Stack:
    bases: dict[str, str]  # system -> the base URL before /api/v1
    node_exporter: str  # its instance label in Prometheus
    node: str  # the demo agent's node name
    started: float  # time.monotonic() when the demo started


def _rules(tmp: Path) -> Path:
    """Returns: the shipped pack exported for Prometheus, its groups evaluated every 2 s."""
    exported = tmp / "dcmon-rules.yaml"
    files = sorted(str(path) for path in (ROOT / "alerts").glob("*.yaml"))
    subprocess.run([*DCMON, "rules", "export", *files, "-o", str(exported)], check=True,
                   timeout=60)  # fmt: skip
    pack = yaml.safe_load(exported.read_text())
    for group in pack["groups"]:
        group["interval"] = INTERVAL
    exported.write_text(yaml.safe_dump(pack))
    return exported


def _prometheus_config(dcmon_port: int, node_exporter_port: int, rules: Path) -> dict[str, Any]:
    """The example with what a test changes: targets, intervals, no token (the demo's reads are
    open), node_exporter as a second job, and the exported pack's path."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    (job,) = config["scrape_configs"]
    job.pop("authorization")
    job.update(scrape_interval=INTERVAL, scrape_timeout=INTERVAL,
               static_configs=[{"targets": [f"127.0.0.1:{dcmon_port}"]}])  # fmt: skip
    config["global"].update(scrape_interval=INTERVAL, evaluation_interval=INTERVAL)
    config["scrape_configs"].append(
        {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{node_exporter_port}"]}]}
    )
    assert config["rule_files"], "the example loads the exported pack"
    config["rule_files"] = [str(rules)]
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_binary("prometheus")
    node_exporter = require_binary("prometheus-node-exporter", "node_exporter")
    tmp = tmp_path_factory.mktemp("grafana-coverage")
    port, ne_port, prom_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    prom = f"http://127.0.0.1:{prom_port}"
    demo_argv = [*DCMON, "demo", "--port", str(port), "--data-dir", str(tmp / "demo"),
                 "--gpus", "simulated", "--interval", INTERVAL[:-1], "--scenario", "faults",
                 "--faults-skip", "40"]  # fmt: skip
    env = {"DCMON_SERVER_HINTS_IDLE_SECONDS": "60", "DCMON_SERVER_HINTS_INTERVAL_SECONDS": "10"}
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump(_prometheus_config(port, ne_port, _rules(tmp))))
    prom_argv = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]  # fmt: skip
    with ExitStack() as processes:
        started = time.monotonic()
        demo = processes.enter_context(running(demo_argv, tmp / "demo.log", env))
        processes.callback(demo.stop, signal.SIGINT, 60)
        processes.enter_context(running([node_exporter, f"--web.listen-address=127.0.0.1:"
                                         f"{ne_port}"], tmp / "node_exporter.log"))  # fmt: skip
        processes.enter_context(running(prom_argv, tmp / "prometheus.log"))
        wait_for(lambda: f"{url}/" in demo.output(), 90, "the demo banner")
        wait_for(lambda: get(prom + "/-/ready").status_code == 200, 60, "Prometheus ready")

        def nodes() -> list[str]:
            return [n["name"] for n in get(url + "/api/v1/nodes").json()["nodes"]]

        wait_for(lambda: len(nodes()) == 2, 60, "both demo nodes")
        (node,) = [name for name in nodes() if name != FAULTY_NODE]
        up = f'{prom}/api/v1/query?query=count(up{{job=~"dcmon|node"}} == 1)'
        wait_for(lambda: '"2"]' in get(up).text, 60, "Prometheus scraping dcmon and node")
        yield Stack({"prometheus": prom, "dcmon": url + "/prometheus"},
                    f"127.0.0.1:{ne_port}", node, started)  # fmt: skip
        assert "Traceback" not in demo.output(), demo.output()[-3000:]


def _no_interface_knows_its_speed() -> bool:
    speeds = []
    for path in Path("/sys/class/net").glob("*/speed"):
        try:
            speeds.append(int(path.read_text()))
        except (OSError, ValueError):  # EINVAL: no link, or no speed to tell
            continue
    return all(speed < 0 for speed in speeds)


def _range(client: httpx.Client, base: str, expr: str, end: float) -> Any:
    params = {"query": expr, "start": f"{end - RANGE_S:.3f}", "end": f"{end:.3f}", "step": "5"}
    return reference.ask(client, base, "query_range", params)


def _count(data: Any) -> int:
    """Returns: how many series (a scalar: 1) an answer holds."""
    return 1 if data["resultType"] == "scalar" else len(data["result"])


def _community(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((reference.DASHBOARDS / reference.FILES[name]).read_text())
    return loaded


def test_dashboard_1860_has_data_on_dcmon_where_node_exporter_has(stack: Stack) -> None:
    prom = stack.bases["prometheus"]
    with httpx.Client(timeout=60.0) as client:
        ready = f'count(rate(node_cpu_seconds_total{{instance="{stack.node}"}}[10s]))'
        wait_for(lambda: bool(reference.ask(client, prom, "query", {"query": ready})["result"]),
                 60, "rates of dcmon's node in Prometheus")  # fmt: skip
        raw = reference.targets(_community("1860"))
        end = time.time()
        sides = {"node": {"job": "node", "node": stack.node_exporter},
                 "dcmon": {"job": "dcmon", "node": stack.node}}  # fmt: skip
        found = {side: {expr for expr in raw if reference.has_data(_range(
                    client, prom, reference.substitute(expr, {**BUILTINS, **values}), end))}
                 for side, values in sides.items()}  # fmt: skip
    known = dict(KNOWN_1860)
    if _no_interface_knows_its_speed():
        known.update(dict.fromkeys(_NO_SPEED_1860, "no interface here knows its speed"))
    assert set(known) <= set(raw), f"not targets of 1860: {sorted(set(known) - set(raw))}"
    missing = sorted(found["node"] - found["dcmon"] - set(known))
    print(
        f"dashboard 1860: {len(raw)} targets, node_exporter {len(found['node'])} with data, "
        f"dcmon {len(found['dcmon'])} with data"
    )
    print("\n".join(f"  empty on dcmon: {expr}" for expr in missing))
    print("\n".join(f"  data on dcmon only: {e}" for e in sorted(found["dcmon"] - found["node"])))
    assert not missing, f"{len(missing)} targets have data on node_exporter only"
    fixed = sorted(set(known) & found["dcmon"])
    assert not fixed, f"KNOWN_1860 entries that have data now (remove them): {fixed}"


def test_dashboard_12239_has_data_on_dcmon_through_both(stack: Stack) -> None:
    dashboard = _community("12239")
    empty = []
    with httpx.Client(timeout=60.0) as client:
        end = time.time()
        for system, base in stack.bases.items():
            values = {**reference.variables(client, base, dashboard, end), **BUILTINS}
            for raw in reference.targets(dashboard):
                if not reference.has_data(_range(client, base, reference.substitute(raw, values),
                                                 end)):  # fmt: skip
                    empty.append(f"{system}: {raw}")
    print(f"dashboard 12239: {len(reference.targets(dashboard))} targets, empty: {len(empty)}")
    assert not empty, "\n".join(empty)


@dataclass(frozen=True)
class Target:
    uid: str
    panel: str
    ref_id: str
    expr: str
    instant: bool


def _ours() -> list[tuple[dict[str, Any], list[Target]]]:
    dashboards = []
    for path in sorted(OURS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        found = [Target(dashboard["uid"], panel["title"], target["refId"], target["expr"],
                        target["instant"])
                 for panel in dashboard["panels"] if panel["type"] != "row"
                 for target in panel["targets"]]  # fmt: skip
        dashboards.append((dashboard, found))
    return dashboards


def _escape(value: str) -> str:
    """Returns: ``value`` as Grafana writes one of several values into a PromQL regex string:
    regex metacharacters escaped, and each escape's backslash doubled for the string."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def _resolve(
    client: httpx.Client, base: str, dashboard: dict[str, Any], node: str
) -> dict[str, str]:
    """Returns: the dashboard's variables as Grafana sets them, but the node is the demo
    agent's (the one with jobs and a benchmark of its own), where it is among the values."""
    values = dict(BUILTINS)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = reference._LABEL_VALUES.match(reference.substitute(variable["definition"], values))
        assert match, variable["definition"]
        selector, label = match.groups()
        params = {"start": str(time.time() - 3600), "end": str(time.time()), "match[]": selector}
        found: list[str] = reference.ask(client, base, f"label/{label}/values", params)
        if variable["name"] == "instance" and node in found:
            found = [node]
        if variable["includeAll"] and found:
            values[variable["name"]] = "(" + "|".join(map(_escape, found)) + ")"
        else:
            values[variable["name"]] = found[0] if found else ""
    return values


def _ask(client: httpx.Client, base: str, target: Target, values: dict[str, str]) -> int:
    expr = reference.substitute(target.expr, values)
    end = time.time()
    if target.instant:
        return _count(reference.ask(client, base, "query", {"query": expr, "time": f"{end:.3f}"}))
    return _count(_range(client, base, expr, end))


def test_every_panel_of_dcmons_dashboards_has_data_through_both(stack: Stack) -> None:
    counts: dict[tuple[Target, str], int] = {}
    ours = _ours()
    with httpx.Client(timeout=60.0) as client:
        todo = [(dashboard, target, system) for dashboard, found in ours
                for target in found for system in SYSTEMS]  # fmt: skip
        while todo:
            values = {(d["uid"], s): _resolve(client, stack.bases[s], d, stack.node)
                      for d, _ in ours for s in SYSTEMS}  # fmt: skip
            for dashboard, target, system in todo:
                counts[target, system] = _ask(client, stack.bases[system], target,
                                              values[dashboard["uid"], system])  # fmt: skip
            todo = [(d, target, s) for d, target, s in todo if not counts[target, s]
                    and (target.uid, target.panel, s) not in KNOWN_EMPTY]  # fmt: skip
            if todo and time.monotonic() - stack.started < DEADLINE_S:
                time.sleep(3)
            elif todo:
                break
        # the known-empty ones asked once more, now that everything else has come: one that
        # has data by now is to leave KNOWN_EMPTY
        for dashboard, found in ours:
            for target in found:
                for system in SYSTEMS:
                    if (target.uid, target.panel, system) in KNOWN_EMPTY:
                        counts[target, system] = _ask(client, stack.bases[system], target,
                                                      values[dashboard["uid"], system])  # fmt: skip
    waited = time.monotonic() - stack.started
    report, empty = [f"dcmon's dashboards ({waited:.0f} s after the demo started):"], []
    for dashboard, found in ours:
        report.append(f"  {dashboard['uid']}")
        for title in dict.fromkeys(target.panel for target in found):
            mine = [target for target in found if target.panel == title]
            totals = {s: sum(counts[target, s] for target in mine) for s in SYSTEMS}
            report.append(f"    {title}: Prometheus {totals['prometheus']}, "
                          f"dcmon {totals['dcmon']}")  # fmt: skip
            for target in mine:
                for system in SYSTEMS:
                    known = (target.uid, title, system) in KNOWN_EMPTY
                    if not counts[target, system] and not known:
                        empty.append(f"{target.uid} / {title} / {target.ref_id} on {system}: "
                                     f"{target.expr}")  # fmt: skip
    print("\n".join(report))
    assert not empty, f"{len(empty)} targets without data:\n" + "\n".join(empty)
    has_data = {(t.uid, t.panel, s) for (t, s), n in counts.items() if n}
    fixed = sorted(set(KNOWN_EMPTY) & has_data)
    assert not fixed, f"KNOWN_EMPTY entries that have data now (remove them): {fixed}"
    unknown = set(KNOWN_EMPTY) - {(t.uid, t.panel, s) for t, s in counts}
    assert not unknown, f"KNOWN_EMPTY names panels that do not exist: {sorted(unknown)}"
