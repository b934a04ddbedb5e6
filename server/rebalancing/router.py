"""The hint API: what the engine advises, and the operator's (or scheduler's) decision on it.

    GET  /api/v1/hints              read: open hints (filters below), with the latest round
    GET  /api/v1/hints/export       read: the open hints, flat, for scripts (below)
    GET  /api/v1/hints/{id}         read: one hint, with its evidence and moves
    POST /api/v1/hints/{id}         admin or scheduler: {"state": ..., "note": ...}

Filters of ``GET /api/v1/hints``: ``kind``; ``node`` (the subject's node, or a move's source
or target); ``pod`` (the subject's pod or a moved one; ``job`` is the same filter: a job's id
is its pod's); ``state`` (repeatable: a state, ``open`` for new and acknowledged, the default,
or ``all``); lower bounds on the gain: ``min_gpus`` (whole GPUs made usable), ``min_gpu_hours``
and ``min_watts``, all that are given must hold; ``limit``. Most certain first, then largest
gain.

The export is what a Slurm or Kubernetes operator scripts against: one object per open hint,
``{"id", "kind", "remedy", "state", "node", "gpu", "pod", "confidence", "gain_gpus",
"gain_gpu_hours", "gain_watts", "reason", "moves": [{"pod", "action": "move" | "release",
"from_node", "from_gpus", "to_node", "to_gpus"}]}`` under ``{"version": 1, "generated_at",
"hints"}``. A ``release`` has ``to_node`` null: suspend or requeue the pod. A ``cordon`` hint
asks to take its subject GPU out of scheduling, then to do its moves. dcmon never moves a job
itself; a script that acts marks the hint ``applied`` (a scheduler token may).

Hint errors map to HTTP in one place (``_call``): unknown hint 404, a change not allowed from
the hint's state 409; a body that is not ``{"state": "acknowledged" | "dismissed" |
"applied", "note": "..."}`` is 422, one over ``MAX_BODY_BYTES`` 413.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from server.auth import READ, SCHEDULE, Principal
from server.deps import ServicesDep
from server.errors import ApiError
from server.hints.hint import Kind
from server.rebalancing.model import (
    OPEN_STATES,
    HintError,
    HintFilter,
    HintNotFoundError,
    HintState,
    HintStateError,
)
from server.rebalancing.schemas import (
    ExportHintOut,
    ExportOut,
    HintListOut,
    HintOut,
    HintStateIn,
    HintSummaryOut,
    RoundOut,
)
from server.rebalancing.service import HintService

T = TypeVar("T")
HINTS_PATH = "/api/v1/hints"
MAX_LIMIT = 5000
MAX_BODY_BYTES = 16 << 10
StateQuery = Literal["new", "acknowledged", "dismissed", "applied", "expired", "open", "all"]


class _BoundedRoute(APIRoute):
    """Reads a body within ``MAX_BODY_BYTES`` before FastAPI parses it (413 past it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method == "POST":
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                    raise ApiError(413, "body_too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
                chunks, size = [], 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise ApiError(
                            413, "body_too_large", f"body exceeds {MAX_BODY_BYTES} bytes"
                        )
                    chunks.append(chunk)
                request._body = b"".join(chunks)  # what Request.body() then returns
            return await handler(request)

        return bounded


router = APIRouter(tags=["hints"], route_class=_BoundedRoute)

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, expired or revoked bearer token"},
    403: {"description": "The token's role may not call this endpoint"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such hint"}}
_HINT_ID = Path(min_length=1, max_length=64, description="The hint's id (16 hex digits)")
Name = Annotated[str | None, Query(min_length=1, max_length=253)]
Bound = Annotated[float | None, Query(ge=0)]


def _hints(request: Request) -> HintService:
    service: HintService = request.app.state.hints
    return service


HintsDep = Annotated[HintService, Depends(_hints)]


async def _call(function: Callable[..., T], *args: Any) -> T:
    """Run a store call off the event loop; its domain errors become HTTP answers here."""
    try:
        return await run_in_threadpool(function, *args)
    except HintNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except HintStateError as exc:
        raise ApiError(409, "hint_state", str(exc)) from None
    except HintError as exc:
        raise ApiError(422, "invalid_hint_request", str(exc)) from None


def _states(asked: list[StateQuery] | None) -> frozenset[HintState]:
    if not asked:
        return OPEN_STATES
    found: set[HintState] = set()
    for state in asked:
        if state == "all":
            found |= set(HintState)
        elif state == "open":
            found |= OPEN_STATES
        else:
            found.add(HintState(state))
    return frozenset(found)


@router.get(HINTS_PATH, response_model=HintListOut, responses=_AUTH, dependencies=[Depends(READ)])
async def list_hints(
    hints: HintsDep,
    kind: Kind | None = None,
    node: Name = None,
    pod: Name = None,
    job: Annotated[str | None, Query(min_length=1, max_length=253, description="= pod")] = None,
    state: Annotated[list[StateQuery] | None, Query()] = None,
    min_gpus: Bound = None,
    min_gpu_hours: Bound = None,
    min_watts: Bound = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> HintListOut:
    """Rebalancing hints, open ones by default, most certain and largest gain first."""
    if pod is not None and job is not None and pod != job:
        raise ApiError(422, "invalid_request", "pod and job are the same filter; give one")
    where = HintFilter(
        kind=kind.value if kind is not None else None,
        node=node,
        pod=pod if pod is not None else job,
        states=_states(state),
        min_gpus=min_gpus,
        min_gpu_hours=min_gpu_hours,
        min_watts=min_watts,
        limit=limit,
    )
    found = await _call(hints.store.find, where)
    last = hints.last_round
    return HintListOut(
        hints=[HintSummaryOut.of(h) for h in found],
        round=RoundOut.of(last) if last is not None else None,
        rounds=hints.rounds,
        failed_rounds=hints.failures,
    )


@router.get(
    HINTS_PATH + "/export", response_model=ExportOut, responses=_AUTH, dependencies=[Depends(READ)]
)
async def export_hints(hints: HintsDep, services: ServicesDep) -> ExportOut:
    """Every open hint, flat, for a scheduler's script (the shape is in the module)."""
    found = await _call(hints.store.open_hints)
    ordered = sorted(found, key=lambda h: (-h.confidence, -h.gain_gpus, h.id))
    return ExportOut(generated_at=services.clock(), hints=[ExportHintOut.of(h) for h in ordered])


@router.get(
    HINTS_PATH + "/{hint_id}",
    response_model=HintOut,
    responses={**_AUTH, **_NOT_FOUND},
    dependencies=[Depends(READ)],
)
async def get_hint(hints: HintsDep, hint_id: Annotated[str, _HINT_ID]) -> HintOut:
    """One hint with its evidence (the series, windows and values it rests on) and moves."""
    return HintOut.of(await _call(hints.store.get, hint_id))


@router.post(
    HINTS_PATH + "/{hint_id}",
    response_model=HintOut,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        409: {"description": "The hint has expired (the advice no longer holds)"},
        413: {"description": "Body too large"},
        422: {"description": "A state other than acknowledged, dismissed or applied"},
    },
)
async def set_hint_state(
    body: HintStateIn,
    hints: HintsDep,
    caller: Annotated[Principal, Depends(SCHEDULE)],
    hint_id: Annotated[str, _HINT_ID],
) -> HintOut:
    """Acknowledge, dismiss or mark applied (admin or scheduler). A dismissed hint stays
    dismissed while the engine produces it again, until ``hints_dismiss_seconds`` have passed;
    an applied one until ``hints_applied_seconds`` have."""
    changed = await _call(
        hints.store.set_state, hint_id, HintState(body.state), caller.token_id, body.note
    )
    return HintOut.of(changed)
