"""Turning a bearer token into a ``Principal``.

Tokens are long random strings (``dcmon token``), so a plain SHA-256 at rest is enough: nothing
can be guessed from it, and the server never holds or logs a token itself. Comparison of hashes
is by dictionary lookup on the digest of a secret the caller already knows, so it leaks nothing
about other tokens.

Three authenticators: ``StaticAuthenticator`` (hashes from the config file),
``DatabaseAuthenticator`` (the credentials table, behind a short cache) and
``ChainAuthenticator``, which asks each in turn; ``create_app`` chains the first two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from server.auth.credentials import Credential, CredentialStore
from server.auth.principal import Principal, Role
from server.auth.secrets import sha256_hex
from server.auth.ttl_cache import TtlCache
from server.errors import ApiError
from server.storage.store import as_unavailable

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


class DatabaseAuthenticator:
    """Tokens in the credentials table, each trusted for ``cache_seconds`` after a lookup.

    Expiry is checked on every request against the wall clock; revocation through this process
    clears the cache at once (the store tells), through another process (the CLI, a replica)
    it is seen within ``cache_seconds``. The first use of a rotated token confirms the rotation.
    Unknown tokens are not cached, so a token made elsewhere works at once.
    """

    def __init__(
        self,
        store: CredentialStore,
        cache_seconds: float,
        clock: Callable[[], float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        retry_after_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._retry_after = str(max(1, round(retry_after_seconds)))
        self._cache: TtlCache[str, Credential] = TtlCache(cache_seconds, monotonic)
        store.add_listener(self.invalidate)

    def invalidate(self) -> None:
        """Forget every cached lookup (a credential changed)."""
        self._cache.clear()

    def authenticate(self, token: str) -> Principal | None:
        """Raises: ApiError 503 when the database cannot be asked."""
        digest = sha256_hex(token)
        credential = self._cached(digest)
        if credential is None:
            credential = self._look_up(digest)
        if credential is None:
            return None
        now = self._clock()
        if credential.state(now) != "active":
            return None
        self._store.touch(credential.token_id, now)
        return credential.principal()

    def _cached(self, digest: str) -> Credential | None:
        hit = self._cache.get(digest)
        return None if hit is None else hit.value

    def _look_up(self, digest: str) -> Credential | None:
        generation = self._cache.generation()
        fetched = self._monotonic()
        try:
            found = self._store.lookup(digest)
            if found is None:
                return None
            credential: Credential | None = found.credential
            if found.pending and found.credential.state(self._clock()) == "active":
                credential = self._store.confirm(found.credential.token_id)
                generation = -1  # not cached: the next request reads the confirmed state
        except Exception as exc:
            if as_unavailable(exc) is None:
                raise
            raise ApiError(
                503,
                "storage_unavailable",
                "credentials cannot be checked: the database is unavailable",
                headers={"Retry-After": self._retry_after},
            ) from exc
        if credential is None:
            return None
        self._cache.put(digest, credential, generation, fetched)
        return credential


class ChainAuthenticator:
    """Asks each authenticator in turn; the first that knows the token answers."""

    def __init__(self, *authenticators: Authenticator) -> None:
        self._authenticators = authenticators

    def authenticate(self, token: str) -> Principal | None:
        for authenticator in self._authenticators:
            principal = authenticator.authenticate(token)
            if principal is not None:
                return principal
        return None


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
