"""Enrollment and rotation: how this node gets its own token from the server.

Stage: start-up credentials -> (this) -> transport. Input: the settings (``token``,
``token_file``, ``bootstrap_token[_file]``, ``state_dir``) and the server. Output: what the
transport sends as its bearer token, resolved in this order:

1. ``token`` or ``token_file``, as configured;
2. ``<state_dir>/node-token``, written by an earlier enrollment;
3. enrollment: POST /api/v1/enroll with the bootstrap token; the per-node token the server
   issues is kept in ``<state_dir>/node-token`` (mode 0600, written atomically).

A file-backed token is a ``NodeToken`` (``node_token.py``), which re-reads its file when it
changes and, while there is none, asks the ``Enroller`` here; enrolling never blocks
collection. Attempts are paced: transient failures back off, and refusals only an operator can
fix (node already enrolled, bootstrap token refused, server without enrollment) are logged once
and retried slowly. ``rotate_token`` (``dcmon agent --rotate-token``) asks the server for a new
token and writes it where the current one is. An operator who revoked a node's token deletes
``node-token`` to make the node enroll again. Tokens are never logged; token ids are.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel, ValidationError

from agent.backoff import Backoff
from agent.config import AgentSettings, ConfigError, read_secret_file
from agent.identity import load_or_create_node_id, node_identity
from agent.node_token import NODE_TOKEN_FILE, NodeToken, write_token
from agent.statefile import StateError, ensure_directory, read_text
from agent.transport.api import ApiClient, Reply, UnreachableError
from agent.transport.base import RetryableError
from agent.wire.schema import NodeIdentity

_log = logging.getLogger(__name__)

ENROLL_PATH = "/api/v1/enroll"
ROTATE_PATH = "/api/v1/token/rotate"
# Pace of enrollment attempts that wait on an operator (node already enrolled, bootstrap token
# refused, server without enrollment): slow, so the node heals soon after the fix without
# hammering the server meanwhile.
SLOW_RETRY_SECONDS = 120.0
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_TOKEN_RE = re.compile(r"^[\x21-\x7e]{1,512}$")  # printable, no spaces: it goes in a header


class EnrollmentError(Exception):
    """Enrolling or rotating failed; the message is meant for the operator."""


class Issued(BaseModel):
    """The server's answer to enroll and rotate: the secret (shown once) and its public id."""

    token: str
    token_id: str
    node_id: str | None = None


