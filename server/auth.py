"""Authentication of writes: bearer tokens checked against configured SHA-256 hashes.

Tokens are random (``dcmon token new``), so a plain SHA-256 at rest is enough: nothing can be
guessed from it, and the server never holds or logs the token itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from server.errors import ApiError
from server.tokens import sha256_hex

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dcmon"'}


class TokenVerifier:
    """Accepts a request whose bearer token hashes to one of the configured values."""

    def __init__(self, hashes: Iterable[str]) -> None:
        self._hashes = tuple(hashes)

    @property
    def configured(self) -> bool:
        return bool(self._hashes)

    def verify(self, authorization: str | None) -> None:
        """Raises:
        ApiError: 401 when the header is missing or malformed or the token is unknown.
        """
        if not authorization:
            raise ApiError(401, "unauthenticated", "missing bearer token", headers=_CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "unauthenticated", "Authorization must be 'Bearer <token>'", headers=_CHALLENGE
            )
        digest = sha256_hex(token.strip())
        if not any(hmac.compare_digest(digest, known) for known in self._hashes):
            raise ApiError(401, "unauthenticated", "unknown token", headers=_CHALLENGE)
