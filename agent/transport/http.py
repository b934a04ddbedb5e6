"""HTTP transport: POST the gzip JSON batch to the server's ingest endpoint.

Maps httpx's exceptions and the server's status codes to ``RetryableError`` / ``RejectedError``
here, once. The token travels as a bearer token and is never logged.
"""

from __future__ import annotations

import email.utils
import time

import httpx
from pydantic import ValidationError

from agent import __version__
from agent.transport.base import RejectedError, RetryableError
from agent.wire.codec import CONTENT_ENCODING, CONTENT_TYPE
from agent.wire.schema import Ack

INGEST_PATH = "/api/v1/ingest"
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Refusals of this agent's identity (token, node name), not of the batch: keep the data and
# retry, so the backlog flows once an operator fixes the token or the name.
_IDENTITY_STATUS = frozenset({401, 403, 409})


class HttpTransport:
    """Sends batches over one keep-alive HTTP client."""

    def __init__(
        self,
        server_url: str,
        token: str | None,
        timeout_seconds: float,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``http_transport`` replaces the network (tests pass ``httpx.MockTransport``)."""
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Content-Encoding": CONTENT_ENCODING,
            "User-Agent": f"dcmon-agent/{__version__}",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._url = server_url.rstrip("/") + INGEST_PATH
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            follow_redirects=False,
            transport=http_transport,
        )

    def send(self, payload: bytes) -> Ack:
        try:
            response = self._client.post(self._url, content=payload)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timed out talking to {self._url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RetryableError(f"cannot reach {self._url}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            try:
                return Ack.model_validate_json(response.content)
            except ValidationError as exc:
                raise RetryableError(f"server answered {status} without a valid ack") from exc
        code, message = _error_of(response)
        if status in _RETRYABLE_STATUS:
            raise RetryableError(
                f"server answered {status}: {message}", retry_after=_retry_after(response)
            )
        if status in _IDENTITY_STATUS:
            raise RetryableError(f"server refused this node ({status} {code}): {message}")
        raise RejectedError(f"server refused the batch ({status} {code}): {message}", status, code)

    def close(self) -> None:
        self._client.close()


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """Returns: (code, message) from the server's JSON error body, or the raw text."""
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return str(error.get("code", "")), str(error.get("message", "")) or response.text[:300]
    except ValueError:
        return "", response.text[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """Returns: the Retry-After header in seconds (delta or HTTP date), if present and sane."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), 3600.0))
