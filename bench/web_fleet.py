"""How fast the fleet page (``GET /``) renders in a real browser with a big fleet.

A fresh ``dcmon server`` (SQLite in a temporary folder, reads closed, read with a read token of
its own) gets ``--nodes`` simulated 8-GPU nodes from ``bench/loadgen.py``: each node's inventory
(host facts, its 8 GPUs with the UUIDs its series carry) in one batch, then ``--ticks`` batches
of its 400 series ``--interval`` seconds apart ending now, so the page's charts have history and
every node is up. Then, ``--runs`` times, Debian's chromium (Playwright; never a downloaded
browser) opens the page in a fresh browser context (cold cache) at 1440x900 and the page's own
clock (``performance``) gives, from navigation start:

- ``load``: the load event's end (HTML, scripts, styles);
- ``table``: the first node row (``a.node-link``) in the document;
- ``charts``: every ``.chart`` reporting ``data-state="ready"`` (drawn from the query API);
- ``ready``: the later of the three: the page rendered and usable.

Also the server's own HTML answer for ``GET /`` (wall time of the request, 5 times, median).
Target: ``ready`` <= 2 s at 1,000 nodes and 8,000 GPUs (the median; PASS/MISS printed).

    .venv/bin/python bench/web_fleet.py                 # 1,000 nodes x 8 GPUs, 5 runs
    .venv/bin/python bench/web_fleet.py --nodes 200 --runs 3
    .venv/bin/python bench/web_fleet.py --json          # the figures as one JSON document
    .venv/bin/python bench/web_fleet.py --smoke         # CI: 50 nodes; fails when the page
                                                        # errs, shows no node or a chart no point

No chart image: matplotlib is not a dependency of the project, so none is drawn.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_overhead import BenchError, peer_required, smoke_verdict
from loadgen import (
    MODEL_NAME,
    PCI_BUSES,
    Plan,
    Server,
    dcmon_server,
    node_id,
    node_name,
    run_plan,
)

from agent.wire.codec import encode_batch
from agent.wire.schema import Batch, GpuFacts, HostFacts, Inventory, NodeIdentity
from tests.e2e.browser.chromium import VIEWPORT, chromium_args, chromium_path

TARGET_SECONDS = 2.0
SEED = 1
PREFIX = "node-"
GPUS = 8
HTML_REPEAT = 5
PAGE_TIMEOUT_S = 60.0
# Resolves with performance.now() once the page holds a node row, then once every chart says
# it is ready (polled every animation frame, so the figure is within a frame of the truth).
_TABLE_AT = "() => document.querySelector('a.node-link') ? performance.now() : false"
_CHARTS_AT = """() => {
    const charts = [...document.querySelectorAll('.chart')];
    return charts.length > 0 && charts.every(c => c.dataset.state === 'ready')
        ? performance.now() : false;
}"""
_LOAD_AT = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return nav && nav.loadEventEnd > 0 ? nav.loadEventEnd : false;
}"""
_CHART_POINTS = """() => [...document.querySelectorAll('.chart')].map(c => ({
    query: c.dataset.query || '', points: Number(c.dataset.points || 0),
    error: c.dataset.error || ''}))"""


@dataclass(frozen=True)
class Run:
    load_ms: float
    table_ms: float
    charts_ms: float
    node_links: int
    charts: int
    chart_points: int
    problems: tuple[str, ...]

    @property
    def ready_ms(self) -> float:
        return max(self.load_ms, self.table_ms, self.charts_ms)


@dataclass
class Figures:
    nodes: int
    gpus: int
    ticks: int
    interval_seconds: float
    push_seconds: float
    html_ms: list[float] = field(default_factory=list)
    html_bytes: int = 0
    runs: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(run, name) for run in self.runs)

    def document(self) -> dict[str, Any]:
        ready = self.median("ready_ms")
        return {
            "nodes": self.nodes,
            "gpus": self.gpus,
            "ticks": self.ticks,
            "interval_seconds": self.interval_seconds,
            "push_seconds": round(self.push_seconds, 1),
            "html_ms": {"median": statistics.median(self.html_ms), "runs": self.html_ms},
            "html_bytes": self.html_bytes,
            "runs": [{**asdict(run), "ready_ms": run.ready_ms} for run in self.runs],
            "median_ms": {
                key: self.median(f"{key}_ms") for key in ("load", "table", "charts", "ready")
            },
            "target_ms": TARGET_SECONDS * 1000,
            "verdict": "PASS" if ready <= TARGET_SECONDS * 1000 else "MISS",
        }


