"""The web UI works air-gapped: /docs and /redoc load only vendored local assets, /static serves
them with the right types, the vendored files match their manifest, and scripts/vendor-assets
refuses a tarball that does not match its pinned integrity (writing nothing)."""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import logging
import re
import shutil
import sys
import tarfile
import tomllib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.web import assets
from tests.integration import free_port, integration_required

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vendor-assets"
PINS = ROOT / "server" / "web" / "vendor.toml"
VENDOR = ROOT / "server" / "web" / "static" / "vendor"
TEST_SERVER = "http://testserver"  # TestClient's base URL
URL = re.compile(r"https?://[^\s\"'<>)]+", re.IGNORECASE)
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}


@pytest.fixture
def closed(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """An app whose reads need a token: the viewers and their assets must not."""
    with TestClient(make_app(open_reads=False)) as client:
        yield client


def _require_vendored() -> None:
    if (VENDOR / "MANIFEST.json").is_file():
        return
    reason = f"{VENDOR.relative_to(ROOT)}/ is absent: run scripts/vendor-assets (bootstrap does)"
    if integration_required():
        pytest.fail(f"{reason}, and DCMON_REQUIRE_INTEGRATION=1")
    pytest.skip(reason)


class _References(HTMLParser):
    """The URLs a page makes the browser load: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        self.urls += [value for name, value in attrs if name == wanted and value]


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("path", "assets_wanted"),
    [
        (
            "/docs",
            {
                "/static/vendor/swagger-ui/swagger-ui-bundle.js",
                "/static/vendor/swagger-ui/swagger-ui.css",
            },
        ),
        ("/redoc", {"/static/vendor/redoc/redoc.standalone.js"}),
    ],
)
def test_the_viewers_load_only_local_assets(
    closed: TestClient, path: str, assets_wanted: set[str]
) -> None:
    response = closed.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    foreign = [url for url in URL.findall(html) if not url.startswith(TEST_SERVER)]
    assert foreign == [], f"{path} names URLs off this server (CDN, fonts, favicon)"
    loaded = _references(html)
    assert set(loaded) >= assets_wanted
    for url in loaded:
        assert url.startswith("/static/vendor/") or url.startswith("data:"), url
    assert "'/openapi.json'" in html or 'spec-url="/openapi.json"' in html


@pytest.mark.parametrize("path", ["/docs", "/docs/oauth2-redirect", "/redoc"])
def test_the_browser_is_told_to_load_nothing_from_elsewhere(closed: TestClient, path: str) -> None:
    """ReDoc 2.x's side menu loads Redocly's logo from cdn.redoc.ly; the policy blocks it."""
    policy = closed.get(path).headers["content-security-policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert directives["default-src"] == ["'self'"]
    for name, sources in directives.items():
        assert set(sources) <= {"'self'", "'unsafe-inline'", "data:", "blob:"}, name
    assert "data:" in directives["img-src"] and "blob:" in directives["worker-src"]


def test_swagger_ui_asks_no_online_validator(closed: TestClient) -> None:
    """Swagger UI's default badge sends the schema's URL to validator.swagger.io."""
    assert '"validatorUrl": null' in closed.get("/docs").text


def test_the_viewers_follow_the_proxy_prefix(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(), root_path="/dcmon") as client:
        docs = _references(client.get("/docs").text)
        assert "/dcmon/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
        assert "/dcmon/static/vendor/redoc/redoc.standalone.js" in _references(
            client.get("/redoc").text
        )


def test_the_oauth2_redirect_page_is_served(closed: TestClient) -> None:
    response = closed.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "swaggerUIRedirectOauth2" in response.text
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in (
        closed.get("/docs").text
    )


def test_every_asset_the_viewers_reference_is_served(closed: TestClient) -> None:
    _require_vendored()
    urls = {url for path in ("/docs", "/redoc") for url in _references(closed.get(path).text)}
    urls = {url for url in urls if not url.startswith("data:")}
    assert len(urls) == 3
    for url in sorted(urls):
        response = closed.get(url)
        assert response.status_code == 200, url
        kind = response.headers["content-type"].split(";")[0]
        assert kind in CONTENT_TYPES[Path(url).suffix], f"{url}: {kind}"
        assert response.content == (VENDOR.parent / url.removeprefix("/static/")).read_bytes()
        assert response.headers["cache-control"] == assets.VENDOR_CACHE_CONTROL
        assert response.headers["x-content-type-options"] == "nosniff"
        again = closed.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304, url
        assert again.headers["cache-control"] == assets.VENDOR_CACHE_CONTROL


def test_the_charts_library_is_served(closed: TestClient) -> None:
    _require_vendored()
    script = closed.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in CONTENT_TYPES[".js"]
    assert b"uPlot" in script.content
    style = closed.get("/static/vendor/uplot/uPlot.min.css")
    assert (style.status_code, style.headers["content-type"].split(";")[0]) == (200, "text/css")


def test_the_redoc_bundle_is_a_classic_script() -> None:
    """get_redoc_html loads it with <script src>, without type=module: an ES-module bundle
    (redoc 3.x ends in `export{...}`) would be a SyntaxError there."""
    _require_vendored()
    tail = (VENDOR / "redoc" / "redoc.standalone.js").read_bytes()[-2000:]
    assert not re.search(rb"\bexport\s*\{", tail)


def test_the_manifest_matches_the_files_and_the_pins() -> None:
    _require_vendored()
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())["packages"]
    pins = tomllib.loads(PINS.read_text())["package"]
    assert sorted(manifest) == sorted(pin["into"] for pin in pins)
    for pin in pins:
        entry = manifest[pin["into"]]
        assert (entry["name"], entry["version"], entry["integrity"]) == (
            pin["name"],
            pin["version"],
            pin["integrity"],
        ), f"{pin['name']}: vendored files are not the pinned version; run scripts/vendor-assets"
        wanted = {Path(name).name for name in pin["files"]}
        licenses = set(entry["files"]) - wanted
        assert wanted <= set(entry["files"]) and len(licenses) == 1, pin["name"]
        for name, digest in entry["files"].items():
            data = (VENDOR / pin["into"] / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{pin['into']}/{name} changed"
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    listed = {f"{into}/{name}" for into, entry in manifest.items() for name in entry["files"]}
    assert on_disk == listed | {"MANIFEST.json"}, "only the pinned files and their licenses"


# -- without vendored files, and the cache headers of dcmon's own files


@pytest.fixture
def bare_static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's static folder replaced by one with only an app.js (nothing vendored)."""
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "app.js").write_text("console.log('dcmon');\n")
    monkeypatch.setattr(assets, "static_dir", lambda: folder)
    return folder


