"""HTTP transport: POST the gzip JSON batch to the server's ingest endpoint, or several batches
at once to the bulk endpoint while a backlog is replayed.

Stage: spool -> transport -> server ingest. Built on the standard library's ``http.client`` so the
agent carries no HTTP client package (importing one cost more resident memory than the rest of the
transport path). One keep-alive connection is reused from batch to batch; it is reopened when the
server has closed it or when a send fails.

Network failures and the server's answers are mapped to the transport's exceptions here, once,
by the wire contract's rule (``agent.wire.protocol``):

- 2xx with a valid ack: delivered;
- an error whose JSON code is permanent (the batch is malformed or too large): ``RejectedError``,
  the batch is set aside for good;
- any other answer (5xx, 429 and 503 honouring ``Retry-After``, a proxy's 404, 501, a refused
  token or node name, a timestamp ahead of the server's clock, an unknown code, no JSON at all)
  and every network failure (refused, reset, TLS, timeout): ``RetryableError``, the batch is
  kept and sent again with backoff;
- bulk only: 404/405 (no bulk route), 415 or ``bad_framing`` (the route does not take the
  request) mean ``BulkUnsupportedError``; 413 means ``RejectedError``, send fewer at once.

A 409 ``unknown_layout`` (a compact batch whose layout key the server does not hold) is a
``RetryableError`` with that ``code``, which the shipper answers by sending the batch in full.
Every request says, with ``X-Dcmon-Layouts: 1``, that this agent takes layout keys, unless that
is turned off (``layouts``).

Bulk framing, the media type and the ``X-Dcmon-Sent-At`` header (this node's wall clock when a
request is sent, so the server can tell how far the node's clock is off) are the wire contract's.

The token travels as a bearer token and is never logged. It is a string, or a function asked
before each request (an enrolled token that may change); that function raises
``RetryableError`` while there is no token yet.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import time
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from agent import __version__
from agent.transport.base import (
    BulkResult,
    BulkUnsupportedError,
    RejectedError,
    RetryableError,
)
from agent.transport.endpoint import Endpoint, retry_after_seconds
from agent.wire.codec import CONTENT_ENCODING, CONTENT_TYPE
from agent.wire.protocol import (
    BULK_MEDIA_TYPE,
    BULK_PATH,
    INGEST_PATH,
    LAYOUTS_HEADER,
    NO_BULK_ROUTE_STATUSES,
    SENT_AT_HEADER,
    UNKNOWN_LAYOUT,
    BulkAnswer,
    frame_records,
    is_permanent,
)
from agent.wire.schema import Ack

CONNECT_TIMEOUT_MAX_SECONDS = 5.0
# An ack is a few dozen bytes and an error a few hundred; anything past this is not read.
MAX_RESPONSE_BYTES = 64 * 1024
# A bulk answer holds one short result per batch (at most 1,000 batches).
MAX_BULK_RESPONSE_BYTES = 1024 * 1024
# Refusals of this agent's identity (token, node name), not of the batch: the data is kept and
# the backlog flows once an operator fixes the token or the name.
_IDENTITY_STATUS = frozenset({401, 403, 409})
# Bulk answers that say the route does not take this request (a proxy in the way, a server
# that reads another framing): single requests still work.
_BULK_NOT_TAKEN_STATUS = frozenset({415})
_BULK_NOT_TAKEN_CODES = frozenset({"bad_framing"})
# Failures that mean "the server had already closed the idle connection we reused".
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    BrokenPipeError,
)


class _Response:
    """What is kept of one HTTP response: status, headers and (bounded) body."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpTransport:
    """Sends batches over one keep-alive HTTP or HTTPS connection."""

    def __init__(
        self,
        server_url: str,
        token: str | Callable[[], str | None] | None,
        timeout_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
        wall: Callable[[], float] = time.time,
        layouts: bool = True,
    ) -> None:
        """Args:
        server_url: ``http://host[:port][/prefix]`` or ``https://...``.
        token: the node's ingest token, sent as ``Authorization: Bearer``; or a function
            returning it, asked before each request (it raises ``RetryableError`` while no
            token is available yet); None sends no ``Authorization``.
        timeout_seconds: the read timeout; connecting (and the TLS handshake) gets at most
            5 s of it.
        ssl_context: for ``https``: trust settings (default: the system's CA store, with
            certificate and host name verification).
        wall: the wall clock stamped into ``X-Dcmon-Sent-At``.
        layouts: ask for layout keys (``X-Dcmon-Layouts: 1``), so that later batches may be
            sent compact; off: the server gives none and every batch goes in full.

        Raises:
            ValueError: the URL is not an http(s) URL with a host.
        """
        self._endpoint = Endpoint.parse(server_url, ssl_context)
        self._read_timeout = timeout_seconds
        self._connect_timeout = min(CONNECT_TIMEOUT_MAX_SECONDS, timeout_seconds)
        self._token = token
        self._wall = wall
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"dcmon-agent/{__version__}",
        }
        if layouts:
            self._headers[LAYOUTS_HEADER] = "1"
        self._single_headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": CONTENT_ENCODING}
        self._bulk_headers = {"Content-Type": BULK_MEDIA_TYPE}
        self._connection: http.client.HTTPConnection | None = None

    def send(self, payload: bytes) -> Ack:
        response = self._post(INGEST_PATH, payload, self._single_headers, MAX_RESPONSE_BYTES)
        status = response.status
        if 200 <= status < 300:
            try:
                return Ack.model_validate_json(response.body)
            except ValidationError as exc:
                raise RetryableError(f"server answered {status} without a valid ack") from exc
        raise _failure(response, "the batch")

    def send_many(self, payloads: Sequence[bytes]) -> list[BulkResult]:
        body = frame_records(tuple(payloads))
        response = self._post(BULK_PATH, body, self._bulk_headers, MAX_BULK_RESPONSE_BYTES)
        status = response.status
        if 200 <= status < 300:
            try:
                answer = BulkAnswer.model_validate_json(response.body)
            except ValidationError as exc:
                raise RetryableError(
                    f"server answered {status} without valid bulk results"
                ) from exc
            if len(answer.results) != len(payloads):
                raise RetryableError(
                    f"server answered {len(answer.results)} bulk results "
                    f"for {len(payloads)} batches"
                )
            return [
                BulkResult(
                    record.status,
                    record.seq,
                    record.samples,
                    record.http_status,
                    record.code,
                    record.message,
                    tuple(record.refused),
                    answer.bench,
                )
                for record in answer.results
            ]
        code, message = _error_of(response)
        if status in NO_BULK_ROUTE_STATUSES:
            raise BulkUnsupportedError(f"server has no bulk ingest ({status})")
        if status in _BULK_NOT_TAKEN_STATUS or code in _BULK_NOT_TAKEN_CODES:
            raise BulkUnsupportedError(
                f"server does not take this bulk request ({status} {code}): {message}"
            )
        if status == 413:
            raise RejectedError(
                f"server found a bulk request of {len(payloads)} batches too large "
                f"({status} {code}): {message}",
                status,
                code,
            )
        raise _failure(response, f"a bulk request of {len(payloads)} batches")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post(
        self, route: str, body: bytes, content_headers: dict[str, str], max_response: int
    ) -> _Response:
        """One POST; a reused connection the server closed meanwhile is reopened once.

        Sending a batch twice is safe: the server ignores a ``(node, seq)`` it already has.

        Raises:
            RetryableError: the server cannot be reached, or there is no token yet.
        """
        headers = self._headers | content_headers
        token = self._token() if callable(self._token) else self._token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path, url = self._endpoint.prefix + route, self._endpoint.base_url + route
        reused = self._connection is not None
        try:
            try:
                return self._exchange(path, body, headers, max_response)
            except _STALE_CONNECTION_ERRORS:
                self.close()
                if not reused:
                    raise
                return self._exchange(path, body, headers, max_response)
        except TimeoutError as exc:
            self.close()
            raise RetryableError(f"timed out talking to {url}: {_describe(exc)}") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RetryableError(f"cannot reach {url}: {_describe(exc)}") from exc

    def _exchange(
        self, path: str, body: bytes, headers: dict[str, str], max_response: int
    ) -> _Response:
        connection = self._connect()
        headers[SENT_AT_HEADER] = f"{self._wall():.3f}"
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(max_response)
        if response.will_close or not response.isclosed():
            # The server closes (or the body was too long to read in full): start afresh next time.
            self.close()
        return _Response(response.status, response.headers, answer)

    def _connect(self) -> http.client.HTTPConnection:
        """Returns: the open connection, or a new one if there is none or the server closed it."""
        connection = self._connection
        if connection is not None and connection.sock is not None and _still_open(connection.sock):
            return connection
        self.close()
        connection = self._endpoint.connection(self._connect_timeout)
        self._connection = connection
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(self._read_timeout)
        return connection