def inventory_batch(index: int, timestamp: float, interval: float) -> bytes:
    """Returns: node ``index``'s first batch (seq 1): its inventory, no samples, stamped
    ``timestamp``; the loadgen's batches follow from seq 2, with the same node id and UUIDs."""
    name = node_name(PREFIX, index)
    gpus = [
        GpuFacts(
            index=gpu,
            uuid=f"GPU-{uuid.uuid5(uuid.NAMESPACE_OID, f'dcmon-bench:{SEED}:{name}:{gpu}')}",
            model=MODEL_NAME,
            pci_bus_id=f"00000000:{PCI_BUSES[gpu]}:00.0",
            memory_total_bytes=80 * 1024**3,
        )
        for gpu in range(GPUS)
    ]
    batch = Batch(
        node=NodeIdentity(node_id=node_id(SEED, PREFIX, index), name=name, hostname=name),
        seq=1,
        timestamp=timestamp,
        interval_seconds=interval,
        metrics=[],
        inventory=Inventory(
            host=HostFacts(cpu_count=64, memory_total_bytes=2 << 40),
            gpus=gpus,
            driver_version="550.90.07",
        ),
    )
    return encode_batch(batch)


def load_fleet(server: Server, nodes: int, ticks: int, interval: float) -> float:
    """Push the fleet: inventories, then ``ticks`` batches per node ending now; returns: the
    seconds it took."""
    began = time.monotonic()
    first_s = time.time() - (ticks + 1) * interval
    headers = {**server.target().headers(), "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{server.port}/api/v1/ingest"
    with httpx.Client(timeout=60.0) as client, ThreadPoolExecutor(4) as pool:

        def push(index: int) -> None:
            body = inventory_batch(index, first_s, interval)
            answer = client.post(url, content=body, headers=headers)
            if answer.status_code != 200:
                raise BenchError(f"inventory of node {index}: {answer.status_code} {answer.text}")

        list(pool.map(push, range(nodes)))
    plan = Plan(
        server.target(), "flat", nodes, connections=4, workers=2, interval_seconds=interval,
        ticks=ticks, first_tick=1, start_ms=int(first_s * 1000), prefix=PREFIX,
        seed=SEED,
    )  # fmt: skip
    tally = run_plan(plan, timeout=600.0)
    if tally.failures or tally.accepted != nodes * ticks:
        raise BenchError(
            f"{tally.accepted}/{nodes * ticks} pushes acknowledged, {tally.failures} failed: "
            f"{tally.errors}"
        )
    return time.monotonic() - began


def html_times(server: Server) -> tuple[list[float], int]:
    """Returns: the wall time in ms of ``GET /`` (HTML only, no assets), HTML_REPEAT times, and
    the page's size in bytes."""
    times, size = [], 0
    headers = {"Authorization": f"Bearer {server.read_token}", "Accept": "text/html"}
    with httpx.Client(timeout=60.0) as client:
        for _ in range(HTML_REPEAT):
            began = time.perf_counter()
            answer = client.get(f"http://127.0.0.1:{server.port}/", headers=headers)
            times.append(round((time.perf_counter() - began) * 1000, 1))
            if answer.status_code != 200:
                raise BenchError(f"GET / answered {answer.status_code}: {answer.text[:300]}")
            size = len(answer.content)
    return times, size


def browser_runs(server: Server, runs: int, executable: str) -> list[Run]:
    """Open the fleet page ``runs`` times, each in a fresh context; returns: each run's times."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional dependency)

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=chromium_args()
        )
        try:
            for _ in range(runs):
                context = browser.new_context(
                    viewport=VIEWPORT,  # type: ignore[arg-type]
                    extra_http_headers={"Authorization": f"Bearer {server.read_token}"},
                )
                try:
                    results.append(_one_run(context.new_page(), server.port))
                finally:
                    context.close()
        finally:
            browser.close()
    return results


def _one_run(page: Any, port: int) -> Run:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None,
    )
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )
    page.set_default_timeout(PAGE_TIMEOUT_S * 1000)
    page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
    table_ms = page.wait_for_function(_TABLE_AT, polling="raf").json_value()
    charts_ms = page.wait_for_function(_CHARTS_AT, polling="raf").json_value()
    load_ms = page.wait_for_function(_LOAD_AT, polling="raf").json_value()
    charts = page.evaluate(_CHART_POINTS)
    problems += [f"chart {c['query']!r}: {c['error']}" for c in charts if c["error"]]
    return Run(
        load_ms=round(load_ms, 1),
        table_ms=round(table_ms, 1),
        charts_ms=round(charts_ms, 1),
        node_links=page.locator("a.node-link").count(),
        charts=len(charts),
        chart_points=sum(c["points"] for c in charts),
        problems=tuple(problems),
    )


def measure(args: argparse.Namespace, executable: str) -> Figures:
    with (
        tempfile.TemporaryDirectory(prefix="dcmon-bench-web-") as scratch,
        dcmon_server(Path(scratch)) as server,
    ):
        pushed = load_fleet(server, args.nodes, args.ticks, args.interval)
        figures = Figures(args.nodes, args.nodes * GPUS, args.ticks, args.interval, pushed)
        figures.html_ms, figures.html_bytes = html_times(server)
        figures.runs = browser_runs(server, args.runs, executable)
        server.child.check_alive()
    return figures


def print_figures(figures: Figures) -> None:
    doc = figures.document()
    print(
        f"fleet page: {figures.nodes:,} nodes, {figures.gpus:,} GPUs, {figures.ticks} batches "
        f"per node {figures.interval_seconds:g} s apart (pushed in {figures.push_seconds:.0f} s)"
    )
    html = doc["html_ms"]
    print(
        f"  server HTML (GET /, {figures.html_bytes:,} bytes): median {html['median']:.0f} ms; "
        f"runs {', '.join(f'{v:.0f}' for v in html['runs'])} ms"
    )
    for key in ("load", "table", "charts", "ready"):
        values = [getattr(run, f"{key}_ms") for run in figures.runs]
        print(
            f"  {key:<7} median {doc['median_ms'][key]:6.0f} ms; "
            f"runs {', '.join(f'{v:.0f}' for v in values)} ms"
        )
    last = figures.runs[-1]
    print(
        f"  page: {last.node_links} node rows shown, {last.charts} charts, "
        f"{last.chart_points:,} points drawn"
    )
    print(
        f"  target: ready <= {TARGET_SECONDS:g} s at the median: {doc['verdict']} "
        f"({doc['median_ms']['ready'] / 1000:.2f} s)"
    )
    print("  chart: not drawn (matplotlib is not a dependency of the project)")


def smoke_problems(figures: Figures) -> list[str]:
    problems = []
    for number, run in enumerate(figures.runs, 1):
        problems += [f"run {number}: {problem}" for problem in run.problems]
        if run.node_links == 0:
            problems.append(f"run {number}: the fleet page shows no node row (a.node-link)")
        if run.charts == 0 or run.chart_points == 0:
            problems.append(f"run {number}: {run.charts} charts, {run.chart_points} points")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated 8-GPU nodes")
    parser.add_argument("--ticks", type=int, default=10, help="batches per node (history)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between batches")
    parser.add_argument("--runs", type=int, default=5, help="page loads measured")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--smoke", action="store_true", help="CI: 50 nodes, checked")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.ticks = 50, 4
    executable = chromium_path()
    if executable is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if args.smoke and not peer_required():
            print(f"web_fleet: skipped: {message}")
            return 0
        raise SystemExit(f"web_fleet: {message}")
    try:
        figures = measure(args, executable)
    except BenchError as exc:
        print(f"web_fleet: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures.document(), indent=2))
    else:
        print_figures(figures)
    if args.smoke:
        return smoke_verdict("web_fleet", smoke_problems(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
