"""``dcmon silence add|list|expire``: silences through the server's API (like ``amtool``).

Talks to a running server (``--server``, default ``$DCMON_SERVER_URL`` or
http://127.0.0.1:8470) with a token from ``--token-file`` or ``$DCMON_TOKEN``: ``add`` and
``expire`` need an admin token, ``list`` a read token. Matchers are written as Alertmanager's
(``alertname="GpuXid"``, ``instance=~"gpu0[1-4]"``). Exit status 0 on success, 1 when the
server refuses (its reason is printed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from server.notify.matchers import MatcherError, parse_matchers
from server.notify.model import rfc3339
from server.notify.silence_store import matchers_from_api, matchers_to_api
from server.rules.duration import parse_duration

DEFAULT_SERVER = "http://127.0.0.1:8470"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dcmon silence", description="Manage alert silences.")
    p.add_argument("--server", default=os.environ.get("DCMON_SERVER_URL", DEFAULT_SERVER))
    p.add_argument("--token-file", type=Path, help="file holding the API token")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="silence alerts matching every matcher")
    add.add_argument("matchers", nargs="+", help='e.g. alertname="GpuXid" instance=~"gpu0.*"')
    add.add_argument("--duration", default="1h", help="how long (Prometheus duration)")
    add.add_argument("--comment", required=True)
    add.add_argument("--author", default=None, help="createdBy (default: the token id)")
    lst = sub.add_parser("list", help="list silences")
    lst.add_argument("--all", action="store_true", help="include expired silences")
    expire = sub.add_parser("expire", help="expire silences now")
    expire.add_argument("ids", nargs="+")
    return p


def main(argv: list[str], transport: httpx.BaseTransport | None = None) -> int:
    args = parser().parse_args(argv)
    token = _token(args.token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(
        base_url=args.server, headers=headers, transport=transport, timeout=10.0
    ) as client:
        try:
            if args.action == "add":
                return _add(client, args)
            if args.action == "list":
                return _list(client, show_all=args.all)
            return _expire(client, args.ids)
        except httpx.HTTPError as exc:
            print(f"dcmon silence: cannot reach {args.server}: {exc}", file=sys.stderr)
            return 1


def _token(path: Path | None) -> str:
    if path is not None:
        return path.read_text().strip()
    return os.environ.get("DCMON_TOKEN", "").strip()


def _refused(answer: httpx.Response) -> int:
    try:
        reason = answer.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        reason = answer.text
    print(f"dcmon silence: {answer.status_code}: {reason}", file=sys.stderr)
    return 1


def _add(client: httpx.Client, args: argparse.Namespace) -> int:
    try:
        matchers = parse_matchers(args.matchers)
        seconds = parse_duration(args.duration) / 1000
    except (MatcherError, ValueError) as exc:
        print(f"dcmon silence add: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {
        "matchers": matchers_to_api(matchers),
        "endsAt": rfc3339(time.time() + seconds),
        "comment": args.comment,
    }
    if args.author:
        body["createdBy"] = args.author
    answer = client.post("/api/v1/silences", json=body)
    if answer.status_code != 201:
        return _refused(answer)
    print(answer.json()["silenceID"])
    return 0


def _list(client: httpx.Client, *, show_all: bool) -> int:
    answer = client.get("/api/v1/silences")
    if answer.status_code != 200:
        return _refused(answer)
    rows = [s for s in answer.json()["silences"] if show_all or s["status"]["state"] != "expired"]
    print(f"{'ID':36}  {'STATE':8}  {'ENDS':20}  {'CREATED BY':16}  MATCHERS / COMMENT")
    for s in rows:
        matchers = " ".join(str(m) for m in matchers_from_api(s["matchers"]))
        print(
            f"{s['id']:36}  {s['status']['state']:8}  {s['endsAt'][:20]:20}  "
            f"{s['createdBy'][:16]:16}  {matchers}  # {s['comment']}"
        )
    return 0


def _expire(client: httpx.Client, ids: list[str]) -> int:
    status = 0
    for silence_id in ids:
        answer = client.delete(f"/api/v1/silences/{silence_id}")
        if answer.status_code != 200:
            status = _refused(answer)
        else:
            print(f"expired {silence_id}")
    return status
