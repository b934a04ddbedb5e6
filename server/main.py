"""``dcmon server``: load settings and serve the application with uvicorn."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url

from agent import __version__
from server.app import create_app
from server.settings import ServerSettings, SettingsError, load_settings
from server.storage.db import make_engine
from server.storage.migrate import current_revision, upgrade

_log = logging.getLogger("server")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon server",
        description="Ingest agent pushes, keep history, serve the API, /metrics and the web page.",
    )
    p.add_argument("--config", type=Path, help="TOML config file (default /etc/dcmon/server.toml)")
    p.add_argument("--host", dest="listen_host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", dest="listen_port", type=int, help="port (default 8470)")
    p.add_argument("--data-dir", type=Path, help="where the SQLite database lives")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")
    p.add_argument(
        "--ingest-token-sha256",
        action="append",
        metavar="HEX",
        help="accept ingest tokens with this SHA-256 (repeat; see `dcmon token new`)",
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--migrate-only", action="store_true", help="apply migrations and exit")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    overrides: dict[str, Any] = {
        key: value
        for key in (
            "listen_host",
            "listen_port",
            "data_dir",
            "database_url",
            "ingest_token_sha256",
            "log_level",
        )
        if (value := getattr(args, key)) is not None
    }
    try:
        settings = load_settings(args.config, overrides)
    except SettingsError as exc:
        print(f"dcmon server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.migrate_only:
        engine = make_engine(settings.effective_database_url())
        upgrade(engine)
        print(f"database at revision {current_revision(engine)}")
        return 0
    return serve(settings)


def serve(settings: ServerSettings) -> int:
    app = create_app(settings)
    _log.info(
        "dcmon server %s on http://%s:%d (database %s)",
        __version__,
        settings.listen_host,
        settings.listen_port,
        _redacted(settings.effective_database_url()),
    )
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal so that the
    # handler installed before it runs. That handler is this no-op: a graceful stop exits 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _signum, _frame: None)
    uvicorn.Server(config).run()
    _log.info("stopped")
    return 0


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
