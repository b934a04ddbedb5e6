"""How long the server takes to render ``/metrics`` for a fleet, in-process (no HTTP).

Fills a renderer's view of the fleet with ``--nodes`` simulated nodes (``loadgen``'s 8-GPU
nodes, about 400 series each, decoded by the server's own batch decoder, so label dicts are
fresh per batch as after ingest), then times ``Renderer.render`` three ways:

- first: the first scrape after start-up, every series' template built;
- live: every node has a new batch since the previous scrape (a fleet pushing every 10 s,
  scraped every 10 s or slower): templates reused, every value printed;
- idle: no new batch since the previous scrape: the kept pieces collected.

``bench/ingest.py`` measures ``GET /metrics`` over HTTP after its paced load stops (so mostly
the idle case plus the transfer); this script is the live case, which only an in-process
timing can isolate.

    .venv/bin/python bench/metrics_render.py --nodes 1000 --rounds 5
    .venv/bin/python bench/metrics_render.py --smoke   # CI: 5 nodes; fails unless the page
                                                       # holds every series with its value
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from loadgen import ROOT, Layout, SimNode

sys.path.insert(0, str(ROOT))

from agent.wire.catalog import default_catalog
from server import gc_policy
from server.exposition.page import Page
from server.exposition.render import Renderer
from server.ingest.fast_decode import decode_batch
from server.latest.cache import NodeLatest, StalePolicy

NOW = 1_800_000_000.0
INTERVAL_SECONDS = 10.0


def fleet(nodes: list[SimNode], tick: int) -> list[NodeLatest]:
    """Returns: every node's next batch as the latest cache would hold it."""
    out = []
    for node in nodes:
        batch = decode_batch(node.render(round((NOW + tick * 1e-3) * 1000)), "gzip", 1 << 26)
        out.append(
            NodeLatest(
                node_id=batch.node.node_id,
                name=batch.node.name,
                labels=dict(batch.node.labels),
                interval_seconds=batch.interval_seconds,
                last_push=NOW,
                batch_ts=batch.timestamp,
                seq=batch.seq,
                families={family.name: family.samples for family in batch.metrics},
            )
        )
    return out


def timed(renderer: Renderer, latest: list[NodeLatest], timestamps: bool) -> tuple[float, Page]:
    began = time.perf_counter()
    page = Page(renderer.render(latest, NOW, timestamps))
    return time.perf_counter() - began, page


def check(page: Page, latest: list[NodeLatest]) -> list[str]:
    """Returns: what the page gets wrong: a node series missing, extra, or with another value
    (the simulated nodes have no node labels, and their label values need no escaping)."""
    values: dict[str, float] = {}
    for line in bytes(page).decode().splitlines():
        series, _, value = line.rpartition(" ")
        if not line.startswith(("#", "dcmon_node_")):
            values[series] = float(value)
    problems = []
    expected = 0
    for node in latest:
        for name, samples in node.families.items():
            for labels, value in samples:
                expected += 1
                own = "".join(f',{k}="{v}"' for k, v in labels.items())
                series = f'{name}{{instance="{node.name}"{own}}}'
                if values.get(series) != value:
                    problems.append(f"{series}: {values.get(series)} on the page, {value} sent")
    if len(values) != expected:
        problems.append(f"{len(values)} node series on the page, {expected} sent")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="live and idle renders each")
    parser.add_argument("--timestamps", action="store_true", help="the ?timestamps=1 form")
    parser.add_argument("--smoke", action="store_true", help="5 nodes, 2 rounds; check it")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.rounds = 5, 2
    layout = Layout.build("full", INTERVAL_SECONDS)
    nodes = [SimNode(layout, "dcmon", 1, "node", i, args.nodes) for i in range(args.nodes)]
    gc_policy.tune()  # as the server does (gc_tuned): the long-lived heap is not walked
    renderer = Renderer(default_catalog(), StalePolicy(3, 30, 7 * 86400))
    latest = fleet(nodes, 0)
    first, page = timed(renderer, latest, args.timestamps)
    live, idle = [], []
    problems: list[str] = []
    for tick in range(1, args.rounds + 1):
        latest = fleet(nodes, tick)
        seconds, page = timed(renderer, latest, args.timestamps)
        live.append(seconds)
        idle.append(timed(renderer, latest, args.timestamps)[0])
        if args.smoke:
            problems += check(page, latest)
    print(
        f"/metrics render, {args.nodes} nodes x {layout.series} series"
        f" ({page.size / 1e6:.1f} MB{', timestamps' if args.timestamps else ''}):"
        f" first {first:.3f} s; live (every node a new batch) median"
        f" {statistics.median(live):.3f} s {[round(s, 3) for s in live]};"
        f" idle (no new batch) median {statistics.median(idle):.3f} s"
    )
    if args.smoke:
        for problem in problems[:10]:
            print(f"  {problem}")
        print(f"metrics_render smoke: {'FAILED' if problems else 'OK'}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