def _still_open(sock: socket.socket) -> bool:
    """Returns: False when an idle keep-alive socket was closed by the server.

    An idle connection has nothing to read; readable means end-of-file (the server closed it)
    or stray bytes, and either way it cannot carry the next request.
    """
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _describe(exc: BaseException) -> str:
    """Returns: the exception as a short phrase (some stdlib errors have an empty message)."""
    text = str(exc)
    return text if text else type(exc).__name__


def _failure(response: _Response, what: str) -> RetryableError | RejectedError:
    """Returns: the exception for a non-2xx answer (see the module docstring)."""
    status = response.status
    code, message = _error_of(response)
    if is_permanent(code):
        return RejectedError(f"server refused {what} ({status} {code}): {message}", status, code)
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if code == UNKNOWN_LAYOUT:
        return RetryableError(
            f"server does not hold the layout of {what} ({status} {code}): {message}",
            retry_after,
            status,
            code,
        )
    if status in _IDENTITY_STATUS:
        return RetryableError(
            f"server refused this node ({status} {code}): {message}", retry_after, status, code
        )
    described = f"{status} {code}" if code else str(status)
    return RetryableError(f"server answered {described}: {message}", retry_after, status, code)


def _error_of(response: _Response) -> tuple[str, str]:
    """Returns: (code, message) from the server's JSON error body, or the raw text."""
    try:
        body = json.loads(response.body)
    except ValueError:
        return "", response.text[:300]
    error = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        error = {}
    return str(error.get("code", "")), str(error.get("message", "")) or response.text[:300]
