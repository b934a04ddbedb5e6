"""``dcmon server``: load settings and serve the application with uvicorn."""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url

from agent import __version__
from server import gc_policy
from server.app import create_app
from server.auth.credentials import Credential
from server.auth.principal import Role
from server.notify.config import NotifyConfigError
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
    for flag, what in (
        ("--bootstrap-token-sha256", "bootstrap tokens (they may only enroll nodes)"),
        ("--read-token-sha256", "read tokens"),
        ("--admin-key-sha256", "admin keys"),
    ):
        p.add_argument(flag, action="append", metavar="HEX", help=f"accept {what} (repeat)")
    p.add_argument(
        "--open-reads",
        action="store_true",
        default=None,
        help="serve reads (API, /metrics, web page) without a token",
    )
    p.add_argument("--tls-cert-file", type=Path, help="PEM certificate chain: serve HTTPS")
    p.add_argument("--tls-key-file", type=Path, help="PEM private key of --tls-cert-file")
    p.add_argument(
        "--tls-client-ca-file", type=Path, help="PEM CA bundle client certificates chain to"
    )
    p.add_argument(
        "--tls-client-auth",
        choices=["none", "optional", "required"],
        help="client certificates: none (default), optional (verified when sent), required",
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
            "bootstrap_token_sha256",
            "read_token_sha256",
            "admin_key_sha256",
            "open_reads",
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "tls_client_auth",
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
    problem = tls_problem(settings)
    if problem is not None:
        _log.error("%s", problem)
        return 2
    try:
        app = create_app(settings)
    except NotifyConfigError as exc:
        _log.error("notify: %s", _one_line(str(exc)))
        return 2
    for warning in credential_warnings(settings, app.state.services.credentials.list()):
        _log.warning("%s", warning)
    if settings.gc_tuned:
        gc_policy.tune()
    scheme = "https" if settings.tls_cert_file is not None else "http"
    clients = settings.tls_client_auth
    _log.info(
        "dcmon server %s on %s://%s:%d (database %s%s)",
        __version__,
        scheme,
        settings.listen_host,
        settings.listen_port,
        _redacted(settings.effective_database_url()),
        "" if clients == "none" else f"; client certificates {clients}",
    )
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        proxy_headers=False,
        **_uvicorn_tls(settings),
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal so that the
    # handler installed before it runs. That handler is this no-op: a graceful stop exits 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _signum, _frame: None)
    uvicorn.Server(config).run()
    _log.info("stopped")
    return 0


def credential_warnings(settings: ServerSettings, issued: list[Credential]) -> list[str]:
    """Returns: what no configured or issued credential can do (push, read), one line each.

    A server that starts without them answers every push or read with 401, which looks like a
    broken agent or dashboard rather than a missing token.
    """
    roles = {credential.role for credential in issued}
    warnings = []
    can_push = (
        settings.ingest_token_sha256
        or settings.bootstrap_token_sha256
        or roles & {Role.NODE, Role.BOOTSTRAP}
    )
    if not can_push:
        warnings.append(
            "no credential can push: every agent will get 401. Configure ingest_token_sha256 "
            "or bootstrap_token_sha256 (dcmon token new), or issue one: dcmon token create "
            "--role bootstrap"
        )
    can_read = (
        settings.open_reads
        or settings.read_token_sha256
        or settings.admin_key_sha256
        or roles & {Role.READ, Role.ADMIN}
    )
    if not can_read:
        warnings.append(
            "reads are closed and no credential can read: the API, /metrics and the web page "
            "answer 401 to everyone. Configure read_token_sha256 (dcmon token new), or issue "
            "one: dcmon token create --role read"
        )
    return warnings


_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def tls_problem(settings: ServerSettings) -> str | None:
    """Returns: why the TLS files cannot be served (unreadable, not PEM, key not matching the
    certificate, encrypted key), or None when they can or TLS is off.

    uvicorn loads the same files again when it starts; checking here first turns its traceback
    into one line for the operator.
    """
    cert, key, client_ca = (
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_client_ca_file,
    )
    if cert is None:
        return None
    for name, path in (
        ("tls_cert_file", cert),
        ("tls_key_file", key),
        ("tls_client_ca_file", client_ca),
    ):
        if path is None:
            continue
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            return f"{name} {path}: {exc.strerror or exc}"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    def no_pass_phrase() -> str:
        raise _EncryptedKeyError

    try:
        context.load_cert_chain(cert, key, password=no_pass_phrase)
    except _EncryptedKeyError:
        return f"tls_key_file {key} is encrypted; the server needs an unencrypted key"
    except ssl.SSLError as exc:
        return (
            f"tls_cert_file {cert} and tls_key_file {key} are not a PEM certificate and its "
            f"matching key ({exc.reason or exc})"
        )
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            return f"tls_client_ca_file {client_ca} holds no PEM certificate ({exc.reason or exc})"
    return None


def _uvicorn_tls(settings: ServerSettings) -> dict[str, Any]:
    """Returns: uvicorn.Config's TLS arguments (none when TLS is off)."""
    if settings.tls_cert_file is None:
        return {}

    def harden(_config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = default()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    return {
        "ssl_certfile": settings.tls_cert_file,
        "ssl_keyfile": settings.tls_key_file,
        "ssl_ca_certs": settings.tls_client_ca_file,
        "ssl_cert_reqs": _CERT_REQS[settings.tls_client_auth],
        "ssl_context_factory": harden,
    }


class _EncryptedKeyError(Exception):
    """The key asks for a pass phrase (the server runs unattended and has none)."""


def _one_line(message: str) -> str:
    """Returns: ``message`` with its lines joined by "; " (one log line for the operator)."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
