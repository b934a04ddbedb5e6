"""The OpenAPI viewers: GET /docs (Swagger UI), /docs/oauth2-redirect and /redoc (ReDoc).

FastAPI's built-in viewers load their JavaScript, CSS, favicon and fonts from CDNs; these pages
load the copies vendored under /static/vendor/ (``server/web/assets.py``) and nothing else, so
they work air-gapped. The application turns the built-in ones off (``docs_url=None``,
``redoc_url=None``). Like ``/openapi.json`` they are public: they describe the API and hold no
data.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from server.auth import PUBLIC
from server.web.assets import PREFIX, VENDOR

DOCS = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
REDOC = "/redoc"
SWAGGER_JS = f"{PREFIX}/{VENDOR}/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{PREFIX}/{VENDOR}/swagger-ui/swagger-ui.css"
REDOC_JS = f"{PREFIX}/{VENDOR}/redoc/redoc.standalone.js"
# An empty inline icon: no request for a favicon anywhere (FastAPI's default is on its site).
FAVICON = "data:,"
# Swagger UI's default validator badge asks validator.swagger.io about the schema.
SWAGGER_PARAMETERS: dict[str, Any] = {"validatorUrl": None}
# The browser enforces "nothing from elsewhere": ReDoc 2.x's side menu shows Redocly's logo from
# cdn.redoc.ly (no option turns it off; blocked, it hides itself), and a future bundle could
# fetch more. Inline script and style: the pages' SwaggerUIBundle(...) call and both viewers'
# injected styles; blob: workers: ReDoc's search.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
    )
)

router = APIRouter(tags=["docs"], dependencies=[Depends(PUBLIC)], include_in_schema=False)


def _root(request: Request) -> str:
    """Returns: the path prefix the server is mounted under behind a proxy ("" if none)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _confined(response: HTMLResponse) -> HTMLResponse:
    """Returns: ``response`` with the policy that keeps the page's loads on this server."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@router.get(DOCS, response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    app = request.app
    return _confined(
        get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_JS}",
            swagger_css_url=f"{root}{SWAGGER_CSS}",
            swagger_favicon_url=FAVICON,
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), **SWAGGER_PARAMETERS},
        )
    )


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
async def swagger_ui_redirect() -> HTMLResponse:
    return _confined(get_swagger_ui_oauth2_redirect_html())


@router.get(REDOC, response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    app = request.app
    return _confined(
        get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_JS}",
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )
    )
