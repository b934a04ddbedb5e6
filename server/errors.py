"""Domain errors and the one place that maps them to HTTP.

Every error response has the same JSON shape::

    {"error": {"code": "invalid_batch", "message": "what is wrong, in words",
               "problems": [{"location": "metrics.3.samples.0.1", "message": "..."}]}}

Besides a route's own refusals, any route that takes a body can answer 400 when the body cannot
be parsed at all (not UTF-8); the OpenAPI document says so for every such route.

One exception to the JSON shape: a browser asking for a web page (a GET that accepts
``text/html``, outside the API, Prometheus, metrics, static and schema paths) that would be
refused with 401 is sent to the login page instead (303 ``/login?next=<path and query>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException


@dataclass(frozen=True)
class ProblemDetail:
    location: str
    message: str


class ApiError(Exception):
    """A request the server refuses, with the HTTP status, a stable code and the reason."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: Sequence[ProblemDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = tuple(problems)
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    problems: Sequence[ProblemDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if problems:
        body["problems"] = [{"location": p.location, "message": p.message} for p in problems]
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    """Map ApiError, request validation and routing errors to the JSON error shape."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status == 401 and wants_page(request):
            return login_redirect(request)
        return error_response(exc.status, exc.code, exc.message, exc.problems, exc.headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            ProblemDetail(
                ".".join(str(part) for part in error.get("loc", ())), str(error.get("msg", ""))
            )
            for error in exc.errors()
        ]
        summary = "; ".join(f"{p.location}: {p.message}" for p in problems[:3])
        return error_response(422, "invalid_request", f"invalid request: {summary}", problems)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=exc.headers,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    _document_unparseable_bodies(app)


NOT_PAGES = ("/api/", "/prometheus/", "/metrics", "/static/", "/docs", "/redoc", "/openapi.json")
"""Path prefixes that are never web pages: their 401 stays JSON even for a browser."""


def wants_page(request: Request) -> bool:
    """Returns: True when the request is a browser asking for a web page (a GET that accepts
    ``text/html``, on a path that is not the API's)."""
    if request.method != "GET" or "text/html" not in request.headers.get("accept", "").lower():
        return False
    return not request.url.path.startswith(NOT_PAGES)


def login_redirect(request: Request) -> RedirectResponse:
    """Returns: 303 to the login page, which comes back to this page once logged in."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


_UNPARSEABLE = {"description": "The request body cannot be parsed (for example: not UTF-8)"}


def _document_unparseable_bodies(app: FastAPI) -> None:
    """Add the 400 that FastAPI answers for an unparseable body to every operation with one."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        built_before = app.openapi_schema is not None
        document = build()
        if not built_before:
            for path_item in document.get("paths", {}).values():
                for operation in path_item.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault("400", _UNPARSEABLE)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
