"""``dcmon token``: make tokens, and manage the ones the server issues.

    dcmon token new                   print a new random token and its hash (for config files)
    dcmon token hash < FILE           print the hash of a token read from stdin
    dcmon token create --role ROLE    issue a token in the server's database (shown once)
    dcmon token list                  list the database's active tokens (never their secrets)
    dcmon token revoke TOKEN_ID       revoke a token at once

``new`` and ``hash`` make config-file tokens: the token goes to its user (an agent's token_file,
mode 0600), only the hash to the server's config. ``create``, ``list`` and ``revoke`` act on
the server's database directly (settings as for ``dcmon server``: --config, --database-url,
--data-dir), applying schema migrations first if needed. A running server sees a revocation
made here within its ``credential_cache_seconds``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.auth.credentials import Credential, CredentialStore

ISSUED_BY_CLI = "cli"


def new_token() -> str:
    return "dcm_" + secrets.token_urlsafe(32)


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dcmon token", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("new", help="print a new token and its SHA-256")
    sub.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    create = sub.add_parser("create", help="issue a token in the server's database")
    create.add_argument("--role", required=True, choices=["node", "bootstrap", "read", "admin"])
    create.add_argument("--node-id", metavar="HEX", help="the node a node token may write")
    create.add_argument("--ttl", type=float, metavar="SECONDS", help="lifetime (default: none)")
    create.add_argument("--name", default="", help="what the token is for")
    listing = sub.add_parser("list", help="list issued tokens (never their secrets)")
    listing.add_argument("--role", choices=["node", "bootstrap", "read", "admin"])
    listing.add_argument("--all", action="store_true", help="also expired and revoked tokens")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = sub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    for database_command in (create, listing, revoke):
        database_command.add_argument("--config", type=Path, help="the server's TOML config file")
        database_command.add_argument("--data-dir", type=Path, help="the server's data dir")
        database_command.add_argument("--database-url", help="the server's SQLAlchemy URL")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.action == "new":
        token = new_token()
        print(f"token:  {token}")
        print(f"sha256: {sha256_hex(token)}")
        return 0
    if args.action == "hash":
        token = sys.stdin.read().strip()
        if not token:
            print("dcmon token hash: no token on stdin", file=sys.stderr)
            return 2
        print(sha256_hex(token))
        return 0
    return _in_database(args)


def _in_database(args: argparse.Namespace) -> int:
    """create, list and revoke: open the server's database, act, close it."""
    # Imported here: server.auth imports this module (new_token, sha256_hex).
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from server.auth.credentials import CredentialError, CredentialStore  # noqa: PLC0415
    from server.settings import SettingsError, load_settings  # noqa: PLC0415
    from server.storage.db import make_engine  # noqa: PLC0415
    from server.storage.migrate import upgrade  # noqa: PLC0415
    from server.storage.writer import Writer  # noqa: PLC0415

    where = f"dcmon token {args.action}"
    overrides = {
        key: value
        for key in ("data_dir", "database_url")
        if (value := getattr(args, key)) is not None
    }
    try:
        settings = load_settings(args.config, overrides)
    except SettingsError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.effective_database_url())
    writer = Writer(engine)
    try:
        upgrade(engine)
        store = CredentialStore(engine, writer, time.time)
        if args.action == "create":
            return _create(store, args)
        if args.action == "list":
            return _list(store, args)
        return _revoke(store, args)
    except CredentialError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"{where}: database error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        writer.close()
        engine.dispose()


def _create(store: CredentialStore, args: argparse.Namespace) -> int:
    from server.auth.principal import Role  # noqa: PLC0415

    node_id = args.node_id.lower() if args.node_id is not None else None
    issued = store.create(
        Role(args.role),
        node_id=node_id,
        ttl_seconds=args.ttl,
        name=args.name,
        created_by=ISSUED_BY_CLI,
    )
    credential = issued.credential
    print(f"token:    {issued.token}")
    print(f"token_id: {credential.token_id}")
    print(f"role:     {credential.role.value}")
    if credential.node_id is not None:
        print(f"node_id:  {credential.node_id}")
    print(f"expires:  {_when(credential.expires_at, 'never')}")
    print("The token is shown only now; only its SHA-256 is stored.", file=sys.stderr)
    return 0


def _list(store: CredentialStore, args: argparse.Namespace) -> int:
    from server.auth.principal import Role  # noqa: PLC0415

    found = store.list(Role(args.role) if args.role else None, include_inactive=args.all)
    now = time.time()
    if args.json:
        print(json.dumps([_document(credential, now) for credential in found], indent=2))
        return 0
    rows = [("TOKEN_ID", "ROLE", "STATE", "NODE_ID", "CREATED", "EXPIRES", "NAME")]
    rows += [
        (
            credential.token_id,
            credential.role.value,
            credential.state(now),
            credential.node_id or "-",
            _when(credential.created_at, "-"),
            _when(credential.expires_at, "never"),
            credential.name,
        )
        for credential in found
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), end=""
        )
        print(f"  {row[-1]}".rstrip())
    return 0


def _revoke(store: CredentialStore, args: argparse.Namespace) -> int:
    credential = store.revoke(args.token_id)
    when = _when(credential.revoked_at, "-")
    print(f"revoked {credential.token_id} ({credential.role.value} token) at {when}")
    return 0


def _document(credential: Credential, now: float) -> dict[str, Any]:
    document = asdict(credential)
    document["role"] = credential.role.value
    document["state"] = credential.state(now)
    return document


def _when(seconds: float | None, none: str) -> str:
    if seconds is None:
        return none
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
