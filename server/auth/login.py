"""The web login: ``GET /login`` (the form), ``POST /login`` (a token becomes a session cookie),
``POST /logout`` (the session ends).

Stage: auth, in front of the web pages. A read, admin or scheduler token entered once in the
form is checked like a bearer token (``services.authenticator``); the browser then holds only
the signed session cookie (``server/auth/session.py``), never the token. The routes are public
(``PUBLIC``): they show or take a token and hold no data. A page visited without a session is
sent here by ``server/errors.py`` (303 ``/login?next=...``), and ``next`` brings the browser
back, but only to a path of this server (anything else goes to ``/``).

The forms are ``application/x-www-form-urlencoded`` and parsed here (no multipart parser
needed): a login takes ``token`` and ``next``, a logout the session's ``csrf_token`` (so another
site cannot log a browser out). A form posted from another site (``Sec-Fetch-Site:
cross-site``) is refused, so a page elsewhere cannot log a browser in to its own token either.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server.auth.access import PUBLIC
from server.auth.cookie import SESSION_ROLES
from server.auth.principal import Principal
from server.auth.session import (
    SessionService,
    clear_cookie,
    request_session,
    sessions_of,
    set_cookie,
)
from server.errors import ApiError
from server.web.render import render

router = APIRouter(tags=["web"], include_in_schema=False, dependencies=[Depends(PUBLIC)])
_log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 8192  # a token and a path; a real form is well under 1 KiB
MAX_NEXT_LENGTH = 2048
NO_STORE = {"Cache-Control": "no-store"}
SELF_PATHS = frozenset({"/login", "/logout"})


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    """The login form; ``next`` is where a successful login goes (a local path)."""
    await run_in_threadpool(request_session, request)  # who is logged in, for the page
    target = local_path(request.query_params.get("next"))
    return _page(request, target, error="", status_code=200)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """A token from the form becomes a session: 303 to ``next`` with the cookie set, or 401
    with the form again and why."""
    _refuse_cross_site(request)
    service = _service(request)
    form = await read_form(request)
    target = local_path(form.get("next"))
    token = form.get("token", "").strip()
    principal: Principal | None = None
    if token:
        authenticator = request.app.state.services.authenticator
        principal = await run_in_threadpool(authenticator.authenticate, token)
    if principal is None:
        error = "unknown or revoked token" if token else "enter a read or admin token"
        return await _refused(request, target, error)
    if principal.role not in SESSION_ROLES:
        article = "an" if principal.role.value[0] in "aeiou" else "a"
        error = f"{article} {principal.role.value} token cannot log in: use a read or admin token"
        return await _refused(request, target, error)
    _session, value = await run_in_threadpool(service.start, principal)
    response = RedirectResponse(target, status_code=303, headers=NO_STORE)
    set_cookie(response, request, value, service.lifetime_seconds)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its form must carry the session's ``csrf_token``: 403 otherwise), drop
    the cookie, 303 to the login page. Without a session: only the cookie is dropped."""
    _refuse_cross_site(request)
    session = await run_in_threadpool(request_session, request)
    if session is not None:
        service = _service(request)
        form = await read_form(request)
        if not service.csrf_matches(session, form.get("csrf_token")):
            raise ApiError(
                403, "csrf", "logout needs the session's CSRF token in the form field csrf_token"
            )
        await run_in_threadpool(service.end, session)
    response = RedirectResponse("/login", status_code=303, headers=NO_STORE)
    clear_cookie(response, request)
    return response


def local_path(value: str | None) -> str:
    """Returns: ``value`` when it is a path on this server (one leading "/", no backslash, no
    control character or space), else "/": a login never sends the browser to another site."""
    if not value or len(value) > MAX_NEXT_LENGTH or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value:
        return "/"  # "//host" and "/\host" are other hosts to a browser
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in value):
        return "/"  # browsers drop tabs and newlines: "/\t/host" would become "//host"
    if value.split("?", 1)[0] in SELF_PATHS:
        return "/"  # the nav bar's "Log in" on the login page itself: go to the fleet instead
    return value


async def read_form(request: Request) -> dict[str, str]:
    """Returns: the fields of a URL-encoded form body (the first value of each).

    Raises:
        ApiError: 415 another content type, 413 a body over ``MAX_FORM_BYTES``, 400 a body
            that is not UTF-8 or not a form.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", f"the form must be sent as {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(413, "too_large", f"the form is over {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(bytes(body).decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_form", f"the form cannot be read: {exc}") from exc
    return {name: values[0] for name, values in fields.items()}


def _service(request: Request) -> SessionService:
    service = sessions_of(request)
    if service is None:
        raise ApiError(404, "not_found", "web sessions are not enabled on this server")
    return service


def _refuse_cross_site(request: Request) -> None:
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise ApiError(403, "csrf", "a login or logout form posted from another site is refused")


async def _refused(request: Request, target: str, error: str) -> Response:
    await run_in_threadpool(request_session, request)
    _log.info("web login refused: %s", error)
    return _page(request, target, error=error, status_code=401)


def _page(request: Request, target: str, *, error: str, status_code: int) -> Response:
    response = render(
        request, "login.html", page="login", status_code=status_code, next=target, error=error
    )
    response.headers.update(NO_STORE)
    return response
