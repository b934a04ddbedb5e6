"""Logging in to a server whose reads are closed, in chromium: a page visited without a session
goes to /login, a wrong token stays there with a message, a read token reaches the fleet page
with an HttpOnly session cookie, logout goes back to /login and the old cookie, replayed, no
longer opens a page; an admin action (the benchmark request form) is refused to a read session
(403) and done for an admin session (the request is then in the API).

A server of its own (the demo's reads are open): reads closed, a read token and an admin key
from its configuration, and one node pushed so that a benchmark can be asked of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent.wire.codec import encode_batch
from server.auth.secrets import new_token, sha256_hex
from tests.e2e.browser.conftest import OpenPage
from tests.e2e.browser.watch import Expected
from tests.e2e.processes import DCMON, running, wait_for
from tests.factories import identity, make_batch
from tests.integration import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

NODE = "web-auth-node"
SESSION_COOKIE = "dcmon_session"
REFUSED_LOGIN = Expected(401, r"/login")


@dataclass(frozen=True)
class ClosedServer:
    url: str
    read_token: str
    admin_token: str

    def admin_get(self, path: str) -> httpx.Response:
        return httpx.get(
            self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10
        )


@pytest.fixture(scope="module")
def closed_server(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[ClosedServer]:
    tmp = tmp_path_factory.mktemp("browser-login")
    ingest, read, admin = new_token(), new_token(), new_token()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        *DCMON, "server", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(tmp / "server"), "--ingest-token-sha256", sha256_hex(ingest),
        "--read-token-sha256", sha256_hex(read), "--admin-key-sha256", sha256_hex(admin),
    ]  # fmt: skip
    with running(argv, tmp / "server.log") as server:
        wait_for(lambda: httpx.get(url + "/readyz").status_code == 200, 30, "server ready")
        batch = make_batch(1, time.time(), identity(NODE), interval=10.0)
        pushed = httpx.post(
            url + "/api/v1/ingest",
            content=encode_batch(batch),
            headers={
                "Authorization": f"Bearer {ingest}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
        )
        assert pushed.status_code == 200, pushed.text
        yield ClosedServer(url, read, admin)
        server.stop()
    assert "Traceback" not in server.output(), server.output()[-5000:]


def _path(page: Page) -> str:
    return urlsplit(page.url).path


def log_in(page: Page, token: str) -> None:
    """On the /login page: enter ``token`` and send the form; waits for the answer's page."""
    assert page.get_attribute("body", "data-page") == "login", page.url
    page.fill("input[name=token]", token)
    with page.expect_navigation():
        page.press("input[name=token]", "Enter")


def test_login_and_logout_with_a_read_token(
    closed_server: ClosedServer, open_page: OpenPage
) -> None:
    url = closed_server.url
    page, watch = open_page()
    assert httpx.get(url + "/", headers={"Accept": "text/html"}).status_code == 303

    page.goto(url + "/")
    assert _path(page) == "/login", page.url
    assert parse_qs(urlsplit(page.url).query).get("next") == ["/"], page.url
    assert page.get_attribute("body", "data-page") == "login"
    blank = page.inner_text("body")

    log_in(page, "dcm_not_a_token_0123456789abcdef")
    assert _path(page) == "/login", page.url
    assert page.get_attribute("body", "data-page") == "login"
    refused = page.inner_text("body")
    assert refused != blank and len(refused) > len(blank), "a wrong token says why on the form"
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]

    log_in(page, closed_server.read_token)
    assert _path(page) == "/", page.url
    assert page.get_attribute("body", "data-page") == "fleet"
    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert closed_server.read_token not in cookie["value"]

    with page.expect_navigation():
        page.click("#logout")
    assert _path(page) == "/login", page.url
    page.goto(url + "/alerts")
    assert _path(page) == "/login", "after logout a page asks for a login again"

    page.context.add_cookies([cookie])  # the old cookie, replayed: that session has ended
    page.goto(url + "/alerts")
    assert _path(page) == "/login", "a logged-out session's cookie opens no page"
    watch.assert_clean([REFUSED_LOGIN])


def test_a_session_cookie_alone_reads_the_api(
    closed_server: ClosedServer, open_page: OpenPage
) -> None:
    """The pages' own fetches (charts, lists) are authenticated by the cookie, not a header."""
    page, watch = open_page()
    page.goto(closed_server.url + "/login")
    log_in(page, closed_server.read_token)
    answer = page.request.get(closed_server.url + "/api/v1/nodes")
    assert answer.status == 200, answer.text()
    assert [n["name"] for n in answer.json()["nodes"]] == [NODE]
    watch.assert_clean()


def _ask_for_a_benchmark(page: Page, url: str) -> str:
    """On /benchmarks: ask for a quick run of the test's node; returns what the form said."""
    page.goto(url + "/benchmarks")
    assert page.get_attribute("body", "data-page") == "benchmarks"
    page.fill("#bench-form input[name=nodes]", NODE)
    page.click("#bench-submit")
    page.wait_for_function(
        "() => !['', 'sending…'].includes(document.querySelector('#bench-result').textContent)"
    )
    return page.inner_text("#bench-result")


def test_an_admin_action_needs_an_admin_session(
    closed_server: ClosedServer, open_page: OpenPage
) -> None:
    """The benchmark request form: a read session is refused (403, said on the form), an admin
    session's request is made (it is then in the API, asked by the admin's token id)."""
    url = closed_server.url
    before = closed_server.admin_get("/api/v1/bench/requests").json()["requests"]

    page, watch = open_page()
    page.goto(url + "/login?next=/benchmarks")
    log_in(page, closed_server.read_token)
    assert _path(page) == "/benchmarks", page.url
    said = _ask_for_a_benchmark(page, url)
    assert said.startswith("403"), said
    assert closed_server.admin_get("/api/v1/bench/requests").json()["requests"] == before
    watch.assert_clean([Expected(403, r"/api/v1/bench/requests\b")])

    page, watch = open_page()
    page.goto(url + "/login?next=/benchmarks")
    log_in(page, closed_server.admin_token)
    said = _ask_for_a_benchmark(page, url)
    assert not said.startswith(("4", "5")), said
    after = closed_server.admin_get("/api/v1/bench/requests").json()["requests"]
    assert len(after) == len(before) + 1 and after[0]["node"] == NODE, after
    page.wait_for_load_state("networkidle")
    watch.assert_clean()


def test_a_forged_admin_call_without_the_csrf_token_is_refused(
    closed_server: ClosedServer, open_page: OpenPage
) -> None:
    """A POST with the admin session's cookie but no X-CSRF-Token header (what another site's
    form would send, were SameSite ever lax) is refused."""
    page, _ = open_page()
    page.goto(closed_server.url + "/login")
    log_in(page, closed_server.admin_token)
    answer = page.request.post(closed_server.url + "/api/v1/bench/requests", data={"nodes": [NODE]})
    assert answer.status == 403, answer.text()
    assert answer.json()["error"]["code"] == "csrf", answer.text()
