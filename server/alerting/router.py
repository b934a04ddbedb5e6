"""dcmon's rules API: ``GET /api/v1/alerts``, ``GET /api/v1/rules``, ``POST /api/v1/rules/reload``.

Stage: API over ``AlertingService``. Reads need the read role, a reload the admin role. A
reload answers 200 with the rule set's groups; when a file did not load, 422 with each file's
problems (its previous rules stay in use).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from server.alerting import views
from server.alerting.service import AlertingService
from server.auth import ADMIN, READ

router = APIRouter(tags=["alerting"])


def _service(request: Request) -> AlertingService:
    service: AlertingService = request.app.state.alerting
    return service


@router.get("/api/v1/alerts", dependencies=[Depends(READ)])
async def list_alerts(
    request: Request,
    resolved: Annotated[bool, Query(description="Also alerts resolved in the last 15 min")] = False,
) -> dict[str, Any]:
    """Pending and firing alerts of the rules the server evaluates (the leader's last round)."""
    runs = _service(request).evaluator.snapshot()
    return views.dcmon_alerts(runs, include_resolved=resolved)


@router.get("/api/v1/rules", dependencies=[Depends(READ)])
async def list_rules(request: Request) -> dict[str, Any]:
    """Rule groups and rules: health, last error, evaluation time, missed iterations."""
    evaluator = _service(request).evaluator
    return views.dcmon_rules(
        evaluator.snapshot(), evaluator.ruleset.errors, evaluator.leading, evaluator.failures
    )


@router.post("/api/v1/rules/reload", dependencies=[Depends(ADMIN)])
async def reload_rules(request: Request) -> JSONResponse:
    """Re-read the rule files; unchanged rules keep their state, broken files their rules."""
    ruleset = await run_in_threadpool(_service(request).reload)
    body = {
        "groups": [group.key for group in ruleset.groups],
        "file_errors": {name: list(problems) for name, problems in ruleset.errors.items()},
    }
    return JSONResponse(body, status_code=422 if ruleset.errors else 200)
