"""Where the server is: its URL parsed once, connections opened the same way for every caller.

Shared by the ingest transport (``http.py``) and the token calls (``api.py``), so both read the
URL, choose HTTP or HTTPS and read ``Retry-After`` alike.
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Endpoint:
    """A server URL: ``http(s)://host[:port][/prefix]``."""

    base_url: str  # without a trailing slash
    prefix: str  # the URL's path, prepended to every route
    host: str
    port: int | None  # None: the scheme's default
    ssl_context: ssl.SSLContext | None  # None for http

    @classmethod
    def parse(cls, server_url: str, ssl_context: ssl.SSLContext | None = None) -> Endpoint:
        """Args:
        ssl_context: for ``https``: trust settings (default: the system's CA store, with
            certificate and host name verification); ignored for ``http``.

        Raises:
            ValueError: the URL is not an http(s) URL with a host.
        """
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL {server_url!r} is not http(s)://host[:port][/path]")
        https = parts.scheme == "https"
        context = (ssl_context or ssl.create_default_context()) if https else None
        return cls(
            server_url.rstrip("/"), parts.path.rstrip("/"), parts.hostname, parts.port, context
        )

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """Returns: a new (not yet connected) connection to the server."""
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def retry_after_seconds(value: str | None) -> float | None:
    """Returns: a ``Retry-After`` header (delta seconds or HTTP date) in seconds, bounded to an
    hour; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))
