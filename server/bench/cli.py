"""``dcmon benchmarks``: ask a server for GPU benchmark runs on nodes, follow them, read results.

Stage: CLI over the benchmark API (``server.bench.router``), like ``dcmon silence``:

    dcmon benchmarks request (--node N ... | --selector k=v ...) [--level quick|standard|burn]
                             [--gpus 0,1] [--duration S] [--force] [--expires-in S] [--wait]
    dcmon benchmarks list [--node N] [--state S] [--limit K]
    dcmon benchmarks show ID
    dcmon benchmarks cancel ID ...
    dcmon benchmarks results [--node N] [--gpu UUID] [--sku K] [--test T] [--verdict V]
                             [--since 24h] [--limit K]
    dcmon benchmarks fleet [--sku K] [--test T] [--outliers]

``request`` and ``cancel`` need an admin token, the rest a read token (``--token-file`` or
``$DCMON_TOKEN``). ``--wait`` follows the requests to their end with a progress display on a
terminal (one line per change otherwise), then prints each run's figures with their SKU and
fleet verdicts. Every command takes ``--json``.

Exit status: 0 on success (with ``--wait``: every run done and passed); 1 when the server
refuses or cannot be reached, or a waited-for run failed, was refused, cancelled or expired;
2 for usage errors; 130 when Ctrl-C stops the waiting (the runs go on; ``cancel`` stops them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from agent.wire.bench import BENCH_REQUESTS_PATH, BENCH_RESULTS_PATH
from server.api_client import ApiClient, ApiRefusedError, add_server_options, read_token
from server.bench.cli_tables import fleet_table, requests_table, results_table
from server.bench.follow import Follower, all_passed
from server.rules.duration import parse_duration

PROG = "dcmon benchmarks"
FLEET_PATH = "/api/v1/bench/fleet"
LEVELS = ("quick", "standard", "burn")
STATES = ("pending", "waiting", "running", "done", "failed", "refused", "cancelled", "expired")
VERDICTS = ("pass", "warn", "fail", "unjudged")
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
Clock = Callable[[], float]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Benchmark runs on nodes, through a dcmon server.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    request = sub.add_parser("request", help="ask nodes to run the GPU benchmark (admin)")
    add_server_options(request, role="admin")
    target = request.add_mutually_exclusive_group(required=True)
    target.add_argument("--node", action="append", help="a node name or id (repeatable)")
    target.add_argument("--selector", action="append", type=_label, metavar="LABEL=VALUE",
                        help="nodes whose labels all match (repeatable)")  # fmt: skip
    request.add_argument("--level", choices=LEVELS, default="quick", help="default: quick")
    request.add_argument("--gpus", type=_indices, help="device indices, e.g. 0,1 (default: all)")
    request.add_argument("--duration", type=_positive, help="the burn's duration in seconds")
    request.add_argument("--force", action="store_true",
                         help="run even while compute processes use the GPUs")  # fmt: skip
    request.add_argument("--expires-in", type=_positive, metavar="SECONDS",
                         help="not started within this long: the request expires")  # fmt: skip
    request.add_argument("--wait", action="store_true",
                         help="follow the runs to their end and print their figures")  # fmt: skip
    listing = sub.add_parser("list", help="benchmark requests, newest first")
    add_server_options(listing)
    listing.add_argument("--node")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", help="one request, with its result once final")
    add_server_options(show)
    show.add_argument("id")
    cancel = sub.add_parser("cancel", help="cancel requests (admin)")
    add_server_options(cancel, role="admin")
    cancel.add_argument("ids", nargs="+", metavar="ID")
    results = sub.add_parser("results", help="figures, newest first, with fleet verdicts")
    add_server_options(results)
    results.add_argument("--node")
    results.add_argument("--gpu", help="a device: NVML's UUID, or <node>/cpu<index>")
    results.add_argument("--sku")
    results.add_argument("--test")
    results.add_argument("--verdict", choices=VERDICTS)
    results.add_argument("--since", type=_duration, help="this far back, e.g. 24h or 7d")
    results.add_argument("--limit", type=int, default=100)
    fleet = sub.add_parser("fleet", help="each device's latest figures against its SKU's fleet")
    add_server_options(fleet)
    fleet.add_argument("--sku")
    fleet.add_argument("--test")
    fleet.add_argument("--outliers", action="store_true", help="only the fleet outliers")
    return p


def main(
    argv: list[str],
    transport: httpx.BaseTransport | None = None,
    clock: Clock = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    args = parser().parse_args(argv)
    try:
        with ApiClient(args.server, read_token(args.token_file), transport) as client:
            if args.action == "request":
                return _request(client, args, clock, sleep)
            action = {"list": _list, "show": _show, "cancel": _cancel, "results": _results}
            if args.action in action:
                return action[args.action](client, args, clock)
            return _fleet(client, args)
    except ApiRefusedError as exc:
        print(f"{PROG} {args.action}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            f"{PROG}: stopped waiting; the runs go on ('{PROG} cancel ID' stops one)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _request(
    client: ApiClient, args: argparse.Namespace, clock: Clock, sleep: Callable[[float], None]
) -> int:
    body: dict[str, Any] = {"level": args.level, "force": args.force}
    if args.node:
        body["nodes"] = args.node
    else:
        body["selector"] = dict(args.selector)
    for key, value in (("gpus", args.gpus), ("duration_s", args.duration),
                       ("expires_in_s", args.expires_in)):  # fmt: skip
        if value is not None:
            body[key] = value
    made = client.post(BENCH_REQUESTS_PATH, body)
    created: list[dict[str, Any]] = made.get("created", [])
    for skipped in made.get("skipped", []):
        print(f"{PROG}: skipped {skipped['node']}: {skipped['reason']}", file=sys.stderr)
    if not args.wait:
        _print(args, made, lambda: requests_table(created, clock()))
        return 0
    if not args.json:
        print(requests_table(created, clock()))
    final = Follower(client, sleep=sleep).follow([r["id"] for r in created])
    figures = figures_of(client, final)
    if args.json:
        print(json.dumps({"requests": final, "results": figures}, indent=2, sort_keys=True))
    else:
        print(requests_table(final, clock()))
        if figures:
            print(results_table(figures, clock()))
    return 0 if all_passed(final) else EXIT_FAILED


def figures_of(client: ApiClient, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Returns: the stored figures of these requests' runs, by node, device and test, with
    their fleet verdicts."""
    out = []
    for request in requests:
        if request.get("run_id") is None:
            continue
        answer = client.get(BENCH_RESULTS_PATH, {"node": request["node_id"], "limit": "5000"})
        out += [f for f in answer["results"] if f.get("run_id") == request["run_id"]]
    return sorted(out, key=lambda f: (f["node"], f["gpu_index"], f["test"]))


