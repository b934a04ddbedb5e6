"""/healthz (the process answers) and /readyz (the database answers and its writer runs)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from server.auth import PUBLIC
from server.deps import ServicesDep

router = APIRouter(tags=["health"], dependencies=[Depends(PUBLIC)])
_log = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"description": "Database unreachable, or its writer stopped"}}
)
async def readyz(services: ServicesDep) -> JSONResponse:
    if not services.store.writer.healthy:
        _log.warning("not ready: the database writer stopped")
        return JSONResponse(
            {"status": "unavailable", "reason": "database writer stopped"}, status_code=503
        )
    try:
        await run_in_threadpool(services.store.ping)
    except SQLAlchemyError as exc:
        _log.warning("not ready: database unreachable: %s", exc)
        return JSONResponse(
            {"status": "unavailable", "reason": "database unreachable"}, status_code=503
        )
    return JSONResponse({"status": "ok"})
