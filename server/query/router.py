"""``/prometheus/api/v1/``: Prometheus' HTTP query API, for Grafana and other PromQL clients.

Thin: parameters come from the query string and, on POST, a form body (as Prometheus reads
them), the service answers in a worker thread, and errors become Prometheus' envelope here.
Every route needs the READ rule; a Grafana data source sends the read token as a bearer header.
``rules`` and ``alerts`` answer the rules the server evaluates (``server/alerting``), in
Prometheus' shape, so Grafana's recording-rule lookup and alert list work; any other path under
the prefix is a ``not_found`` envelope (a known path asked with the wrong method: 405), never
the framework's own body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from server.alerting import views
from server.auth import READ
from server.promql.errors import PromQLError
from server.query.envelope import failure, success
from server.query.errors import QueryError
from server.query.params import Params
from server.query.service import Answer, QueryService

PREFIX: Final = "/prometheus/api/v1"
MAX_FORM_BYTES: Final = 1 << 20
FORM_TYPE: Final = "application/x-www-form-urlencoded"

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

router = APIRouter(tags=["prometheus"], dependencies=[Depends(READ)])


def get_query_service(request: Request) -> QueryService:
    service: QueryService = request.app.state.query
    return service


QueryServiceDep = Annotated[QueryService, Depends(get_query_service)]


class SuccessOut(BaseModel):
    status: Literal["success"]
    data: Any
    warnings: list[str] | None = None
    infos: list[str] | None = None


class ErrorOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    status: Literal["error"]
    error_type: str = Field(alias="errorType")
    error: str


_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": SuccessOut},
    400: {"model": ErrorOut, "description": "bad_data: a parameter or the query is invalid"},
    422: {"model": ErrorOut, "description": "execution: evaluation failed or hit a limit"},
    500: {"model": ErrorOut, "description": "internal: the database failed"},
    503: {"model": ErrorOut, "description": "timeout: the query ran past its time limit"},
}
_TIME = "RFC 3339 or Unix seconds"
_DURATION = "Duration: float seconds or 5m, 1h30m"
_QUERY_PARAMS = {
    "query": "PromQL expression",
    "time": f"Evaluation time ({_TIME}); default now",
    "timeout": f"{_DURATION}; shortens the server's query timeout",
    "limit": "Most series returned (0: all)",
}
_RANGE_PARAMS = {
    "query": "PromQL expression",
    "start": f"Start ({_TIME})",
    "end": f"End ({_TIME})",
    "step": f"Resolution step. {_DURATION}",
    "timeout": f"{_DURATION}; shortens the server's query timeout",
    "limit": "Most series returned (0: all)",
}
_SERIES_PARAMS = {
    "match[]": "Series selector, repeatable",
    "start": f"Only series written since ({_TIME})",
    "end": f"End ({_TIME})",
    "limit": "Most entries returned (0: all)",
}


def _parameters(fields: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "array", "items": {"type": "string"}}
            if name == "match[]"
            else {"type": "string"},
            **({"style": "form", "explode": True} if name == "match[]" else {}),
        }
        for name, text in fields.items()
    ]


def _form(fields: dict[str, str]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        name: {"type": "array", "items": {"type": "string"}, "description": text}
        if name == "match[]"
        else {"type": "string", "description": text}
        for name, text in fields.items()
    }
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"content": {FORM_TYPE: {"schema": schema}}}}


async def _params(request: Request) -> Params:
    """The query string's parameters, then a form body's (a later value wins, as in Go)."""
    items = list(request.query_params.multi_items())
    if request.method == "POST" and request.headers.get("content-type", "").startswith(FORM_TYPE):
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise QueryError("bad_data", f"form body larger than {MAX_FORM_BYTES} bytes")
        try:
            items += parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise QueryError("bad_data", f"form body cannot be parsed: {exc}") from exc
    return Params.of(items)


async def _respond(request: Request, answer: Callable[[Params], Answer]) -> JSONResponse:
    """Runs ``answer`` in a worker thread; Prometheus' envelope for its answer or error."""
    try:
        params = await _params(request)
        result = await run_in_threadpool(answer, params)
    except (QueryError, PromQLError) as exc:
        return failure(exc)
    return success(result.data, result.warnings, result.infos)