def _list(client: ApiClient, args: argparse.Namespace, clock: Clock) -> int:
    params = {"limit": str(args.limit)}
    if args.node:
        params["node"] = args.node
    if args.state:
        params["state"] = args.state
    answer = client.get(BENCH_REQUESTS_PATH, params)
    _print(args, answer, lambda: requests_table(answer["requests"], clock()))
    return 0


def _show(client: ApiClient, args: argparse.Namespace, clock: Clock) -> int:
    request = client.get(f"{BENCH_REQUESTS_PATH}/{args.id}")

    def text() -> str:
        lines = [requests_table([request], clock())]
        figures = figures_of(client, [request])
        if figures:
            lines.append(results_table(figures, clock()))
        return "\n".join(lines)

    _print(args, request, text)
    return 0


def _cancel(client: ApiClient, args: argparse.Namespace, clock: Clock) -> int:
    cancelled = [client.post(f"{BENCH_REQUESTS_PATH}/{rid}/cancel") for rid in args.ids]
    _print(args, {"requests": cancelled}, lambda: requests_table(cancelled, clock()))
    return 0


def _results(client: ApiClient, args: argparse.Namespace, clock: Clock) -> int:
    params = {"limit": str(args.limit)}
    for key in ("node", "gpu", "sku", "test", "verdict"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.since is not None:
        params["since"] = repr(clock() - args.since)
    answer = client.get(BENCH_RESULTS_PATH, params)
    _print(args, answer, lambda: results_table(answer["results"], clock()))
    return 0


def _fleet(client: ApiClient, args: argparse.Namespace) -> int:
    params = {"outliers": "true"} if args.outliers else {}
    for key in ("sku", "test"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    answer = client.get(FLEET_PATH, params)
    _print(args, answer, lambda: fleet_table(answer["groups"], answer["gpus"]))
    return 0


def _print(args: argparse.Namespace, body: object, text: Callable[[], str]) -> None:
    print(json.dumps(body, indent=2, sort_keys=True) if args.json else text())


def _label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE, got {text!r}")
    return name, value


def _indices(text: str) -> list[int]:
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices like 0,1, got {text!r}") from None
    if any(i < 0 for i in indices):
        raise argparse.ArgumentTypeError(f"device indices are not negative, got {text!r}")
    return indices


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text) / 1000.0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
