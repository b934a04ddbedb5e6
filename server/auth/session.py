"""Web sessions: a read, admin or scheduler token entered once becomes a signed cookie.

Stage: auth. ``SessionService`` starts a session (``POST /login``), checks the cookie of each
request that carries one, and ends it (``POST /logout``); ``server/auth/access.py`` accepts a
checked session like a bearer token, and asks for the CSRF token on unsafe methods.

- Signing: HMAC-SHA256 (``server/auth/cookie.py``) with a 256-bit key made by the first server
  that needs one and kept in the database (``session_keys``), so every replica on the database
  accepts every replica's cookies and a restart logs nobody out.
- Expiry: the cookie carries its issue and expiry times; it is refused from its expiry on, and
  also past ``session_seconds`` after it was issued, so shortening the setting shortens the
  sessions already given.
- Revocation: the cookie carries the credential's token id; each check asks whether that
  credential is still active (the credentials table, trusted for ``credential_cache_seconds``
  like bearer tokens, cleared at once by a revocation through this process) or, for a
  config-file token, still configured.
- Logout: each session has a random id; logging out writes it to ``session_ends`` until the
  cookie's expiry, and a check refuses an ended session, so a copy of the cookie replayed after
  logout is refused (at once here, within ``credential_cache_seconds`` on other replicas). A
  per-session record was chosen over a per-credential generation: logging out one browser
  leaves the same token's other sessions alone (a wall display and a laptop sharing a read
  token), and config-file tokens, which have no credential row, are handled the same way.
  The table only holds sessions ended before their expiry, deleted once expired.

Nothing here logs a token, a cookie or a CSRF token.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TypeVar

from fastapi import Request, Response
from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from server.auth import cookie
from server.auth.cookie import COOKIE_NAME, SESSION_ROLES, Session
from server.auth.credentials import Credential, CredentialStore
from server.auth.principal import Principal, Role
from server.auth.tables import SessionEndRow, SessionKeyRow
from server.auth.ttl_cache import TtlCache
from server.errors import ApiError
from server.storage.store import as_unavailable
from server.storage.writer import Writer, on_commit

__all__ = [
    "COOKIE_NAME",
    "Session",
    "SessionService",
    "clear_cookie",
    "config_token_ids",
    "csrf_token",
    "request_session",
    "session_principal",
    "set_cookie",
]

_log = logging.getLogger(__name__)
_keys: Table = SessionKeyRow.__table__  # type: ignore[assignment]
_ends: Table = SessionEndRow.__table__  # type: ignore[assignment]
KEY_ID = "cookie-v1"
KEY_BYTES = 32
T = TypeVar("T")


class SessionService:
    """Starts, checks and ends web sessions (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        credentials: CredentialStore,
        config_ids: Mapping[str, Role],
        lifetime_seconds: float,
        cache_seconds: float,
        clock: Callable[[], float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        retry_after_seconds: float = 5.0,
    ) -> None:
        """Args:
        config_ids: the token ids of the config-file tokens that may log in, with their
            roles (``config_token_ids``).
        lifetime_seconds: how long a session lasts (``session_seconds``).
        cache_seconds: how long a credential's state and a session's not being ended are
            trusted before they are read again (``credential_cache_seconds``).
        """
        self._engine = engine
        self._writer = writer
        self._credentials = credentials
        self._config_ids = dict(config_ids)
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._retry_after = str(max(1, round(retry_after_seconds)))
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._credential_cache: TtlCache[str, Credential | None] = TtlCache(
            cache_seconds, monotonic
        )
        self._live_cache: TtlCache[str, bool] = TtlCache(cache_seconds, monotonic)
        """session id -> True: seen not ended (an ended one is never kept: it stays ended)"""
        credentials.add_listener(self._forget_credentials)

    def start(self, principal: Principal) -> tuple[Session, str]:
        """Returns: a new session for ``principal`` and its cookie value.

        Raises:
            ValueError: the principal's role may not log in (node, ingest, bootstrap).
        """
        if principal.role not in SESSION_ROLES:
            raise ValueError(f"a {principal.role.value} token cannot log in")
        now = self._clock()
        session = Session(
            session_id=secrets.token_urlsafe(16),
            token_id=principal.token_id,
            role=principal.role,
            issued_at=now,
            expires_at=now + self.lifetime_seconds,
        )
        value = cookie.encode(self._signing_key(), session)
        _log.info("web session started for token %s (%s)", session.token_id, session.role)
        return session, value

    def check(self, value: str) -> Session | None:
        """Returns: the session of a cookie value while it holds (signed by the shared key, not
        expired, not ended, its credential active), else None.

        Raises:
            ApiError: 503 when the database cannot be asked.
        """
        session = cookie.decode(self._signing_key(), value)
        if session is None:
            return None
        now = self._clock()
        if now >= min(session.expires_at, session.issued_at + self.lifetime_seconds):
            return None
        if not self._credential_active(session, now):
            return None
        if self._ended(session.session_id):
            return None
        if session.token_id not in self._config_ids:
            self._credentials.touch(session.token_id, now)
        return session

    def end(self, session: Session) -> None:
        """End ``session`` (logout): its cookie is refused from now on. Ending twice is a no-op.

        Raises:
            ApiError: 503 when the database cannot take the write.
        """
        now = self._clock()

        def job(conn: Connection) -> None:
            conn.execute(delete(_ends).where(_ends.c.expires_at <= now))
            known = conn.execute(
                select(_ends.c.session_id).where(_ends.c.session_id == session.session_id)
            ).first()
            if known is None:
                conn.execute(
                    insert(_ends).values(
                        session_id=session.session_id,
                        token_id=session.token_id,
                        ended_at=now,
                        expires_at=session.expires_at,
                    )
                )
            on_commit(conn, lambda: self._forget_session(session.session_id))

        self._guarded(lambda: self._writer.submit(job))
        _log.info("web session of token %s ended (logout)", session.token_id)

    def csrf_token(self, session: Session) -> str:
        return cookie.csrf_token(self._signing_key(), session.session_id)

    def csrf_matches(self, session: Session, given: str | None) -> bool:
        return cookie.csrf_matches(self._signing_key(), session.session_id, given)

    def _signing_key(self) -> bytes:
        """Returns: the shared signing key, read from the database (made there if none)."""
        with self._lock:
            if self._key is not None:
                return self._key
        key = self._guarded(self._load_or_make_key)
        with self._lock:
            self._key = key
        return key

    def _load_or_make_key(self) -> bytes:
        found = self._read_key()
        if found is not None:
            return found
        secret = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
        now = self._clock()

        def job(conn: Connection) -> None:
            known = conn.execute(select(_keys.c.key_id).where(_keys.c.key_id == KEY_ID)).first()
            if known is None:
                conn.execute(insert(_keys).values(key_id=KEY_ID, secret=secret, created_at=now))

        with suppress(IntegrityError):  # another replica made it first: read theirs
            self._writer.submit(job)
        made = self._read_key()
        if made is None:  # pragma: no cover (the insert committed or another one did)
            raise RuntimeError("the session signing key was written but cannot be read")
        _log.info("session signing key ready (stored in the database, shared by replicas)")
        return made

    def _read_key(self) -> bytes | None:
        with self._engine.connect() as conn:
            secret = conn.execute(select(_keys.c.secret).where(_keys.c.key_id == KEY_ID)).scalar()
        return None if secret is None else base64.urlsafe_b64decode(secret)

    def _credential_active(self, session: Session, now: float) -> bool:
        if session.token_id in self._config_ids:
            return self._config_ids[session.token_id] is session.role
        hit = self._credential_cache.get(session.token_id)
        if hit is not None:
            credential = hit.value
        else:
            generation, stamp = self._credential_cache.generation(), self._monotonic()
            credential = self._guarded(lambda: self._credentials.get(session.token_id))
            self._credential_cache.put(session.token_id, credential, generation, stamp)
        return (
            credential is not None
            and credential.role is session.role
            and credential.state(now) == "active"
        )

    def _ended(self, session_id: str) -> bool:
        if self._live_cache.get(session_id) is not None:
            return False
        generation, stamp = self._live_cache.generation(), self._monotonic()
        query = select(_ends.c.session_id).where(_ends.c.session_id == session_id)

        def look() -> bool:
            with self._engine.connect() as conn:
                return conn.execute(query).first() is not None

        ended = self._guarded(look)
        if not ended:
            self._live_cache.put(session_id, True, generation, stamp)
        return ended

    def _forget_credentials(self) -> None:
        self._credential_cache.clear()

    def _forget_session(self, session_id: str) -> None:
        self._live_cache.discard(session_id)

    def _guarded(self, call: Callable[[], T]) -> T:
        """Run a database call; a database that cannot be asked now is a 503."""
        try:
            return call()
        except Exception as exc:
            if as_unavailable(exc) is None:
                raise
            raise ApiError(
                503,
                "storage_unavailable",
                "the session cannot be checked: the database is unavailable",
                headers={"Retry-After": self._retry_after},
            ) from exc


def config_token_ids(read_sha256: list[str], admin_sha256: list[str]) -> dict[str, Role]:
    """Returns: the token ids the config-file authenticator gives the read and admin tokens of
    the config file (``config:`` and the hash's first 12 hex digits, as
    ``server.auth.verifier.StaticAuthenticator`` names them), with their roles. A hash in both
    lists is a read token there (its read list is applied after the admin list), so here too."""
    ids = {f"config:{digest.lower()[:12]}": Role.ADMIN for digest in admin_sha256}
    ids.update({f"config:{digest.lower()[:12]}": Role.READ for digest in read_sha256})
    return ids


_UNCHECKED = object()


def sessions_of(request: Request) -> SessionService | None:
    """Returns: the application's session service (None in an app built without one)."""
    service: SessionService | None = getattr(request.app.state, "sessions", None)
    return service


def request_session(request: Request) -> Session | None:
    """Returns: the session of the request's cookie while it holds, else None (checked once per
    request; the answer is kept on the request).

    Raises:
        ApiError: 503 when the database cannot be asked.
    """
    kept = getattr(request.state, "dcmon_session", _UNCHECKED)
    if kept is not _UNCHECKED:
        return kept  # type: ignore[return-value]
    service = sessions_of(request)
    value = request.cookies.get(COOKIE_NAME)
    session = None if service is None or not value else service.check(value)
    request.state.dcmon_session = session
    return session


def session_principal(request: Request) -> Principal | None:
    """Returns: who is logged in by the request's session cookie, or None (for the nav bar)."""
    session = request_session(request)
    return None if session is None else session.principal()


def csrf_token(request: Request) -> str:
    """Returns: the CSRF token of the request's session ("" when it has none): pages put it in
    ``<meta name="csrf-token">`` and send it in the ``X-CSRF-Token`` header of unsafe calls."""
    session = request_session(request)
    service = sessions_of(request)
    if session is None or service is None:
        return ""
    return service.csrf_token(session)


def set_cookie(response: Response, request: Request, value: str, max_age_seconds: float) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over TLS."""
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=max(1, int(max_age_seconds)),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request) -> None:
    """Tell the browser to drop the session cookie."""
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
