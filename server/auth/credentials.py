"""Credentials the server issues: per-node, bootstrap, read and admin tokens in the database.

Stage: auth -> storage. ``CredentialStore`` creates, lists, revokes, rotates and enrolls; only a
token's SHA-256 is stored, the secret is returned once, by the call that makes it. Writes go
through the single database writer; ``lookup`` reads directly.

Rotation: the new token names the old one in ``replaces`` and expires after
``ROTATION_CONFIRM_SECONDS``; the old one stays valid. The new token's first use confirms the
rotation (``confirm``): the old token is revoked and the new one gets the old one's lifetime.
A lost rotation response therefore never locks a node out. Revoking a token also revokes the
unconfirmed tokens meant to replace it.

Errors: ``CredentialError`` and its subclasses (``CredentialNotFoundError``,
``AlreadyEnrolledError``, ``InvalidCredentialError``), mapped to HTTP by the auth router.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from sqlalchemy import ColumnElement, Connection, Engine, Row, Table, and_, or_, select, update
from sqlalchemy.orm import aliased

from server.auth.principal import Principal, Role
from server.auth.secrets import new_token, sha256_hex
from server.storage.tables import CredentialRow
from server.storage.writer import Writer, on_commit

ISSUABLE_ROLES = (Role.NODE, Role.BOOTSTRAP, Role.READ, Role.ADMIN, Role.SCHEDULER)
ROTATION_CONFIRM_SECONDS = 3600.0
NODE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TOKEN_ID_PREFIX = "tk_"  # noqa: S105 (a public prefix, not a secret)
MAX_NAME_LENGTH = 256

State = Literal["active", "expired", "revoked"]

_table: Table = CredentialRow.__table__  # type: ignore[assignment]


class CredentialError(Exception):
    """A credential operation was refused; the message is meant for the operator."""


class CredentialNotFoundError(CredentialError):
    """No credential with this token id."""


class AlreadyEnrolledError(CredentialError):
    """The node already has an active node token."""


class InvalidCredentialError(CredentialError):
    """The request does not describe a valid credential (role, node id, lifetime, name)."""


@dataclass(frozen=True)
class Credential:
    """A stored credential, without its secret. Times are Unix seconds."""

    token_id: str
    role: Role
    node_id: str | None
    name: str
    created_at: float
    created_by: str | None
    expires_at: float | None
    revoked_at: float | None
    replaces: str | None

    def state(self, now: float) -> State:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self) -> Principal:
        return Principal(self.role, self.token_id, self.node_id)


@dataclass(frozen=True)
class Issued:
    """A newly made credential and its secret, which exists nowhere else."""

    token: str
    credential: Credential


@dataclass(frozen=True)
class Lookup:
    """A credential found by its hash; ``pending`` when it is an unconfirmed rotation."""

    credential: Credential
    pending: bool


class CredentialStore:
    """The credentials table, plus the in-memory time each token was last used."""

    def __init__(self, engine: Engine, writer: Writer, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._writer = writer
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every committed change (revocation, confirmation...)."""
        self._listeners.append(callback)

    def create(
        self,
        role: Role,
        *,
        node_id: str | None = None,
        ttl_seconds: float | None = None,
        name: str = "",
        created_by: str | None = None,
    ) -> Issued:
        """Make a token of ``role``; a node token needs the ``node_id`` it may write.

        Raises:
            InvalidCredentialError: a role that cannot be issued, a missing or stray node id,
                a lifetime that is not positive, a name too long.
        """
        _check_new(role, node_id, ttl_seconds, name)
        now = self._clock()
        expires_at = None if ttl_seconds is None else now + ttl_seconds
        return self._writer.submit(
            lambda conn: self._insert(conn, role, node_id, name, now, created_by, expires_at, None)
        )

    def enroll(self, node_id: str, name: str, hostname: str, created_by: str) -> Issued:
        """Exchange a bootstrap token for a node token for ``node_id``.

        Raises:
            AlreadyEnrolledError: the node has an active node token (revoke it first).
            InvalidCredentialError: the node id is not 32 lowercase hex digits.
        """
        label = name if hostname in ("", name) else f"{name} ({hostname})"
        label = f"enrolled {label}"[:MAX_NAME_LENGTH]
        _check_new(Role.NODE, node_id, None, label)
        now = self._clock()

        def job(conn: Connection) -> Issued:
            active = conn.execute(
                select(_table.c.token_id)
                .where(
                    _table.c.role == Role.NODE.value,
                    _table.c.node_id == node_id,
                    _active(now),
                )
                .limit(1)
            ).first()
            if active is not None:
                raise AlreadyEnrolledError(
                    f"node {node_id} already has an active token ({active.token_id}); "
                    f"an operator must revoke it first: dcmon token revoke {active.token_id}"
                )
            return self._insert(conn, Role.NODE, node_id, label, now, created_by, None, None)

        return self._writer.submit(job)

    def rotate(self, token_id: str) -> Issued:
        """Make a token to replace ``token_id`` (see the module docstring).

        Raises:
            CredentialNotFoundError: no active credential with this id.
        """
        now = self._clock()

        def job(conn: Connection) -> Issued:
            old = _one(conn, token_id)
            if old is None or old.state(now) != "active":
                raise CredentialNotFoundError(f"no active token {token_id!r}")
            # an earlier rotation whose answer was lost is superseded by this one
            conn.execute(
                update(_table)
                .where(_table.c.replaces == token_id, _table.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            lifetime = _lifetime(old)
            confirm_within = ROTATION_CONFIRM_SECONDS
            if lifetime is not None:
                confirm_within = min(confirm_within, lifetime)
            return self._insert(
                conn,
                old.role,
                old.node_id,
                old.name,
                now,
                token_id,
                now + confirm_within,
                token_id,
            )

        return self._writer.submit(job)

    def confirm(self, token_id: str) -> Credential | None:
        """First use of a rotated token: revoke the token it replaces, give it its lifetime.

        Returns: the credential as it now is (None if it vanished); idempotent.
        """
        now = self._clock()

        def job(conn: Connection) -> Credential | None:
            new = _one(conn, token_id)
            if new is None or new.replaces is None or new.revoked_at is not None:
                return new
            revoked = conn.execute(
                update(_table)
                .where(_table.c.token_id == new.replaces, _table.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            if revoked:
                old = _one(conn, new.replaces)
                lifetime = None if old is None else _lifetime(old)
                expires_at = None if lifetime is None else new.created_at + lifetime
                conn.execute(
                    update(_table)
                    .where(_table.c.token_id == token_id)
                    .values(expires_at=expires_at)
                )
                on_commit(conn, self._changed)
            return _one(conn, token_id)

        return self._writer.submit(job)

    def revoke(self, token_id: str) -> Credential:
        """Revoke a token (and unconfirmed rotations of it); revoking twice changes nothing.

        Raises:
            CredentialNotFoundError: no credential with this id.
        """
        now = self._clock()

        def job(conn: Connection) -> Credential:
            found = _one(conn, token_id)
            if found is None:
                raise CredentialNotFoundError(f"no token with id {token_id!r}")
            if found.revoked_at is not None:
                return found
            conn.execute(
                update(_table)
                .where(
                    or_(_table.c.token_id == token_id, _table.c.replaces == token_id),
                    _table.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            on_commit(conn, self._changed)
            revoked = _one(conn, token_id)
            assert revoked is not None
            return revoked

        return self._writer.submit(job)

    def get(self, token_id: str) -> Credential | None:
        with self._engine.connect() as conn:
            return _one(conn, token_id)

    def list(self, role: Role | None = None, include_inactive: bool = False) -> list[Credential]:
        """Credentials, oldest first; only active ones unless ``include_inactive``."""
        query = select(_table).order_by(_table.c.created_at, _table.c.token_id)
        if role is not None:
            query = query.where(_table.c.role == role.value)
        if not include_inactive:
            query = query.where(_active(self._clock()))
        with self._engine.connect() as conn:
            return [_credential(row) for row in conn.execute(query)]

    def lookup(self, digest: str) -> Lookup | None:
        """Returns: the credential whose token has SHA-256 ``digest`` (hex), or None."""
        replaced = aliased(CredentialRow)
        query = (
            select(
                _table,
                replaced.token_id.label("replaced_token_id"),
                replaced.revoked_at.label("replaced_revoked_at"),
            )
            .outerjoin(replaced, replaced.token_id == _table.c.replaces)
            .where(_table.c.sha256 == digest)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        credential = _credential(row)
        pending = (
            credential.revoked_at is None
            and row.replaced_token_id is not None
            and row.replaced_revoked_at is None
        )
        return Lookup(credential, pending)

    def touch(self, token_id: str, now: float) -> None:
        """Remember a use (in memory only: no database write per request)."""
        with self._lock:
            self._last_used[token_id] = now

    def last_used(self, token_id: str) -> float | None:
        with self._lock:
            return self._last_used.get(token_id)

    def _insert(
        self,
        conn: Connection,
        role: Role,
        node_id: str | None,
        name: str,
        now: float,
        created_by: str | None,
        expires_at: float | None,
        replaces: str | None,
    ) -> Issued:
        token = new_token()
        credential = Credential(
            token_id=new_token_id(),
            role=role,
            node_id=node_id,
            name=name,
            created_at=now,
            created_by=created_by,
            expires_at=expires_at,
            revoked_at=None,
            replaces=replaces,
        )
        conn.execute(_table.insert().values(**asdict(credential), sha256=sha256_hex(token)))
        on_commit(conn, self._changed)
        return Issued(token, credential)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()


def new_token_id() -> str:
    """Returns: a public token id, ``tk_`` and 10 random URL-safe characters."""
    return TOKEN_ID_PREFIX + secrets.token_urlsafe(8)[:10]


def _check_new(role: Role, node_id: str | None, ttl_seconds: float | None, name: str) -> None:
    if role not in ISSUABLE_ROLES:
        allowed = ", ".join(r.value for r in ISSUABLE_ROLES)
        raise InvalidCredentialError(f"role {role.value!r} cannot be issued (one of {allowed})")
    if role is Role.NODE:
        if node_id is None:
            raise InvalidCredentialError("a node token needs the node id it may write")
        if not NODE_ID_RE.fullmatch(node_id):
            raise InvalidCredentialError(f"node id {node_id!r} is not 32 lowercase hex digits")
    elif node_id is not None:
        raise InvalidCredentialError(f"only node tokens have a node id, not {role.value} tokens")
    if ttl_seconds is not None and not ttl_seconds > 0:
        raise InvalidCredentialError(f"lifetime must be positive seconds, not {ttl_seconds}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidCredentialError(f"name is longer than {MAX_NAME_LENGTH} characters")


def _active(now: float) -> ColumnElement[bool]:
    return and_(
        _table.c.revoked_at.is_(None),
        or_(_table.c.expires_at.is_(None), _table.c.expires_at > now),
    )


def _lifetime(credential: Credential) -> float | None:
    if credential.expires_at is None:
        return None
    return credential.expires_at - credential.created_at


def _one(conn: Connection, token_id: str) -> Credential | None:
    row = conn.execute(select(_table).where(_table.c.token_id == token_id)).first()
    return None if row is None else _credential(row)


def _credential(row: Row[object]) -> Credential:
    return Credential(
        token_id=row.token_id,
        role=Role(row.role),
        node_id=row.node_id,
        name=row.name,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        replaces=row.replaces,
    )
