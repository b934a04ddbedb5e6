"""TLS for the agent's connections to the server: one ``ssl.SSLContext`` built at start-up.

Input: ``transport.ca_file`` (the CA bundle that signed the server's certificate; default: the
system store), ``transport.client_cert_file`` and ``transport.client_key_file`` (for servers that
require client certificates). Output: a client context with certificate and host name
verification always on and TLS 1.2 as the oldest version offered. Every problem with the files is
a ``ConfigError`` naming the key, so a typo stops the agent at start-up instead of failing each
send.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from agent.config import ConfigError, TransportSettings


class _EncryptedKeyError(Exception):
    """The client key asks for a pass phrase (the agent runs unattended and has none)."""


def client_context(settings: TransportSettings, server_url: str) -> ssl.SSLContext | None:
    """Returns: the context for an ``https`` server URL, or None for ``http``.

    Raises:
        ConfigError: a file cannot be read or holds no usable certificate or key, or TLS files
            are configured for an ``http`` URL (they would silently do nothing).
    """
    if urlsplit(server_url).scheme != "https":
        configured = [
            key
            for key, value in (
                ("ca_file", settings.ca_file),
                ("client_cert_file", settings.client_cert_file),
            )
            if value is not None
        ]
        if configured:
            raise ConfigError(
                f"transport.{configured[0]} is set but server_url {server_url} is not https://"
            )
        return None
    context = _with_trust(settings.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if settings.client_cert_file is not None and settings.client_key_file is not None:
        _load_client_pair(context, settings.client_cert_file, settings.client_key_file)
    return context


def _with_trust(ca_file: Path | None) -> ssl.SSLContext:
    if ca_file is None:
        return ssl.create_default_context()
    _check_readable("transport.ca_file", ca_file)
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"transport.ca_file {ca_file} holds no usable PEM certificate ({_reason(exc)})"
        ) from None


def _load_client_pair(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    _check_readable("transport.client_cert_file", cert_file)
    _check_readable("transport.client_key_file", key_file)

    def no_pass_phrase() -> str:
        raise _EncryptedKeyError

    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=no_pass_phrase)
    except _EncryptedKeyError:
        raise ConfigError(
            f"transport.client_key_file {key_file} is encrypted; the agent needs an unencrypted "
            "key (keep it mode 0600)"
        ) from None
    except ssl.SSLError as exc:
        raise ConfigError(
            f"transport.client_cert_file {cert_file} and client_key_file {key_file} are not a "
            f"usable PEM certificate and matching key ({_reason(exc)})"
        ) from None


def _check_readable(key: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key} {path}: {exc.strerror or exc}") from None


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc)