def test_missing_vendored_files_warn_once_and_the_viewers_still_answer(
    bare_static: Path, make_app: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.web.assets"):
        app = make_app()
    warnings = [r for r in caplog.records if r.name == "server.web.assets"]
    assert len(warnings) == 1
    assert "scripts/vendor-assets" in warnings[0].getMessage()
    assert "swagger-ui/swagger-ui-bundle.js" in warnings[0].getMessage()
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/redoc").status_code == 200
        assert client.get("/static/vendor/redoc/redoc.standalone.js").status_code == 404
        own = client.get("/static/app.js")
        assert own.status_code == 200
        assert own.headers["cache-control"] == assets.OWN_CACHE_CONTROL


def test_all_vendored_files_present_means_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in assets.vendored_files(PINS.read_text()):
        (tmp_path / "vendor" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "vendor" / name).write_text("x")
    with caplog.at_level(logging.WARNING, logger="server.web.assets"):
        assets.static_app(tmp_path)
        (tmp_path / "vendor" / "redoc" / "redoc.standalone.js").unlink()
        assets.static_app(tmp_path)
    assert len(caplog.records) == 1
    assert "redoc/redoc.standalone.js" in caplog.records[0].getMessage()


def test_a_missing_static_folder_answers_404_not_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., FastAPI]
) -> None:
    monkeypatch.setattr(assets, "static_dir", lambda: tmp_path / "absent")
    with TestClient(make_app()) as client:
        assert client.get("/static/app.js").status_code == 404


# -- scripts/vendor-assets, offline: tarballs built here, the registry never asked


