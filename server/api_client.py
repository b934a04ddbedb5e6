"""A running server's API from the command line: what ``dcmon alerts``, ``dcmon rules list`` and
``dcmon benchmarks`` share.

Stage: CLI -> a server's REST API. The server is ``--server`` (default ``$DCMON_SERVER_URL`` or
http://127.0.0.1:8470), the bearer token comes from ``--token-file`` or ``$DCMON_TOKEN`` (none
with ``open_reads`` for reads). Every answer that is not 2xx, and every transport failure,
becomes ``ApiRefusedError`` with one line to print: the server's own reason where it gave one.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8470"
TIMEOUT_SECONDS = 10.0


class ApiRefusedError(Exception):
    """The server could not be reached, or answered with an error (the message says which)."""


def add_server_options(p: argparse.ArgumentParser, role: str = "read") -> None:
    """``--server``, ``--token-file`` and ``--json`` on a command's parser."""
    p.add_argument(
        "--server",
        default=os.environ.get("DCMON_SERVER_URL", DEFAULT_SERVER),
        help=f"the server's URL (default $DCMON_SERVER_URL or {DEFAULT_SERVER})",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the API token ({role} role; default $DCMON_TOKEN)",
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def read_token(path: Path | None) -> str:
    """Returns: the token in ``path``, else ``$DCMON_TOKEN``, else "" (no token).

    Raises: ApiRefusedError when the file cannot be read.
    """
    if path is None:
        return os.environ.get("DCMON_TOKEN", "").strip()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ApiRefusedError(f"cannot read the token file {path}: {exc.strerror}") from exc


class ApiClient:
    """JSON calls to one server; a context manager around one HTTP connection pool."""

    def __init__(
        self, server: str, token: str, transport: httpx.BaseTransport | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server
        self._client = httpx.Client(
            base_url=server, headers=headers, transport=transport, timeout=TIMEOUT_SECONDS
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._client.close()

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Returns: the JSON body of ``GET path``. Raises: ApiRefusedError."""
        return self._call("GET", path, params=dict(params or {}))

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Returns: the JSON body of ``POST path``. Raises: ApiRefusedError."""
        return self._call("POST", path, json=dict(body or {}))

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiRefusedError(f"cannot reach {self.server}: {exc}") from exc
        if not answer.is_success:
            raise ApiRefusedError(f"{answer.status_code}: {error_reason(answer)}")
        try:
            body = answer.json()
        except ValueError as exc:
            raise ApiRefusedError(f"{self.server} did not answer JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiRefusedError(f"{self.server} answered {type(body).__name__}, not an object")
        return body


def error_reason(answer: httpx.Response) -> str:
    """Returns: the server's reason for an error answer (its message and problems), else the
    body's text."""
    try:
        error = answer.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return answer.text.strip() or answer.reason_phrase
    problems = error.get("problems") or []
    where = [
        f"{p.get('location', '')}: {p.get('message', '')}" for p in problems if isinstance(p, dict)
    ]
    return "; ".join([message, *where])
