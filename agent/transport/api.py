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

from agent import __version__
from agent.transport.endpoint import Endpoint, retry_after_seconds

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
        self._endpoint = Endpoint.parse(server_url, ssl_context)
        self.server_url = self._endpoint.base_url
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
        connection = self._endpoint.connection(self._timeout)
        try:
            connection.request("POST", self._endpoint.prefix + path, body=body, headers=headers)
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
        return Reply(status, parsed, retry_after_seconds(retry_after))
