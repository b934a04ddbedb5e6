"""Access rules for routes: every route declares one, as a FastAPI dependency.

    @router.post("/api/v1/ingest")
    async def ingest(caller: Annotated[Principal, Depends(INGEST)]) -> Ack: ...

A rule names the roles it admits. Missing or unknown tokens get 401 (with a Bearer challenge),
known tokens of another role 403. ``READ`` also admits anonymous callers when the server runs
with ``open_reads``. The rule objects are module constants so that a test can walk the
application's routes and check that each one carries exactly one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from server.auth.principal import ANONYMOUS, Principal, Role
from server.auth.verifier import CHALLENGE, bearer_token
from server.errors import ApiError


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
            if self.anonymous_when_open_reads and services.settings.open_reads:
                return ANONYMOUS
            raise ApiError(401, "unauthenticated", "missing bearer token", headers=CHALLENGE)
        principal: Principal | None = services.authenticator.authenticate(token)
        if principal is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked token", headers=CHALLENGE)
        if principal.role in self.roles:
            return principal
        if self.anonymous_when_open_reads and services.settings.open_reads:
            return principal
        raise ApiError(
            403,
            "forbidden",
            f"a {principal.role.value} token may not call this {self.name} endpoint",
        )


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
