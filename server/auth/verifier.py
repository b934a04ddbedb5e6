"""Turning a bearer token into a ``Principal``.

Tokens are long random strings (``dcmon token``), so a plain SHA-256 at rest is enough: nothing
can be guessed from it, and the server never holds or logs a token itself. Comparison of hashes
is by dictionary lookup on the digest of a secret the caller already knows, so it leaks nothing
about other tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from server.auth.principal import Principal, Role
from server.errors import ApiError
from server.tokens import sha256_hex

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dcmon"'}


class Authenticator(Protocol):
    """Looks a presented token up."""

    def authenticate(self, token: str) -> Principal | None:
        """Returns: the caller the token belongs to, or None when it is unknown or revoked."""
        ...


class StaticAuthenticator:
    """Tokens configured by their SHA-256 in the server's settings, one list per role."""

    def __init__(self, hashes_by_role: Mapping[Role, Iterable[str]]) -> None:
        self._principals: dict[str, Principal] = {}
        for role, hashes in hashes_by_role.items():
            for digest in hashes:
                self._principals[digest.lower()] = Principal(role, f"config:{digest[:12]}")

    def roles(self) -> set[Role]:
        return {principal.role for principal in self._principals.values()}

    def authenticate(self, token: str) -> Principal | None:
        return self._principals.get(sha256_hex(token))


def bearer_token(authorization: str | None) -> str | None:
    """Returns: the token of an ``Authorization: Bearer`` header, None when there is no header.

    Raises:
        ApiError: 401 when the header is present but not a bearer token.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "unauthenticated", "Authorization must be 'Bearer <token>'", headers=CHALLENGE
        )
    return token
