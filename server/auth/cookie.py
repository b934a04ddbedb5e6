"""The session cookie's value: a session's fields, signed with HMAC-SHA256.

    v1.<base64url(JSON {sid, tid, role, iat, exp})>.<base64url(HMAC-SHA256(key, "session" ...))>

The payload is readable by whoever holds the cookie (it names no secret: a session id, the
credential's public token id, its role, Unix issue and expiry times); the signature makes it
unforgeable without the server's key. The CSRF token is a second HMAC of the session id under
the same key with another label, so neither value can be made from the other. Pure functions
of the key: the service that keeps the key is ``server/auth/session.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from server.auth.principal import Principal, Role

COOKIE_NAME = "dcmon_session"
VERSION = "v1"
MAX_COOKIE_LENGTH = 1024  # a real one is ~220 characters; longer is not ours
SESSION_ROLES = frozenset({Role.READ, Role.ADMIN, Role.SCHEDULER})
"""Roles that may log in to the web pages: the people's roles, not the machines'."""

_SESSION_LABEL = b"dcmon session v1\x00"
_CSRF_LABEL = b"dcmon csrf v1\x00"


@dataclass(frozen=True)
class Session:
    """A logged-in browser. Times are Unix seconds."""

    session_id: str
    token_id: str
    role: Role
    issued_at: float
    expires_at: float

    def principal(self) -> Principal:
        return Principal(self.role, self.token_id)


def encode(key: bytes, session: Session) -> str:
    """Returns: the cookie value for ``session``, signed with ``key``."""
    payload = json.dumps(
        {
            "sid": session.session_id,
            "tid": session.token_id,
            "role": session.role.value,
            "iat": session.issued_at,
            "exp": session.expires_at,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    body = f"{VERSION}.{_b64(payload)}"
    return f"{body}.{_b64(_mac(key, _SESSION_LABEL, body))}"


def decode(key: bytes, value: str) -> Session | None:
    """Returns: the session a cookie value carries, or None when it is not one this key signed
    (tampered, truncated, another key, another version, not a session of a role that may log
    in). Expiry is the caller's to check: it needs the clock."""
    if len(value) > MAX_COOKIE_LENGTH:
        return None
    body, _, signature = value.rpartition(".")
    version, _, payload = body.partition(".")
    if version != VERSION or not payload:
        return None
    # Compared as text, not decoded bytes: a base64 string's last character has spare bits, so
    # several texts decode to one signature; only the one the key makes is accepted.
    expected = _b64(_mac(key, _SESSION_LABEL, body))
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    raw = _unb64(payload)
    try:
        fields = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return _session(fields)


def csrf_token(key: bytes, session_id: str) -> str:
    """Returns: the CSRF token of a session: what its pages send in ``X-CSRF-Token``."""
    return _b64(_mac(key, _CSRF_LABEL, session_id))


def csrf_matches(key: bytes, session_id: str, given: str | None) -> bool:
    """Returns: True when ``given`` is the session's CSRF token (compared in constant time)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), csrf_token(key, session_id).encode())


def _session(fields: object) -> Session | None:
    if not isinstance(fields, dict):
        return None
    sid, tid, role = fields.get("sid"), fields.get("tid"), fields.get("role")
    issued, expires = fields.get("iat"), fields.get("exp")
    if not (isinstance(sid, str) and isinstance(tid, str) and isinstance(role, str)):
        return None
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (issued, expires)):
        return None
    try:
        parsed_role = Role(role)
    except ValueError:
        return None
    if parsed_role not in SESSION_ROLES:
        return None
    return Session(sid, tid, parsed_role, float(issued), float(expires))  # type: ignore[arg-type]


def _mac(key: bytes, label: bytes, message: str) -> bytes:
    return hmac.new(key, label + message.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
