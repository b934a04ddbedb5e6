"""Rendering the web pages: one Jinja2 environment, and the context every page shares.

Stage: web. A page handler builds its model (plain data, from the services) and calls
``render(request, "node.html", page="node", ...)``; this adds who is logged in, the session's
CSRF token, the version and the nav bar's state, so that every template can extend
``base.html`` without each handler repeating them.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from agent import __version__
from server.auth.session import csrf_token, session_principal

UNKNOWN = "\u2013"  # an en dash: no value
NAV = (
    ("fleet", "/", "Fleet"),
    ("jobs", "/jobs", "Jobs"),
    ("alerts", "/alerts", "Alerts"),
    ("hints", "/hints", "Hints"),
    ("benchmarks", "/benchmarks", "Benchmarks"),
)
"""The nav bar: (page, path, label). A page below one of these (node, GPU) marks its parent."""
_PARENT = {"node": "fleet", "gpu": "fleet", "job": "jobs", "hint": "hints"}


def make_templates() -> Environment:
    folder = str(resources.files("server.web").joinpath("templates"))
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = human_bytes
    env.filters["age"] = human_age
    env.filters["pct"] = percent
    env.filters["num"] = number
    env.filters["path"] = lambda value: quote(str(value), safe="")
    return env


def render(
    request: Request, template: str, page: str, status_code: int = 200, **model: Any
) -> HTMLResponse:
    """Returns: ``template`` rendered with ``model`` and the shared context, as HTML."""
    env: Environment = request.app.state.templates
    settings = request.app.state.services.settings
    context: dict[str, Any] = {
        "page": page,
        "nav": NAV,
        "nav_page": _PARENT.get(page, page),
        "principal": session_principal(request),
        "csrf": csrf_token(request),
        "version": __version__,
        "open_reads": bool(settings.open_reads),
        "sessions_enabled": getattr(request.app.state, "sessions", None) is not None,
        "path": request.url.path,
    }
    context.update(model)
    return HTMLResponse(env.get_template(template).render(**context), status_code=status_code)


def human_bytes(value: float | None) -> str:
    """Returns: ``value`` bytes in binary units (``81.6 GiB``), or an en dash when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def human_age(seconds: float | None) -> str:
    """Returns: a duration as the largest two units (``3 h 12 min``, ``45 s``)."""
    if seconds is None:
        return UNKNOWN
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def percent(value: float | None, digits: int = 0) -> str:
    """Returns: ``value`` (already in percent) as ``42 %``, or an en dash when unknown."""
    if value is None or math.isnan(value):
        return UNKNOWN
    return f"{value:.{digits}f} %"


def number(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return UNKNOWN
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}" if unit else text