def _register(
    path: str, fields: dict[str, str], methods: tuple[str, ...]
) -> Callable[[_Handler], _Handler]:
    """A decorator adding one endpoint per method, documented from one parameter table."""

    def decorate(handler: _Handler) -> _Handler:
        for method in methods:
            extra = _form(fields) if method == "POST" else {"parameters": _parameters(fields)}
            router.add_api_route(
                PREFIX + path,
                handler,
                methods=[method],
                responses=_RESPONSES,
                response_class=JSONResponse,
                openapi_extra=extra,
                name=f"{handler.__name__}_{method.lower()}",
                summary=(handler.__doc__ or "").splitlines()[0],
            )
        return handler

    return decorate


@_register("/query", _QUERY_PARAMS, ("GET", "POST"))
async def query(request: Request, service: QueryServiceDep) -> JSONResponse:
    """An instant query: the value of a PromQL expression at one time."""
    return await _respond(request, service.instant)


@_register("/query_range", _RANGE_PARAMS, ("GET", "POST"))
async def query_range(request: Request, service: QueryServiceDep) -> JSONResponse:
    """A range query: a PromQL expression at start, start + step, ... up to end."""
    return await _respond(request, service.range)


@_register("/series", _SERIES_PARAMS, ("GET", "POST"))
async def series(request: Request, service: QueryServiceDep) -> JSONResponse:
    """The label sets of the series the match[] selectors select."""
    return await _respond(request, service.series)


@_register("/labels", _SERIES_PARAMS, ("GET", "POST"))
async def labels(request: Request, service: QueryServiceDep) -> JSONResponse:
    """Label names of the selected series (all series without match[]), sorted."""
    return await _respond(request, service.labels)


@_register("/label/{name}/values", _SERIES_PARAMS, ("GET",))
async def label_values(request: Request, service: QueryServiceDep, name: str) -> JSONResponse:
    """Values of one label over the selected series, sorted."""
    return await _respond(request, lambda params: service.label_values(name, params))


@_register(
    "/metadata",
    {"metric": "Only this metric", "limit": "Most metrics returned (0: all)"},
    ("GET",),
)
async def metadata(request: Request, service: QueryServiceDep) -> JSONResponse:
    """Type, help and unit of each stored metric, from the metric catalog."""
    return await _respond(request, service.metadata)


@_register(
    "/query_exemplars",
    {"query": "PromQL expression", "start": f"Start ({_TIME})", "end": f"End ({_TIME})"},
    ("GET", "POST"),
)
async def query_exemplars(request: Request, service: QueryServiceDep) -> JSONResponse:
    """Exemplars: always empty (dcmon stores none)."""
    return await _respond(request, service.exemplars)


@_register("/status/buildinfo", {}, ("GET",))
async def buildinfo(request: Request, service: QueryServiceDep) -> JSONResponse:
    """The Prometheus version this API follows, for clients that detect features by it."""
    return await _respond(request, lambda _params: service.buildinfo())


@_register(
    "/rules",
    {"type": "alert or record", "exclude_alerts": "true: rules without their alerts"},
    ("GET",),
)
async def rules(request: Request) -> JSONResponse:
    """Rule groups with each rule's state, health, last error and evaluation time."""
    alerting = getattr(request.app.state, "alerting", None)

    def answer(params: Params) -> Answer:
        kind = params.get("type")
        if kind not in (None, "", "alert", "record"):
            raise QueryError("bad_data", f'invalid parameter "type": unknown type {kind!r}')
        if alerting is None:
            return Answer({"groups": []}, [], [])
        data = views.prometheus_rules(
            alerting.evaluator.snapshot(), kind or None, params.get("exclude_alerts") == "true"
        )
        return Answer(data, [], [])

    return await _respond(request, answer)


@_register("/alerts", {}, ("GET",))
async def alerts(request: Request) -> JSONResponse:
    """Pending and firing alerts of the rules the server evaluates."""
    alerting = getattr(request.app.state, "alerting", None)

    def answer(_params: Params) -> Answer:
        if alerting is None:
            return Answer({"alerts": []}, [], [])
        return Answer(views.prometheus_alerts(alerting.evaluator.snapshot()), [], [])

    return await _respond(request, answer)


@router.api_route(
    PREFIX + "/{rest:path}",
    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
)
async def unknown(request: Request, rest: str) -> JSONResponse:
    """Any other path: Prometheus' 404 as an envelope, or 405 for a known path's wrong method."""
    for route in router.routes:
        known = isinstance(route, APIRoute) and route.endpoint is not unknown
        if known and route.matches(request.scope)[0] is Match.PARTIAL:
            message = f"method {request.method} not allowed for /api/v1/{rest}"
            return failure(QueryError("method_not_allowed", message))
    return failure(QueryError("not_found", f"unknown API endpoint /api/v1/{rest}"))
