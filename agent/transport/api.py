"""JSON calls to the server's token endpoints (enroll, rotate), over the transport's TLS settings.

Stage: agent credentials -> server auth. These calls are rare (once per enrollment or rotation),
so each opens its own connection. Network failures are mapped once, here, to
``UnreachableError``; every HTTP answer, error or not, comes back as a ``Reply`` for the caller
to judge. The bearer token is never logged.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agent import __version__

# An answer is a token and two ids, an error a few hundred bytes; anything past this is not read.
MAX_RESPONSE_BYTES = 64 * 1024


class UnreachableError(Exception):
    """The server could not be reached, or the exchange broke off (network, TLS, timeout)."""


@dataclass(frozen=True)
class Reply:
    status: int
    document: Any  # the JSON body, or None
    retry_after: float | None

    def error(self) -> tuple[str, str]:
        """Returns: (code, message) of a JSON error body, or empty strings."""
        error = self.document.get("error") if isinstance(self.document, dict) else None
        if not isinstance(error, dict):
            return "", ""
        return str(error.get("code", "")), str(error.get("message", ""))

    def describe(self) -> str:
        code, message = self.error()
        return f"{self.status} {code}: {message}" if code else str(self.status)


class ApiClient:
    """JSON POSTs to the server's token endpoints, one connection per call (they are rare)."""

    def __init__(
        self, server_url: str, ssl_context: ssl.SSLContext | None, timeout_seconds: float
    ) -> None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL {server_url!r} is not http(s)://host[:port][/path]")
        self.server_url = server_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port
        self._tls = parts.scheme == "https"
        self._ssl_context = ssl_context
        if self._tls and self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        self._timeout = timeout_seconds

    def post(self, path: str, bearer: str, document: dict[str, str] | None) -> Reply:
        """POST ``document`` (or an empty body) with ``bearer`` as the token.

        Raises:
            UnreachableError: the server cannot be reached, or the exchange broke off.
        """
        body = b"" if document is None else json.dumps(document).encode()
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json",
            "User-Agent": f"dcmon-agent/{__version__}",
        }
        if document is not None:
            headers["Content-Type"] = "application/json"
        connection: http.client.HTTPConnection
        if self._tls:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            connection.request("POST", self._prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_RESPONSE_BYTES)
            status, retry_after = response.status, response.headers.get("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            raise UnreachableError(
                f"cannot reach {self.server_url}: {str(exc) or type(exc).__name__}"
            ) from exc
        finally:
            connection.close()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Reply(status, parsed, _seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    """Returns: a Retry-After given in seconds, bounded; None when absent or not a number."""
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        return None
