"""Access rules for routes: every route declares one, as a FastAPI dependency.

    @router.post("/api/v1/ingest")
    async def ingest(caller: Annotated[Principal, Depends(INGEST)]) -> Ack: ...

A rule names the roles it admits. Missing or unknown tokens get 401 (with a Bearer challenge),
known tokens of another role 403. ``READ`` also admits anonymous callers when the server runs
with ``open_reads``. The rule objects are module constants so that a test can walk the
application's routes and check that each one carries exactly one of them.

A request without an ``Authorization`` header may instead carry a web session cookie
(``server/auth/session.py``): a session that holds is admitted like its token would be, and on
an unsafe method (POST, PUT, PATCH, DELETE) it must also send its CSRF token in
``X-CSRF-Token`` (403 ``csrf`` otherwise), since a browser sends the cookie by itself. A cookie
that does not hold (tampered, expired, logged out, its credential revoked) counts as none.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from server.auth.cookie import Session
from server.auth.principal import ANONYMOUS, Principal, Role
from server.auth.session import request_session, sessions_of
from server.auth.verifier import CHALLENGE, bearer_token
from server.errors import ApiError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Access:
    """A route's access rule (a FastAPI dependency returning the caller)."""

    name: str
    roles: frozenset[Role]
    anonymous_when_open_reads: bool = False
    anonymous: bool = False

    def __call__(self, request: Request) -> Principal:
        if self.anonymous:
            return ANONYMOUS  # public routes (health) never look at credentials
        services = request.app.state.services
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            session = request_session(request)
            if session is not None:
                return self._admit_session(request, session)
            if self.anonymous_when_open_reads and services.settings.open_reads:
                return ANONYMOUS
            raise ApiError(401, "unauthenticated", "missing bearer token", headers=CHALLENGE)
        principal: Principal | None = services.authenticator.authenticate(token)
        if principal is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked token", headers=CHALLENGE)
        return self._admit(request, principal)

    def _admit(self, request: Request, principal: Principal) -> Principal:
        """Returns: ``principal`` when this rule lets its role in. Raises: ApiError 403."""
        if principal.role in self.roles:
            return principal
        if self.anonymous_when_open_reads and request.app.state.services.settings.open_reads:
            return principal
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} token may not call this {self.name} endpoint",
        )

    def _admit_session(self, request: Request, session: Session) -> Principal:
        """Returns: the session's principal, as ``_admit``; an unsafe method also needs the
        session's CSRF token in the header. Raises: ApiError 403."""
        principal = self._admit(request, session.principal())
        if request.method in UNSAFE_METHODS:
            service = sessions_of(request)
            given = request.headers.get(CSRF_HEADER)
            if service is None or not service.csrf_matches(session, given):
                raise ApiError(
                    403,
                    "csrf",
                    f"a request authenticated by the session cookie must send the session's "
                    f"CSRF token in the {CSRF_HEADER} header (the pages' "
                    f'<meta name="csrf-token">)',
                )
        return principal


INGEST = Access("ingest", frozenset({Role.NODE, Role.INGEST}))
ENROLL = Access("enroll", frozenset({Role.BOOTSTRAP}))
NODE = Access("node", frozenset({Role.NODE}))
READ = Access(
    "read", frozenset({Role.READ, Role.ADMIN, Role.SCHEDULER}), anonymous_when_open_reads=True
)
ADMIN = Access("admin", frozenset({Role.ADMIN}))
SCHEDULE = Access("scheduler", frozenset({Role.ADMIN, Role.SCHEDULER}))
"""Acting on rebalancing hints (their lifecycle): an admin, or a scheduler's own token."""
PUBLIC = Access("public", frozenset(Role), anonymous=True)

RULES = (INGEST, ENROLL, NODE, READ, ADMIN, SCHEDULE, PUBLIC)
