"""Enrollment, token rotation and the admin token API.

    POST   /api/v1/enroll                    bootstrap token -> a node token (201)
    POST   /api/v1/token/rotate              node token -> its replacement (201)
    GET    /api/v1/admin/tokens              list (active only unless all=true; no secrets)
    POST   /api/v1/admin/tokens              create (201; the secret is in this answer only)
    DELETE /api/v1/admin/tokens/{token_id}   revoke

Credential errors map to HTTP here: unknown id 404, node already enrolled 409, invalid
request 422.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from server.auth.access import ADMIN, ENROLL, NODE
from server.auth.credentials import (
    MAX_NAME_LENGTH,
    AlreadyEnrolledError,
    Credential,
    CredentialError,
    CredentialNotFoundError,
    CredentialStore,
    Issued,
    State,
)
from server.auth.principal import Principal, Role
from server.deps import ServicesDep
from server.errors import ApiError

router = APIRouter(tags=["auth"])
_log = logging.getLogger(__name__)

T = TypeVar("T")
NodeId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
IssuableRole = Literal["node", "bootstrap", "read", "admin", "scheduler"]

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, expired or revoked bearer token"},
    403: {"description": "The token's role may not call this endpoint"},
}


class EnrollIn(BaseModel):
    node_id: NodeId = Field(description="The agent's node id (32 lowercase hex digits)")
    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    hostname: Annotated[str, StringConstraints(min_length=1, max_length=253)]


class IssuedOut(BaseModel):
    """A new token. ``token`` is the secret: it is shown here once and stored only hashed."""

    token: str
    token_id: str
    node_id: str | None


class CreateTokenIn(BaseModel):
    role: IssuableRole
    node_id: NodeId | None = Field(default=None, description="Required for node tokens")
    ttl_seconds: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Lifetime; without it the token lasts until revoked"
    )
    name: Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH)] = ""


class CreatedOut(IssuedOut):
    role: IssuableRole
    name: str
    expires_at: float | None


class TokenOut(BaseModel):
    """A credential without its secret or hash. Times are Unix seconds."""

    token_id: str
    role: IssuableRole
    state: State
    node_id: str | None
    name: str
    created_at: float
    created_by: str | None
    expires_at: float | None
    revoked_at: float | None
    replaces: str | None
    last_used_at: float | None = Field(description="Last use seen by this server process")


class TokenList(BaseModel):
    tokens: list[TokenOut]


@router.post(
    "/api/v1/enroll",
    status_code=201,
    response_model=IssuedOut,
    responses={
        **_AUTH_ERRORS,
        409: {"description": "The node already has an active token; revoke it first"},
    },
)
async def enroll(
    body: EnrollIn, services: ServicesDep, caller: Annotated[Principal, Depends(ENROLL)]
) -> IssuedOut:
    """Exchange a bootstrap token for this node's own token."""
    issued = await _call(
        services.credentials.enroll, body.node_id, body.name, body.hostname, caller.token_id
    )
    _log.info(
        "enrolled node %s (%s): token %s, by %s",
        body.node_id,
        body.name,
        issued.credential.token_id,
        caller.token_id,
    )
    return _issued(issued)


@router.post(
    "/api/v1/token/rotate", status_code=201, response_model=IssuedOut, responses=_AUTH_ERRORS
)
async def rotate(services: ServicesDep, caller: Annotated[Principal, Depends(NODE)]) -> IssuedOut:
    """A replacement for the caller's token. The current token stays valid until the new one
    is first used; a new token never used expires after an hour."""
    issued = await _call(services.credentials.rotate, caller.token_id)
    _log.info(
        "token %s rotated: %s replaces it once used", caller.token_id, issued.credential.token_id
    )
    return _issued(issued)


@router.get("/api/v1/admin/tokens", response_model=TokenList, responses=_AUTH_ERRORS)
async def list_tokens(
    services: ServicesDep,
    _caller: Annotated[Principal, Depends(ADMIN)],
    role: IssuableRole | None = None,
    include_all: Annotated[
        bool, Query(alias="all", description="Also expired and revoked tokens")
    ] = False,
) -> TokenList:
    """Tokens issued by the server (config-file tokens are not listed)."""
    store = services.credentials
    found = await _call(store.list, Role(role) if role else None, include_all)
    now = services.clock()
    return TokenList(tokens=[_token(store, credential, now) for credential in found])


@router.post(
    "/api/v1/admin/tokens",
    status_code=201,
    response_model=CreatedOut,
    responses={**_AUTH_ERRORS, 422: {"description": "Invalid role, node id or lifetime"}},
)
async def create_token(
    body: CreateTokenIn, services: ServicesDep, caller: Annotated[Principal, Depends(ADMIN)]
) -> CreatedOut:
    """Make a token; its secret is in this answer and nowhere else."""
    issued: Issued = await _call(
        lambda: services.credentials.create(
            Role(body.role),
            node_id=body.node_id,
            ttl_seconds=body.ttl_seconds,
            name=body.name,
            created_by=caller.token_id,
        )
    )
    credential = issued.credential
    _log.info("token %s (%s) created by %s", credential.token_id, body.role, caller.token_id)
    return CreatedOut(
        token=issued.token,
        token_id=credential.token_id,
        node_id=credential.node_id,
        role=body.role,
        name=credential.name,
        expires_at=credential.expires_at,
    )


@router.delete(
    "/api/v1/admin/tokens/{token_id}",
    response_model=TokenOut,
    responses={**_AUTH_ERRORS, 404: {"description": "No token with this id"}},
)
async def revoke_token(
    token_id: str, services: ServicesDep, caller: Annotated[Principal, Depends(ADMIN)]
) -> TokenOut:
    """Revoke a token at once (and any unconfirmed replacement of it); idempotent."""
    store = services.credentials
    credential = await _call(store.revoke, token_id)
    _log.info("token %s revoked by %s", credential.token_id, caller.token_id)
    return _token(store, credential, services.clock())


async def _call(function: Callable[..., T], *args: Any) -> T:
    try:
        return await run_in_threadpool(function, *args)
    except CredentialNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except AlreadyEnrolledError as exc:
        raise ApiError(409, "already_enrolled", str(exc)) from exc
    except CredentialError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc


def _issued(issued: Issued) -> IssuedOut:
    return IssuedOut(
        token=issued.token,
        token_id=issued.credential.token_id,
        node_id=issued.credential.node_id,
    )


def _token(store: CredentialStore, credential: Credential, now: float) -> TokenOut:
    return TokenOut(
        **asdict(credential),
        state=credential.state(now),
        last_used_at=store.last_used(credential.token_id),
    )
