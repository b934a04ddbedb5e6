"""Token secrets: make them, hash them, keep them in files.

The helpers below are shared by the credential store, the authenticator, the ``dcmon token``
command and the demo. They import nothing of the server, so the command imports them and never
the other way round. Only a token's SHA-256 is ever stored or configured; the token itself goes
to its user.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

TOKEN_PREFIX = "dcm_"  # noqa: S105 (a public prefix, not a secret)


class TokenFileError(ValueError):
    """A token file cannot be read, or holds no token; the message names the file."""


def new_token() -> str:
    """Returns: a new random token, ``dcm_`` and 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(token: str) -> str:
    """Returns: the SHA-256 of ``token``, lowercase hex: what the server stores and configures."""
    return hashlib.sha256(token.encode()).hexdigest()


def read_token_file(path: Path) -> str:
    """Returns: the token in ``path`` (surrounding whitespace removed).

    Raises:
        TokenFileError: the file cannot be read or is empty.
    """
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(
            f"token file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not token:
        raise TokenFileError(f"token file {path} is empty")
    return token


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, readable by its owner only (0600 from the start).

    Written to a temporary file in the same folder and renamed, so a reader never sees a
    half-written token.
    """
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
