"""This node's token kept in a file: read when the file changes, written atomically.

Stage: token file -> (this) -> transport. Input: a token file (``token_file``, or
``<state_dir>/node-token`` written by enrollment) and, while there is none, something that can
enroll (``enroll.Enroller``). Output: the bearer token the transport sends, asked of a
``NodeToken`` before each send.

The file is re-read when it changes (inode, mtime or size), so ``dcmon agent --rotate-token``
or an operator replacing the file takes effect without a restart. While there is no token yet,
each call tries to enroll (the enroller paces its attempts) and otherwise raises
``RetryableError``, which keeps the batch spooled. A token issued by the server but not yet
stored is used from memory and stored again at each call. The agent never deletes a token file
itself, and never logs a token.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from agent.statefile import StateError, write_atomically
from agent.transport.base import RetryableError

_log = logging.getLogger(__name__)

NODE_TOKEN_FILE = "node-token"  # noqa: S105 (a file name, not a secret)


class IssuedToken(Protocol):
    """A token the server issued: the secret and its public id."""

    @property
    def token(self) -> str: ...

    @property
    def token_id(self) -> str: ...


class Enrolling(Protocol):
    """Trades the bootstrap token for this node's own token (``enroll.Enroller``)."""

    def enroll(self) -> IssuedToken:
        """Raises: RetryableError: not enrolled (yet)."""
        ...


class NodeToken:
    """The token in ``path``, re-read whenever the file changes; enrolls while there is none.

    Call it to get the token (the transport does, before each send).
    """

    def __init__(self, path: Path, enroller: Enrolling | None = None) -> None:
        self.path = path
        self._enroller = enroller
        self._lock = threading.Lock()
        self._stat_key: tuple[int, int, int] | None = None
        self._token: str | None = None
        self._unsaved: str | None = None  # issued by the server but not yet stored

    def __call__(self) -> str:
        """Returns: the token to send.

        Raises:
            RetryableError: there is no usable token yet (the batch stays spooled).
        """
        with self._lock:
            if self._unsaved is not None:
                return self._store(self._unsaved)
            token = self._read()
            if token is not None:
                return token
            if self._enroller is None:
                raise RetryableError(f"no token: {self.path} is missing or empty")
            issued = self._enroller.enroll()
            _log.info("enrolled: token id %s, kept in %s", issued.token_id, self.path)
            return self._store(issued.token)

    def _read(self) -> str | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._stat_key, self._token = None, None
            return None
        except OSError as exc:
            raise RetryableError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key == self._stat_key:
            return self._token
        try:
            token = self.path.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise RetryableError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if self._token is not None and token is not None and token != self._token:
            _log.info("%s changed: using the token it holds now", self.path)
        self._stat_key, self._token = key, token
        return token

    def _store(self, token: str) -> str:
        """Keep ``token`` in the file; if that fails, use it from memory and try again later."""
        try:
            write_token(self.path, token)
        except StateError as exc:
            if self._unsaved is None:
                _log.error(
                    "%s; using the new token from memory and trying again at each send "
                    "(if the agent stops first, an operator must revoke the token before "
                    "this node can enroll again)",
                    exc,
                )
            self._unsaved = token
            return token
        self._unsaved = None
        self._read()
        return token


def write_token(path: Path, token: str) -> None:
    """Store a token: mode 0600, atomically.

    Raises:
        StateError: it cannot be written.
    """
    write_atomically(path, token + "\n", mode=0o600)