@pytest.fixture(scope="module")
def script() -> Iterator[ModuleType]:
    loader = importlib.machinery.SourceFileLoader("vendor_assets", str(SCRIPT))
    spec = importlib.util.spec_from_loader("vendor_assets", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vendor_assets"] = module  # dataclasses look their module up
    try:
        loader.exec_module(module)
        yield module
    finally:
        del sys.modules["vendor_assets"]


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


GOOD_FILES = {
    "dist/lib.min.js": b"window.lib = 1;\n",
    "dist/lib.css": b".lib{}\n",
    "dist/unwanted.js": b"not taken\n",
    "LICENSE": b"MIT\n",
}


def _package(script: ModuleType, data: bytes, version: str = "1.0.0") -> Any:
    return script.Package(
        name="lib",
        version=version,
        integrity=_integrity(data),
        into="lib",
        files=("dist/lib.min.js", "dist/lib.css"),
    )


class _Registry:
    """A fetch that hands out given bodies by URL and counts the calls."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.bodies[url]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_good_tarball_is_vendored_then_left_alone(script: ModuleType, tmp_path: Path) -> None:
    data = _tarball(GOOD_FILES)
    package = _package(script, data)
    url = "https://registry.npmjs.org/lib/-/lib-1.0.0.tgz"
    assert package.tarball_url(script.DEFAULT_REGISTRY) == url
    registry = _Registry({url: data})
    dest = tmp_path / "static" / "vendor"

    assert script.vendor([package], dest, registry) == [package]
    assert sorted(_tree(dest)) == ["MANIFEST.json", "lib/LICENSE", "lib/lib.css", "lib/lib.min.js"]
    assert (dest / "lib" / "lib.min.js").read_bytes() == GOOD_FILES["dist/lib.min.js"]
    manifest = json.loads((dest / "MANIFEST.json").read_text())["packages"]["lib"]
    assert manifest["version"] == "1.0.0" and manifest["integrity"] == package.integrity
    assert manifest["files"]["lib.css"] == hashlib.sha256(GOOD_FILES["dist/lib.css"]).hexdigest()

    assert script.vendor([package], dest, registry) == []
    assert registry.calls == [url], "up to date: nothing fetched"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vendor"], "no staging left"

    (dest / "lib" / "lib.css").write_bytes(b"edited\n")
    assert script.vendor([package], dest, registry) == [package]
    assert (dest / "lib" / "lib.css").read_bytes() == GOOD_FILES["dist/lib.css"]


def test_a_tampered_tarball_is_refused_and_nothing_is_written(
    script: ModuleType, tmp_path: Path
) -> None:
    pinned = _tarball(GOOD_FILES)
    tampered = _tarball({**GOOD_FILES, "dist/lib.min.js": b"window.lib = steal();\n"})
    package = _package(script, pinned)
    dest = tmp_path / "static" / "vendor"
    url = package.tarball_url(script.DEFAULT_REGISTRY)

    with pytest.raises(script.VendorError, match="integrity mismatch"):
        script.vendor([package], dest, _Registry({url: tampered}))
    assert not dest.exists()
    assert list((tmp_path / "static").iterdir()) == [], "no staging folder left behind"

    script.vendor([package], dest, _Registry({url: pinned}))
    before = _tree(dest)
    upgrade = _package(script, pinned, version="1.0.1")  # the new version's tarball is bad
    upgrade_url = upgrade.tarball_url(script.DEFAULT_REGISTRY)
    with pytest.raises(script.VendorError, match=r"lib 1\.0\.1: integrity mismatch"):
        script.vendor([upgrade], dest, _Registry({upgrade_url: tampered}))
    assert _tree(dest) == before, "the old vendored files and manifest stay as they were"


def test_a_tarball_without_a_wanted_file_is_refused(script: ModuleType, tmp_path: Path) -> None:
    data = _tarball({"dist/lib.min.js": b"x", "LICENSE": b"MIT\n"})  # no dist/lib.css
    package = _package(script, data)
    dest = tmp_path / "vendor"
    with pytest.raises(script.VendorError, match=r"no file dist/lib\.css"):
        script.vendor([package], dest, _Registry({package.tarball_url("r"): data}), "r")
    assert not dest.exists()


def test_a_tarball_that_is_not_one_is_refused(script: ModuleType, tmp_path: Path) -> None:
    data = b"<html>registry error page</html>"
    package = _package(script, data)  # the pin matches, the body is no tarball
    with pytest.raises(script.VendorError, match="cannot extract the tarball"):
        script.vendor(
            [package], tmp_path / "vendor", _Registry({package.tarball_url("r"): data}), "r"
        )
    assert list(tmp_path.iterdir()) == []


def test_integrity_must_be_sha512(script: ModuleType) -> None:
    digest = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    with pytest.raises(script.VendorError, match="unsupported integrity"):
        script.verify_integrity(b"x", f"sha256-{digest}")
    script.verify_integrity(b"x", _integrity(b"x"))  # the right one passes


def test_the_pins_file_is_checked(script: ModuleType, tmp_path: Path) -> None:
    pins = tmp_path / "vendor.toml"
    pins.write_text(
        '[[package]]\nname = "lib"\nversion = "1"\nintegrity = "sha1-abc"\n'
        'into = "lib"\nfiles = ["a.js"]\n'
    )
    with pytest.raises(script.VendorError, match="sha512"):
        script.load_pins(pins)
    pins.write_text(
        '[[package]]\nname = "lib"\nversion = "1"\nintegrity = "sha512-abc"\n'
        'into = "../up"\nfiles = ["a.js"]\n'
    )
    with pytest.raises(script.VendorError, match="one folder name"):
        script.load_pins(pins)
    assert [p.name for p in script.load_pins(PINS)] == ["uplot", "swagger-ui-dist", "redoc"]


def test_a_failed_download_exits_nonzero_and_writes_nothing(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "static" / "vendor"
    (tmp_path / "static").mkdir()
    registry = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert script.main(["--dest", str(dest), "--registry", registry]) == 1
    error = capsys.readouterr().err
    assert f"download of {registry}/uplot/-/uplot-1.6.32.tgz failed" in error
    assert "left unchanged" in error
    assert list((tmp_path / "static").iterdir()) == []


def test_check_mode_says_whether_the_vendor_folder_is_up_to_date(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert script.main(["--check", "--dest", str(tmp_path / "vendor")]) == 1
    assert "uplot 1.6.32 is missing or changed" in capsys.readouterr().out
    if (VENDOR / "MANIFEST.json").is_file():
        copy = tmp_path / "copy"
        shutil.copytree(VENDOR, copy)
        assert script.main(["--check", "--dest", str(copy)]) == 0