class Enroller:
    """Trades the bootstrap token for this node's own token, pacing its attempts."""

    def __init__(
        self,
        client: ApiClient,
        bootstrap: Callable[[], str],
        identity: NodeIdentity,
        backoff: Backoff,
        monotonic: Callable[[], float] = time.monotonic,
        slow_retry_seconds: float = SLOW_RETRY_SECONDS,
    ) -> None:
        """Args:
        bootstrap: returns the bootstrap token, read when needed (its file may be removed once
            the node is enrolled); raises ConfigError when it cannot.
        """
        self._client = client
        self._bootstrap = bootstrap
        self._identity = identity
        self._backoff = backoff
        self._monotonic = monotonic
        self._slow = slow_retry_seconds
        self._next_attempt = float("-inf")
        self._logged_reason = ""

    def enroll(self) -> Issued:
        """One enrollment attempt, unless the previous one failed too recently.

        Raises:
            RetryableError: not enrolled (yet); ``retry_after`` says when the next attempt is due.
        """
        now = self._monotonic()
        if now < self._next_attempt:
            wait = self._next_attempt - now
            raise RetryableError(f"not enrolled yet; next attempt in {wait:.0f}s", wait)
        try:
            issued = self._attempt()
        except _TransientError as exc:
            self._fail(exc.reason, str(exc), self._backoff.next_delay(exc.retry_after), False)
        except _OperatorNeededError as exc:
            self._fail(exc.reason, str(exc), max(self._slow, self._backoff.next_delay()), True)
        self._backoff.reset()
        self._next_attempt = float("-inf")
        self._logged_reason = ""
        return issued

    def _attempt(self) -> Issued:
        try:
            bootstrap = self._bootstrap()
        except ConfigError as exc:
            raise _OperatorNeededError("bootstrap", f"cannot enroll: {exc}") from None
        document = {
            "node_id": self._identity.node_id,
            "name": self._identity.name,
            "hostname": self._identity.hostname,
        }
        try:
            reply = self._client.post(ENROLL_PATH, bootstrap, document)
        except UnreachableError as exc:
            raise _TransientError("unreachable", f"cannot enroll: {exc}") from None
        if reply.status == 201:
            return _issued(reply, "enrollment")
        code, _ = reply.error()
        node = self._identity.node_id
        if reply.status in _TRANSIENT_STATUS:
            raise _TransientError(
                str(reply.status),
                f"cannot enroll: the server answered {reply.describe()}",
                reply.retry_after,
            )
        if reply.status == 409:
            raise _OperatorNeededError(
                "already_enrolled",
                f"enrollment refused: node {node} already has an active token on the server "
                f"({reply.describe()}). A bootstrap token cannot replace it. If this node lost "
                "its token, an operator revokes the old one (`dcmon token list --role node`, "
                "then `dcmon token revoke ID`) and this node enrolls at its next attempt.",
            )
        if reply.status in (401, 403):
            raise _OperatorNeededError(
                f"bootstrap_{reply.status}",
                f"the server refused the bootstrap token ({reply.describe()}): check "
                "bootstrap_token_file against the server's bootstrap tokens",
            )
        if reply.status in (404, 405):
            raise _OperatorNeededError(
                "no_enrollment",
                f"the server at {self._client.server_url} does not offer enrollment "
                f"({reply.status}); upgrade it, or give this node a token_file",
            )
        raise _OperatorNeededError(
            f"status_{reply.status}_{code}", f"enrollment refused ({reply.describe()})"
        )

    def _fail(self, reason: str, message: str, delay: float, needs_operator: bool) -> NoReturn:
        self._next_attempt = self._monotonic() + delay
        if needs_operator and reason != self._logged_reason:
            _log.error("%s (next attempt in %.0fs)", message, delay)
            self._logged_reason = reason
        else:
            _log.debug("%s (next attempt in %.0fs)", message, delay)
        raise RetryableError(message, retry_after=delay)


def resolve_token(
    settings: AgentSettings,
    client: ApiClient,
    monotonic: Callable[[], float] = time.monotonic,
) -> str | NodeToken:
    """Returns: the configured token, or a file-backed (possibly enrolling) token source.

    Raises:
        ConfigError: no token can be had (no token, no enrolled token, no bootstrap token), or a
            configured token file cannot be read.
        StateError: the state directory cannot be used.
    """
    if settings.token is not None:
        return settings.token.get_secret_value()
    if settings.token_file is not None:
        settings.read_token()  # readable and not empty, or ConfigError now
        return NodeToken(settings.token_file)
    ensure_directory(settings.state_dir)
    path = settings.state_dir / NODE_TOKEN_FILE
    enrolled = bool(read_text(path))
    if settings.bootstrap_token is None and settings.bootstrap_token_file is None:
        if not enrolled:
            raise ConfigError(
                "no ingest token: set token_file (or DCMON_AGENT_TOKEN), or bootstrap_token_file "
                "to enroll; the server refuses unauthenticated writes"
            )
        return NodeToken(path)
    if not enrolled:
        bootstrap_token(settings)  # readable and not empty, or ConfigError now
    identity = node_identity(
        load_or_create_node_id(settings.state_dir), settings.node_name, settings.labels
    )
    backoff = Backoff(
        settings.transport.backoff_initial_seconds, settings.transport.backoff_max_seconds
    )
    enroller = Enroller(client, lambda: bootstrap_token(settings), identity, backoff, monotonic)
    return NodeToken(path, enroller)


