"""The demo's benchmark request: a quick run on the demo's nodes once they have reported.

Stage: a one-shot child of ``dcmon demo`` (``python -m server.demo_bench``). It waits until the
server knows ``--nodes`` nodes, asks for a quick benchmark run on each with the demo's admin
key, as an operator would with ``dcmon benchmarks request --wait``, follows the runs (one line
per change, since it shares the demo's terminal) and prints each run's figures with their SKU
and fleet verdicts. The runs themselves are the agents' own: simulated GPUs get figures
modelled on their SKU, a node without GPUs measures its CPU with numpy.

Exit status: 0 when every run passed, 1 when one did not or the server refused, 2 when the
nodes did not all report within ``--timeout``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.wire.bench import BENCH_REQUESTS_PATH
from server.api_client import ApiClient, ApiRefusedError, read_token
from server.bench.cli import figures_of
from server.bench.cli_tables import results_table
from server.bench.follow import Follower, LineDisplay, all_passed

POLL_SECONDS = 1.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server.demo_bench")
    p.add_argument("--server", required=True)
    p.add_argument("--token-file", type=Path, required=True, help="the demo's admin key")
    p.add_argument("--nodes", type=int, default=1, help="wait for this many nodes")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for them")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        with ApiClient(args.server, read_token(args.token_file)) as client:
            names = _wait_for_nodes(client, args.nodes, args.timeout)
            if names is None:
                print(f"demo benchmark: fewer than {args.nodes} nodes reported", file=sys.stderr)
                return 2
            return _run(client, names)
    except ApiRefusedError as exc:
        print(f"demo benchmark: {exc}", file=sys.stderr)
        return 1


def _wait_for_nodes(client: ApiClient, count: int, timeout: float) -> list[str] | None:
    deadline = time.monotonic() + timeout
    while True:
        nodes = client.get("/api/v1/nodes")["nodes"]
        if len(nodes) >= count:
            return sorted(str(node["name"]) for node in nodes)
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)


def _run(client: ApiClient, names: list[str]) -> int:
    made = client.post(BENCH_REQUESTS_PATH, {"nodes": names, "level": "quick"})
    ids = [request["id"] for request in made["created"]]
    print(f"demo benchmark: a quick run asked of {', '.join(names)}", flush=True)
    final = Follower(client, display=LineDisplay(sys.stdout)).follow(ids)
    figures = figures_of(client, final)
    if figures:
        print(results_table(figures, time.time()), flush=True)
    return 0 if all_passed(final) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
