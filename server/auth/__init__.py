"""Authentication and authorization: tokens to principals, principals to access rules."""

from server.auth.access import (
    ADMIN,
    ENROLL,
    INGEST,
    NODE,
    PUBLIC,
    READ,
    RULES,
    SCHEDULE,
    Access,
)
from server.auth.principal import ANONYMOUS, Principal, Role
from server.auth.verifier import Authenticator, StaticAuthenticator, bearer_token

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "ENROLL",
    "INGEST",
    "NODE",
    "PUBLIC",
    "READ",
    "RULES",
    "SCHEDULE",
    "Access",
    "Authenticator",
    "Principal",
    "Role",
    "StaticAuthenticator",
    "bearer_token",
]
