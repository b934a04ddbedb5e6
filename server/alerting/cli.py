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
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from server.notify.matchers import Matcher, MatcherError, matches_all, parse_matchers

DEFAULT_SERVER = "http://127.0.0.1:8470"
Clock = Callable[[], float]
_SHOWN_LABELS = ("alertname", "severity", "instance")


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("DCMON_SERVER_URL", DEFAULT_SERVER))
    p.add_argument("--token-file", type=Path, help="file holding the API token (read role)")
    p.add_argument("--json", action="store_true", help="print the filtered answer as JSON")


def alerts_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon alerts", description="List the pending and firing alerts of a dcmon server."
    )
    _server_options(p)
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
    _server_options(p)
    p.add_argument("--state", choices=("firing", "pending", "inactive"), action="append")
    p.add_argument("--type", choices=("alerting", "recording"))
    p.add_argument("--unhealthy", action="store_true", help="only rules whose health is not ok")
    return p


class _RefusedError(Exception):
    """The server answered, but not 200 (the message is the line to print)."""


def _get(
    prog: str,
    args: argparse.Namespace,
    path: str,
    params: Mapping[str, str],
    transport: httpx.BaseTransport | None,
) -> dict[str, Any]:
    """Returns: the JSON body of ``GET path``. Raises: _RefusedError (one line, with the reason)."""
    token = _token(args.token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(
            base_url=args.server, headers=headers, transport=transport, timeout=10.0
        ) as client:
            answer = client.get(path, params=dict(params))
    except httpx.HTTPError as exc:
        raise _RefusedError(f"{prog}: cannot reach {args.server}: {exc}") from exc
    if answer.status_code != 200:
        try:
            reason = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = answer.text
        raise _RefusedError(f"{prog}: {answer.status_code}: {reason}")
    try:
        body: dict[str, Any] = answer.json()
    except ValueError as exc:
        raise _RefusedError(f"{prog}: {args.server} did not answer JSON: {exc}") from exc
    return body


def _token(path: Path | None) -> str:
    if path is not None:
        return path.read_text().strip()
    return os.environ.get("DCMON_TOKEN", "").strip()


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
    except _RefusedError as exc:
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
                _since(a.get("active_at"), now),
                _number(a.get("value")),
                others or "-",
                a.get("annotations", {}).get("summary", ""),
            )
        )
    return _table(head, rows, f"{len(alerts)} alerts")


# -- dcmon rules list -----------------------------------------------------------------------


def rules_main(
    argv: list[str], transport: httpx.BaseTransport | None = None, clock: Clock = time.time
) -> int:
    args = rules_parser().parse_args(argv)
    try:
        body = _get("dcmon rules list", args, "/api/v1/rules", {}, transport)
    except _RefusedError as exc:
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
                    _since(rule.get("last_evaluation"), now, never="never"),
                    _duration(rule.get("evaluation_seconds")),
                    f"error: {rule['last_error']}" if rule.get("last_error") else "",
                )
            )
    count = sum(len(g.get("rules", [])) for g in groups)
    return _table(head, rows, f"{count} rules in {len(groups)} groups")


# -- formatting -----------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], footer: str) -> str:
    """Columns padded to their widest cell; a row's cell past the header's count goes last,
    unpadded (summaries and errors are long)."""
    widths = [len(h) for h in head]
    for row in rows:
        for i, cell in enumerate(row[: len(head)]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[: len(head)])]
        return "  ".join([*padded, *cells[len(head) :]]).rstrip()

    return "\n".join([line(head), *(line(row) for row in rows), f"({footer})"])


def _since(seconds: object, now: float, never: str = "-") -> str:
    if not isinstance(seconds, int | float):
        return never
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({_age(now - seconds)} ago)"


def _age(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _number(value: object) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.6g}"


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    return f"{seconds:.3g}s"
