"""``dcmon alerts`` and ``dcmon rules list``: what a running server evaluates, as tables or JSON.

Stage: CLI over the rules API (``GET /api/v1/alerts``, ``GET /api/v1/rules``), like
``amtool alert`` and Prometheus' rules page. The server is ``--server`` (default
``$DCMON_SERVER_URL`` or http://127.0.0.1:8470), the read token comes from ``--token-file`` or
``$DCMON_TOKEN`` (none with ``open_reads``). Filters run here, on the server's answer:

    dcmon alerts [--state firing|pending|resolved] [--match 'severity="critical"' ...] [--json]
    dcmon rules list [--state firing|pending|inactive] [--unhealthy] [--type T] [--json]

Both are listings: exit status 0 when the server answered, firing alerts and unhealthy rules
included; 1 when it refused (its reason is printed) or could not be reached; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from server.api_client import ApiClient, ApiRefusedError, add_server_options, read_token
from server.notify.matchers import Matcher, MatcherError, matches_all, parse_matchers
from server.text_table import duration, number, since, table

Clock = Callable[[], float]
_SHOWN_LABELS = ("alertname", "severity", "instance")


def alerts_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon alerts", description="List the pending and firing alerts of a dcmon server."
    )
    add_server_options(p)
    p.add_argument("--state", choices=("firing", "pending", "resolved"), action="append")
    p.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="MATCHER",
        help='only alerts whose labels match, e.g. severity=critical or instance=~"gpu0.*"',
    )
    p.add_argument(
        "--resolved", action="store_true", help="include alerts resolved in the last 15 minutes"
    )
    return p


def rules_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon rules list", description="List the rule groups and rules a server evaluates."
    )
    add_server_options(p)
    p.add_argument("--state", choices=("firing", "pending", "inactive"), action="append")
    p.add_argument("--type", choices=("alerting", "recording"))
    p.add_argument("--unhealthy", action="store_true", help="only rules whose health is not ok")
    return p


def _get(
    prog: str,
    args: argparse.Namespace,
    path: str,
    params: Mapping[str, str],
    transport: httpx.BaseTransport | None,
) -> dict[str, Any]:
    """Returns: the JSON body of ``GET path``. Raises: ApiRefusedError (one line, prefixed)."""
    try:
        with ApiClient(args.server, read_token(args.token_file), transport) as client:
            return client.get(path, params)
    except ApiRefusedError as exc:
        raise ApiRefusedError(f"{prog}: {exc}") from exc


# -- dcmon alerts ---------------------------------------------------------------------------


def alerts_main(
    argv: list[str], transport: httpx.BaseTransport | None = None, clock: Clock = time.time
) -> int:
    args = alerts_parser().parse_args(argv)
    try:
        matchers = parse_matchers(args.match) if args.match else ()
    except MatcherError as exc:
        print(f"dcmon alerts: {exc}", file=sys.stderr)
        return 2
    states = set(args.state or ())
    resolved = args.resolved or "resolved" in states
    params = {"resolved": "true"} if resolved else {}
    try:
        body = _get("dcmon alerts", args, "/api/v1/alerts", params, transport)
    except ApiRefusedError as exc:
        print(exc, file=sys.stderr)
        return 1
    alerts = select_alerts(body.get("alerts", []), states, matchers)
    if args.json:
        print(json.dumps({"alerts": alerts}, indent=2, sort_keys=True))
    else:
        print(alerts_table(alerts, clock()))
    return 0


def select_alerts(
    alerts: Sequence[dict[str, Any]], states: set[str], matchers: Sequence[Matcher]
) -> list[dict[str, Any]]:
    """Returns: the alerts in one of ``states`` (any when empty) whose labels match all."""
    return [
        a
        for a in alerts
        if (not states or a.get("state") in states) and matches_all(matchers, a.get("labels", {}))
    ]


def alerts_table(alerts: Sequence[dict[str, Any]], now: float) -> str:
    """Returns: one line per alert under a header; the summary annotation last."""
    head = ("ALERTNAME", "STATE", "SEVERITY", "INSTANCE", "ACTIVE SINCE", "VALUE", "LABELS")
    rows = []
    for a in alerts:
        labels: dict[str, str] = a.get("labels", {})
        others = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _SHOWN_LABELS)
        rows.append(
            (
                labels.get("alertname", ""),
                str(a.get("state", "")),
                labels.get("severity", "-"),
                labels.get("instance", "-"),
                since(a.get("active_at"), now),
                number(a.get("value")),
                others or "-",
                a.get("annotations", {}).get("summary", ""),
            )
        )
    return table(head, rows, f"{len(alerts)} alerts")


# -- dcmon rules list -----------------------------------------------------------------------


def rules_main(
    argv: list[str], transport: httpx.BaseTransport | None = None, clock: Clock = time.time
) -> int:
    args = rules_parser().parse_args(argv)
    try:
        body = _get("dcmon rules list", args, "/api/v1/rules", {}, transport)
    except ApiRefusedError as exc:
        print(exc, file=sys.stderr)
        return 1
    groups = select_rules(
        body.get("groups", []), set(args.state or ()), args.type, unhealthy=args.unhealthy
    )
    if args.json:
        print(json.dumps({**body, "groups": groups}, indent=2, sort_keys=True))
        return 0
    print(rules_table(groups, clock()))
    for name, problems in sorted(body.get("file_errors", {}).items()):
        print(f"dcmon rules list: {name} did not load: {'; '.join(problems)}", file=sys.stderr)
    if body.get("leader") is False:
        print(
            "dcmon rules list: this replica does not evaluate the rules (not the leader); "
            "health and evaluation times are the leader's to report",
            file=sys.stderr,
        )
    return 0


def select_rules(
    groups: Sequence[dict[str, Any]], states: set[str], kind: str | None, *, unhealthy: bool
) -> list[dict[str, Any]]:
    """Returns: the groups with only their rules that pass every filter (groups left without
    rules dropped when a filter is set)."""

    def keep(rule: dict[str, Any]) -> bool:
        return (
            (not states or rule.get("state") in states)
            and (kind is None or rule.get("type") == kind)
            and (not unhealthy or rule.get("health") != "ok")
        )

    filtering = bool(states) or kind is not None or unhealthy
    out = []
    for group in groups:
        rules = [r for r in group.get("rules", []) if keep(r)]
        if rules or not filtering:
            out.append({**group, "rules": rules})
    return out


def rules_table(groups: Sequence[dict[str, Any]], now: float) -> str:
    """Returns: one line per rule under a header; the last error, if any, last."""
    head = ("GROUP", "RULE", "TYPE", "HEALTH", "STATE", "ACTIVE", "LAST EVAL", "EVAL TIME")
    rows = []
    for group in groups:
        for rule in group.get("rules", []):
            recording = rule.get("type") == "recording"
            rows.append(
                (
                    str(group.get("name", "")),
                    str(rule.get("name", "")),
                    str(rule.get("type", "")),
                    str(rule.get("health", "")),
                    "-" if recording else str(rule.get("state") or "-"),
                    "-" if recording else str(rule.get("alerts", 0)),
                    since(rule.get("last_evaluation"), now, never="never"),
                    duration(rule.get("evaluation_seconds")),
                    f"error: {rule['last_error']}" if rule.get("last_error") else "",
                )
            )
    count = sum(len(g.get("rules", [])) for g in groups)
    return table(head, rows, f"{count} rules in {len(groups)} groups")
