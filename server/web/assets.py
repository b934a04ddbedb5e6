"""The web UI's static files: ``/static`` from the package folder ``server/web/static``.

Third-party browser assets (uPlot, Swagger UI, ReDoc) live in ``static/vendor/``: pinned in
``server/web/vendor.toml``, fetched and integrity-checked by ``scripts/vendor-assets`` (which
``scripts/bootstrap`` runs) and gitignored, so nothing is loaded from a CDN and the UI works
air-gapped. Where they are missing the server still starts, and says once how to fetch them.

Static files are public: they are code and styles, no data, and the login page needs them.
"""

from __future__ import annotations

import logging
import os
import tomllib
from importlib import resources
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, PathLike, StaticFiles
from starlette.types import Scope

_log = logging.getLogger(__name__)

PREFIX = "/static"
VENDOR = "vendor"
# A vendored file changes only with its pinned version (a server upgrade): a day's caching;
# dcmon's own app.js and app.css are revalidated on every load (ETag, 304).
VENDOR_CACHE_CONTROL = "public, max-age=86400"
OWN_CACHE_CONTROL = "no-cache"


def static_dir() -> Path:
    """Returns: the package's static folder (server/web/static)."""
    return Path(str(resources.files("server.web").joinpath("static")))


def vendored_files(pins: str) -> list[str]:
    """Returns: the files ``scripts/vendor-assets`` puts under ``vendor/`` for the pins file
    text ``pins`` (vendor.toml), as ``<into>/<name>`` paths; each package's LICENSE is not
    listed (its name varies by package)."""
    packages = tomllib.loads(pins).get("package", [])
    return [
        f"{package['into']}/{PurePosixPath(name).name}"
        for package in packages
        for name in package["files"]
    ]


def missing_vendor_files(static: Path) -> list[str]:
    """Returns: the pinned vendored files absent from ``static``/vendor (empty: all there)."""
    pins = resources.files("server.web").joinpath("vendor.toml").read_text(encoding="utf-8")
    return [name for name in vendored_files(pins) if not (static / VENDOR / name).is_file()]


class StaticAssets(StaticFiles):
    """StaticFiles with cache headers by kind of file; a missing folder answers 404."""

    async def check_config(self) -> None:
        if self.directory is not None and not os.path.isdir(self.directory):
            return  # a checkout without static files: 404s, not a 500 per request
        await super().check_config()

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        headers = {
            "Cache-Control": self._cache_control(full_path),
            "X-Content-Type-Options": "nosniff",
        }
        response = FileResponse(
            full_path, status_code=status_code, stat_result=stat_result, headers=headers
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response

    def _cache_control(self, full_path: PathLike) -> str:
        vendor = os.path.realpath(os.path.join(str(self.directory), VENDOR))
        inside = os.path.commonpath([vendor, os.path.realpath(full_path)]) == vendor
        return VENDOR_CACHE_CONTROL if inside else OWN_CACHE_CONTROL


def static_app(directory: Path | None = None) -> StaticAssets:
    """Returns: the ASGI app to mount at ``PREFIX``, serving ``directory`` (default: the
    package's static folder). Logs one warning where vendored assets are missing."""
    folder = directory if directory is not None else static_dir()
    missing = missing_vendor_files(folder)
    if missing:
        _log.warning(
            "the web UI's vendored assets are missing from %s (%s): run scripts/vendor-assets "
            "(scripts/bootstrap does); until then /docs, /redoc and the charts cannot load them",
            folder / VENDOR,
            ", ".join(missing),
        )
    return StaticAssets(directory=folder, check_dir=False)
