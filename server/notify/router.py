"""Silences over HTTP: ``POST/GET /api/v1/silences``, ``GET/DELETE /api/v1/silences/{id}``.

Stage: API -> notify. Creating and expiring a silence need an admin token; listing needs a
read token. Bodies use Alertmanager's silence shape (``matchers`` as
``{name, value, isRegex, isEqual}``, ``startsAt``/``endsAt`` in RFC 3339, ``createdBy``,
``comment``), so its tooling's habits carry over; ``createdBy`` defaults to the caller's token
id. DELETE expires the silence (it stays listed, expired). Silences live in the database, so
every replica serves and applies the same ones.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server.auth.access import ADMIN, READ
from server.auth.principal import Principal
from server.deps import Services, ServicesDep
from server.errors import ApiError
from server.notify.model import parse_rfc3339, rfc3339
from server.notify.silence import Silence, SilenceError
from server.notify.silence_store import (
    SilenceNotFoundError,
    SilenceStore,
    matchers_from_api,
    matchers_to_api,
    new_silence,
)

router = APIRouter(tags=["silences"])


class MatcherIn(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)
    isRegex: bool = False
    isEqual: bool = True


class SilenceIn(BaseModel):
    matchers: list[MatcherIn] = Field(min_length=1, max_length=64)
    startsAt: str | None = Field(default=None, description="RFC 3339; default: now")
    endsAt: str = Field(description="RFC 3339")
    createdBy: str | None = Field(default=None, max_length=256)
    comment: str = Field(min_length=1, max_length=4096)


class SilenceStatus(BaseModel):
    state: Literal["pending", "active", "expired"]


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherIn]
    startsAt: str
    endsAt: str
    updatedAt: str
    createdBy: str
    comment: str
    status: SilenceStatus


class SilenceList(BaseModel):
    silences: list[SilenceOut]


class SilenceCreated(BaseModel):
    silenceID: str


def _store(services: Services) -> SilenceStore:
    return SilenceStore(services.store.engine, services.store.writer, services.clock)


def _out(silence: Silence, now: float) -> SilenceOut:
    return SilenceOut(
        id=silence.silence_id,
        matchers=[MatcherIn.model_validate(m) for m in matchers_to_api(silence.matchers)],
        startsAt=rfc3339(silence.starts_at),
        endsAt=rfc3339(silence.ends_at),
        updatedAt=rfc3339(silence.updated_at),
        createdBy=silence.created_by,
        comment=silence.comment,
        status=SilenceStatus(state=silence.state(now)),
    )


def _time(text: str, name: str) -> float:
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise ApiError(422, "invalid_silence", f"{name} is not an RFC 3339 time") from None


@router.post(
    "/api/v1/silences",
    response_model=SilenceCreated,
    status_code=201,
    responses={422: {"description": "The silence is not valid; the message says why"}},
)
async def create_silence(
    body: SilenceIn, services: ServicesDep, caller: Annotated[Principal, Depends(ADMIN)]
) -> SilenceCreated:
    """Silence the alerts matching every matcher, from startsAt (default now) to endsAt."""
    now = services.clock()
    starts = now if body.startsAt is None else _time(body.startsAt, "startsAt")
    ends = _time(body.endsAt, "endsAt")
    try:
        matchers = matchers_from_api([m.model_dump() for m in body.matchers])
        silence = new_silence(
            matchers, starts, ends, body.createdBy or caller.token_id, body.comment, now
        )
    except SilenceError as exc:
        raise ApiError(422, "invalid_silence", str(exc)) from None
    await run_in_threadpool(_store(services).add, silence)
    return SilenceCreated(silenceID=silence.silence_id)


@router.get("/api/v1/silences", response_model=SilenceList, dependencies=[Depends(READ)])
async def list_silences(services: ServicesDep) -> SilenceList:
    """Every silence kept (pending, active, and expired for five days), newest first."""
    silences = await run_in_threadpool(_store(services).all)
    now = services.clock()
    return SilenceList(silences=[_out(s, now) for s in silences])


@router.get(
    "/api/v1/silences/{silence_id}",
    response_model=SilenceOut,
    dependencies=[Depends(READ)],
    responses={404: {"description": "No such silence"}},
)
async def get_silence(silence_id: str, services: ServicesDep) -> SilenceOut:
    try:
        silence = await run_in_threadpool(_store(services).get, silence_id)
    except SilenceNotFoundError:
        raise ApiError(404, "not_found", f"no silence {silence_id}") from None
    return _out(silence, services.clock())


@router.delete(
    "/api/v1/silences/{silence_id}",
    response_model=SilenceOut,
    dependencies=[Depends(ADMIN)],
    responses={404: {"description": "No such silence"}},
)
async def expire_silence(silence_id: str, services: ServicesDep) -> SilenceOut:
    """Expire a silence now (a pending one never starts)."""
    try:
        silence = await run_in_threadpool(_store(services).expire, silence_id)
    except SilenceNotFoundError:
        raise ApiError(404, "not_found", f"no silence {silence_id}") from None
    return _out(silence, services.clock())