def bootstrap_token(settings: AgentSettings) -> str:
    """Returns: the bootstrap token from ``bootstrap_token`` or ``bootstrap_token_file``.

    Raises:
        ConfigError: none is configured, or its file cannot be read or is empty.
    """
    if settings.bootstrap_token is not None:
        return settings.bootstrap_token.get_secret_value()
    if settings.bootstrap_token_file is None:
        raise ConfigError("no bootstrap token: set bootstrap_token_file")
    return read_secret_file(settings.bootstrap_token_file, "bootstrap_token_file")


@dataclass(frozen=True)
class Rotated:
    token_id: str
    path: Path


def rotate_token(settings: AgentSettings, client: ApiClient) -> Rotated:
    """Ask the server for a new token for this node and store it where the current one is.

    The server keeps the old token valid until the new one is first used, and lets an unused new
    one expire, so a failure at any step leaves the node with a working token.

    Raises:
        EnrollmentError: there is no token file to rotate, it cannot be written, or the server
            refused or could not be reached.
    """
    path = _token_file_to_rotate(settings)
    try:
        current = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise EnrollmentError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not current:
        raise EnrollmentError(f"{path} is empty: there is no token to rotate")
    try:
        reply = client.post(ROTATE_PATH, current, None)
    except UnreachableError as exc:
        raise EnrollmentError(f"token not rotated: {exc}") from None
    if reply.status != 201:
        raise EnrollmentError(f"token not rotated: {_rotation_refusal(reply)}")
    try:
        issued = _issued(reply, "rotation")
    except _TransientError as exc:
        raise EnrollmentError(f"token not rotated: {exc}") from None
    try:
        write_token(path, issued.token)
    except StateError as exc:
        raise EnrollmentError(
            f"the server issued token id {issued.token_id} but it could not be stored ({exc}); "
            "the current token stays valid and the new one expires unused"
        ) from None
    return Rotated(issued.token_id, path)


def _token_file_to_rotate(settings: AgentSettings) -> Path:
    if settings.token is not None:
        raise EnrollmentError(
            "the token comes from the `token` setting (or DCMON_AGENT_TOKEN), which cannot be "
            "rewritten: keep it in token_file to rotate it"
        )
    if settings.token_file is not None:
        path = settings.token_file.resolve()  # replace a symlink's target, not the link
        if not path.is_file():
            raise EnrollmentError(f"token_file {settings.token_file} does not exist")
    else:
        path = settings.state_dir / NODE_TOKEN_FILE
        if not path.is_file():
            raise EnrollmentError(
                f"no token to rotate: {path} does not exist (the node is not enrolled) and no "
                "token_file is configured"
            )
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        raise EnrollmentError(
            f"{path} (or its folder) is not writable by this user, so a new token could not be "
            "kept: run as the agent's user"
        )
    return path


def _rotation_refusal(reply: Reply) -> str:
    if reply.status == 401:
        return f"the server refused the current token ({reply.describe()}): revoked or expired?"
    if reply.status == 403:
        return (
            f"the current token may not rotate itself ({reply.describe()}): only per-node "
            "tokens (from enrollment or `dcmon token create --role node`) can be rotated"
        )
    if reply.status in (404, 405):
        return f"the server does not offer token rotation ({reply.status}); upgrade it"
    return f"the server answered {reply.describe()}"


def _issued(reply: Reply, what: str) -> Issued:
    try:
        issued = Issued.model_validate(reply.document)
    except ValidationError:
        raise _TransientError("bad_answer", f"the server's {what} answer holds no token") from None
    if not _TOKEN_RE.match(issued.token):
        raise _TransientError("bad_answer", f"the server's {what} answer holds an unusable token")
    return issued


class _TransientError(Exception):
    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class _OperatorNeededError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
