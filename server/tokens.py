"""``dcmon token``: make tokens, and manage the ones the server issues.

``new`` and ``hash`` make config-file tokens: the token goes to its user (an agent's token_file,
mode 0600), only the hash to the server's config. ``create``, ``list`` and ``revoke`` act on
the server's existing database directly (settings as for ``dcmon server``: --config,
--database-url, --data-dir), applying pending schema migrations first; they refuse a database
that does not exist, so a mistyped path never yields a token no server reads (``--init``
creates it). A running server sees a revocation made here within its
``credential_cache_seconds``. The token helpers themselves live in ``server.auth.secrets``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from server.auth.credentials import Credential, CredentialError, CredentialStore
from server.auth.principal import Role
from server.auth.secrets import new_token, sha256_hex
from server.settings import ServerSettings, SettingsError, load_settings
from server.storage.db import make_engine
from server.storage.migrate import current_revision, upgrade
from server.storage.writer import Writer

ISSUED_BY_CLI = "cli"
ROLES = [role.value for role in (Role.NODE, Role.BOOTSTRAP, Role.READ, Role.ADMIN, Role.SCHEDULER)]

_SUMMARY = """\
commands:
  dcmon token new                   print a new random token and its hash (for config files)
  dcmon token hash < FILE           print the hash of a token read from stdin
  dcmon token create --role ROLE    issue a token in the server's database (shown once)
  dcmon token list                  list the database's active tokens (never their secrets)
  dcmon token revoke TOKEN_ID       revoke a token at once

create, list and revoke open the server's existing database (--config, --data-dir or
--database-url, as for dcmon server) and refuse one that does not exist; --init creates it."""


class DatabaseMissingError(Exception):
    """The database the settings name does not exist (or holds no dcmon schema)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon token",
        description="Make tokens, and manage the ones the server issues.",
        epilog=_SUMMARY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser(
        "new",
        help="print a new token and its SHA-256",
        description="Print a new random token and its SHA-256. The token goes to its user "
        "(an agent's token_file, mode 0600), the hash to the server's config "
        "(ingest_token_sha256, read_token_sha256, ...). Nothing is stored.",
    )
    sub.add_parser(
        "hash",
        help="print the SHA-256 of a token read from stdin",
        description="Print the SHA-256 of the token read from stdin, as the server's config "
        "expects it (e.g. dcmon token hash < /etc/dcmon/agent.token).",
    )
    create = sub.add_parser(
        "create",
        help="issue a token in the server's database",
        description="Issue a token in the server's database; it is shown once, only its "
        "SHA-256 is stored.",
    )
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--node-id", metavar="HEX", help="the node a node token may write")
    create.add_argument("--ttl", type=float, metavar="SECONDS", help="lifetime (default: none)")
    create.add_argument("--name", default="", help="what the token is for")
    listing = sub.add_parser(
        "list",
        help="list issued tokens (never their secrets)",
        description="List the tokens issued in the server's database (never their secrets).",
    )
    listing.add_argument("--role", choices=ROLES)
    listing.add_argument("--all", action="store_true", help="also expired and revoked tokens")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = sub.add_parser(
        "revoke",
        help="revoke a token at once",
        description="Revoke a token (and unconfirmed rotations of it) at once.",
    )
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    for database_command in (create, listing, revoke):
        database_command.add_argument("--config", type=Path, help="the server's TOML config file")
        database_command.add_argument("--data-dir", type=Path, help="the server's data dir")
        database_command.add_argument("--database-url", help="the server's SQLAlchemy URL")
        database_command.add_argument(
            "--init",
            action="store_true",
            help="create the database (and its schema) if it does not exist yet",
        )
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
    url = settings.effective_database_url()
    try:
        _check_exists(settings, url, init=args.init)
    except DatabaseMissingError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(url)
    writer = Writer(engine)
    try:
        _open_schema(engine, url, init=args.init)
        return _act(CredentialStore(engine, writer, time.time), args)
    except (CredentialError, DatabaseMissingError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"{where}: database error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        writer.close()
        engine.dispose()


def _act(store: CredentialStore, args: argparse.Namespace) -> int:
    if args.action == "create":
        return _create(store, args)
    if args.action == "list":
        return _list(store, args)
    return _revoke(store, args)


def _check_exists(settings: ServerSettings, url: str, init: bool) -> None:
    """Refuse a SQLite file that is not there before anything creates it (or its folder).

    Raises:
        DatabaseMissingError: the file does not exist and ``init`` is off.
    """
    parsed = make_url(url)
    if init or parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if database and database != ":memory:" and not Path(database).is_file():
        hint = "" if settings.database_url else " (from --data-dir or data_dir)"
        raise DatabaseMissingError(
            f"no dcmon database at {database}{hint}; check the path, or pass --init to "
            "create a new one"
        )


def _open_schema(engine: Engine, url: str, init: bool) -> None:
    """Bring an existing dcmon database to the newest schema; with ``init``, create it.

    Raises:
        DatabaseMissingError: the database holds no dcmon schema and ``init`` is off.
    """
    shown = make_url(url).render_as_string(hide_password=True)
    if current_revision(engine) is None:
        if not init:
            raise DatabaseMissingError(
                f"the database {shown} has no dcmon schema; check the URL, or pass --init "
                "to create it"
            )
        upgrade(engine)
        print(f"created the dcmon database at {_where(url)}", file=sys.stderr)
        return
    upgrade(engine)


def _where(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return parsed.render_as_string(hide_password=True)


def _create(store: CredentialStore, args: argparse.Namespace) -> int:
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
