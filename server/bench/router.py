"""The benchmark API: requests (admin), reports (the node), results and the fleet (readers).

    POST /api/v1/bench/requests                   admin: one request per node named/matched
    GET  /api/v1/bench/requests                   read: newest first (node, state, limit)
    GET  /api/v1/bench/requests/{id}              read
    POST /api/v1/bench/requests/{id}/cancel       admin
    POST /api/v1/bench/requests/{id}/report       node: the agent's report (agent.wire.bench)
    GET  /api/v1/bench/results                    read: figures, newest first, and the fleet
    GET  /api/v1/bench/gpus/{gpu}/history         read: one device's runs and figures
    GET  /api/v1/bench/fleet                      read: latest figures judged against the fleet

Bench errors map to HTTP in one place (``_call``): unknown request 404, another node's request
403, a request already final or expired 409, a request that cannot be made 422. Bodies are
read within ``max_body_bytes`` (413 past it).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from agent.wire.bench import BENCH_REPORT_PATH, BENCH_REQUESTS_PATH, BENCH_RESULTS_PATH, BenchReport
from server.auth import ADMIN, INGEST, READ, Principal, Role
from server.bench.fleet import MIN_PEERS, FleetVerdict
from server.bench.model import (
    BenchError,
    InvalidBenchRequestError,
    NewRequest,
    NotYourRequestError,
    RequestClosedError,
    RequestNotFoundError,
)
from server.bench.results import FigureView, ResultFilter
from server.bench.schemas import (
    BenchDeviceRunOut,
    BenchFigureOut,
    BenchFleetFigureOut,
    BenchFleetOut,
    BenchFleetVerdictOut,
    BenchHistoryOut,
    BenchPeersOut,
    BenchReportAnswer,
    BenchRequestList,
    BenchRequestOut,
    BenchRequestsCreated,
    BenchRequestsIn,
    BenchResultsOut,
    BenchSkippedOut,
    RequestState,
    Verdict,
)
from server.bench.service import BenchService
from server.bench.snapshot import FleetSnapshot
from server.deps import ServicesDep
from server.errors import ApiError, ProblemDetail

T = TypeVar("T")
MAX_LIMIT = 5000


class _BoundedRoute(APIRoute):
    """Reads the body within ``max_body_bytes`` before FastAPI parses it (413 past it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                limit = request.app.state.services.settings.max_body_bytes
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
                chunks, size = [], 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
                    chunks.append(chunk)
                request._body = b"".join(chunks)  # what Request.body() then returns
            return await handler(request)

        return bounded


router = APIRouter(tags=["bench"], route_class=_BoundedRoute)

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, expired or revoked bearer token"},
    403: {"description": "The token's role may not call this endpoint"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such request"}}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {413: {"description": "Body too large"}}
_REQUEST_ID = Path(min_length=1, max_length=64, description="The request's id")
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def _bench(services: ServicesDep) -> BenchService:
    return services.bench


BenchDep = Annotated[BenchService, Depends(_bench)]


async def _call(function: Callable[..., T], *args: Any) -> T:
    """Run a bench call off the event loop; its domain errors become HTTP answers here."""
    try:
        return await run_in_threadpool(function, *args)
    except RequestNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except NotYourRequestError as exc:
        raise ApiError(403, "not_your_request", str(exc)) from None
    except RequestClosedError as exc:
        raise ApiError(409, "request_closed", str(exc)) from None
    except InvalidBenchRequestError as exc:
        problems = [ProblemDetail(where, what) for where, what in exc.problems]
        raise ApiError(422, "invalid_bench_request", str(exc), problems) from None
    except BenchError as exc:
        raise ApiError(422, "invalid_bench_request", str(exc)) from None


@router.post(
    BENCH_REQUESTS_PATH,
    status_code=201,
    response_model=BenchRequestsCreated,
    responses={
        **_AUTH,
        **_TOO_LARGE,
        409: {"description": "Every node asked for already has an open request"},
        422: {"description": "Invalid body, unknown nodes, or no node matches the selector"},
    },
)
async def create_requests(
    body: BenchRequestsIn, bench: BenchDep, caller: Annotated[Principal, Depends(ADMIN)]
) -> BenchRequestsCreated:
    """Ask nodes to run the GPU benchmark: one request per node (a node with an open request
    is skipped and listed). Each node's agent gets its order in the answer to its next push."""
    new = NewRequest(
        level=body.level,
        gpus=tuple(body.gpus) if body.gpus is not None else None,
        duration_s=body.duration_s,
        force=body.force,
        expires_in_s=body.expires_in_s,
        created_by=caller.token_id,
    )
    created = await _call(bench.create, new, body.nodes, body.selector)
    skipped = [BenchSkippedOut.of(item) for item in created.skipped]
    if not created.created:
        raise ApiError(
            409,
            "already_open",
            "every node asked for already has an open benchmark request (one at a time)",
            [ProblemDetail(item.node, item.reason) for item in skipped],
        )
    return BenchRequestsCreated(
        created=[BenchRequestOut.of(r) for r in created.created], skipped=skipped
    )


@router.get(
    BENCH_REQUESTS_PATH,
    response_model=BenchRequestList,
    responses=_AUTH,
    dependencies=[Depends(READ)],
)
async def list_requests(
    bench: BenchDep,
    node: Annotated[str | None, Query(max_length=253, description="Name or node id")] = None,
    state: RequestState | None = None,
    limit: Limit = 100,
) -> BenchRequestList:
    """Benchmark requests, newest first (expired ones are marked so on the way)."""
    found = await _call(bench.requests.recent, node, state, limit)
    return BenchRequestList(requests=[BenchRequestOut.of(r) for r in found])


@router.get(
    BENCH_REQUESTS_PATH + "/{request_id}",
    response_model=BenchRequestOut,
    responses={**_AUTH, **_NOT_FOUND},
    dependencies=[Depends(READ)],
)
async def get_request(bench: BenchDep, request_id: Annotated[str, _REQUEST_ID]) -> BenchRequestOut:
    """One request, with its stored result tree once final."""
    found = await _call(bench.requests.get, request_id)
    if found.is_open:
        return BenchRequestOut.of(found)
    run = await _call(bench.results.run_of, request_id)
    if run is None:  # final without a result (refused, cancelled, expired)
        return BenchRequestOut.of(found)
    run_id, tree = run
    return BenchRequestOut.of(found, run_id, tree)


@router.post(
    BENCH_REQUESTS_PATH + "/{request_id}/cancel",
    response_model=BenchRequestOut,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        **_TOO_LARGE,
        409: {"description": "The request is already final or expired"},
    },
)
async def cancel_request(
    bench: BenchDep,
    caller: Annotated[Principal, Depends(ADMIN)],
    request_id: Annotated[str, _REQUEST_ID],
) -> BenchRequestOut:
    """Cancel: at once if the agent has not taken it, else the agent is told to stop and the
    request ends when it reports (or expires)."""
    return BenchRequestOut.of(await _call(bench.cancel, request_id, caller.token_id))


@router.post(
    BENCH_REPORT_PATH,
    response_model=BenchReportAnswer,
    responses={
        401: _AUTH[401],
        403: {"description": "Not an ingest token, or a node token and another node's request"},
        **_NOT_FOUND,
        **_TOO_LARGE,
        409: {"description": "The request is already final or expired: stop reporting"},
        422: {"description": "The report does not match agent.wire.bench.BenchReport"},
    },
)
async def report(
    body: BenchReport,
    bench: BenchDep,
    caller: Annotated[Principal, Depends(INGEST)],
    request_id: Annotated[str, _REQUEST_ID],
) -> BenchReportAnswer:
    """The agent's report on its request: waiting, running (progress), or a final state with
    the judged result tree, which is stored. A node token reports on its own node's requests
    only; a fleet ingest token, which may write any node's data, on any node's."""
    node_id = caller.node_id if caller.role is Role.NODE else None
    updated = await _call(bench.report, request_id, node_id, body)
    return BenchReportAnswer(
        id=updated.request_id,
        state=updated.state,
        cancel=updated.cancel_requested,
    )


@router.get(
    BENCH_RESULTS_PATH,
    response_model=BenchResultsOut,
    responses=_AUTH,
    dependencies=[Depends(READ)],
)
async def results(
    bench: BenchDep,
    node: Annotated[str | None, Query(max_length=253, description="Name or node id")] = None,
    gpu: Annotated[str | None, Query(max_length=320, description="UUID, or <node>/cpu<i>")] = None,
    sku: Annotated[str | None, Query(max_length=300)] = None,
    test: Annotated[str | None, Query(max_length=64)] = None,
    verdict: Verdict | None = None,
    since: Annotated[float | None, Query(description="Unix seconds")] = None,
    until: Annotated[float | None, Query(description="Unix seconds")] = None,
    limit: Limit = 100,
) -> BenchResultsOut:
    """Benchmark figures, newest first, each device's latest per test judged against its
    SKU's fleet; with the fleet's groups (median, scaled MAD, outlier limit)."""
    where = ResultFilter(node, gpu, sku, test, verdict, since, until, limit)
    figures = await _call(bench.figures, where)
    snapshot = await _call(bench.fleet)
    return BenchResultsOut(
        results=[_figure_out(f, snapshot) for f in figures],
        fleet=_groups(snapshot, sku, test),
    )


@router.get(
    "/api/v1/bench/gpus/{gpu:path}/history",
    response_model=BenchHistoryOut,
    responses={**_AUTH, 404: {"description": "No benchmark result for this device"}},
    dependencies=[Depends(READ)],
)
async def history(
    bench: BenchDep,
    gpu: Annotated[str, Path(description="UUID, or <node>/cpu<index>")],
    test: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[float | None, Query(description="Unix seconds")] = None,
    until: Annotated[float | None, Query(description="Unix seconds")] = None,
    limit: Limit = 100,
) -> BenchHistoryOut:
    """One device's benchmark runs (passed or not) and figures, newest first."""
    found = await _call(bench.history, gpu, test, since, until, limit)
    if not found.runs and not found.figures:
        raise ApiError(404, "not_found", f"no benchmark result for device {gpu!r}")
    snapshot = await _call(bench.fleet)
    return BenchHistoryOut(
        gpu=gpu,
        runs=[BenchDeviceRunOut.of(r) for r in found.runs],
        figures=[_figure_out(f, snapshot) for f in found.figures],
    )


@router.get(
    "/api/v1/bench/fleet",
    response_model=BenchFleetOut,
    responses=_AUTH,
    dependencies=[Depends(READ)],
)
async def fleet(
    bench: BenchDep,
    sku: Annotated[str | None, Query(max_length=300)] = None,
    test: Annotated[str | None, Query(max_length=64)] = None,
    outliers: Annotated[bool, Query(description="Only the outliers")] = False,
) -> BenchFleetOut:
    """Each device's latest figure per test against the median and scaled MAD of its SKU
    (outlier: below 0.9 x the median and below median - 4 MAD, with at least 5 devices)."""
    snapshot = await _call(bench.fleet)
    gpus = []
    for figure in snapshot.figures:
        verdict = snapshot.verdict(figure.gpu_key, figure.test)
        if verdict is None or figure.value is None:
            continue
        if (sku and figure.sku != sku) or (test and figure.test != test):
            continue
        if outliers and not verdict.outlier:
            continue
        gpus.append(
            BenchFleetFigureOut(
                gpu=figure.gpu_key,
                node=figure.node_name,
                gpu_index=figure.gpu_index,
                sku=figure.sku,
                test=figure.test,
                value=figure.value,
                unit=figure.unit,
                time=figure.time,
                fleet=_fleet_out(verdict),
            )
        )
    gpus.sort(key=lambda g: (not g.fleet.outlier, g.sku, g.test, g.gpu))
    return BenchFleetOut(groups=_groups(snapshot, sku, test), gpus=gpus)


def _fleet_out(verdict: FleetVerdict) -> BenchFleetVerdictOut:
    group = verdict.peers
    median = group.median if group is not None else None
    return BenchFleetVerdictOut(
        outlier=verdict.outlier,
        judged=group is not None,
        median=median,
        ratio=verdict.result.value / median if median else None,
        reason=verdict.reason,
    )


def _figure_out(figure: FigureView, snapshot: FleetSnapshot) -> BenchFigureOut:
    """The figure, with its fleet verdict when it is its device's latest of the test."""
    verdict = snapshot.verdict(figure.gpu_key, figure.test)
    if verdict is None or figure.id not in snapshot.latest_ids:
        return BenchFigureOut.of(figure)
    return BenchFigureOut.of(figure, _fleet_out(verdict))


def _groups(snapshot: FleetSnapshot, sku: str | None, test: str | None) -> list[BenchPeersOut]:
    out = []
    for (group_sku, group_test), group in sorted(snapshot.groups.items()):
        if (sku and group_sku != sku) or (test and group_test != test):
            continue
        judged = group.count >= MIN_PEERS
        out.append(
            BenchPeersOut(
                sku=group_sku,
                test=group_test,
                count=group.count,
                median=group.median,
                scaled_mad=group.scaled_mad,
                limit=group.limit if judged else None,
            )
        )
    return out
