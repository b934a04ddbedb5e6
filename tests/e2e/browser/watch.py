"""What a page did wrong while a test drove it: console errors, uncaught exceptions, failed
requests and error responses, recorded from Playwright's page events.

A test opens its pages through :func:`watched`, drives them, then calls ``assert_clean`` with
the responses it provoked on purpose (a 403 refusal, a wrong token's 401), so that everything
else a page logs or fetches is held to "no error at all".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request, Response


@dataclass(frozen=True)
class Expected:
    """A response a test provokes on purpose: ``status`` for a URL matching ``url`` (regex)."""

    status: int
    url: str

    def matches(self, status: int, url: str) -> bool:
        return status == self.status and re.search(self.url, url) is not None


@dataclass
class PageWatch:
    """Everything wrong one page did, as text lines that name the page's URL at the time."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_responses: list[tuple[int, str]] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)  # every host a request went to

    def attach(self) -> PageWatch:
        self.page.on("console", self._console)
        self.page.on("pageerror", self._page_error)
        self.page.on("requestfailed", self._request_failed)
        self.page.on("request", self._request)
        self.page.on("response", self._response)
        return self

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            self.console_errors.append(f"{self.page.url}: {message.text} ({where})")

    def _page_error(self, error: Exception) -> None:
        self.page_errors.append(f"{self.page.url}: {error}")

    def _request(self, request: Request) -> None:
        self.hosts.add(urlsplit(request.url).hostname or request.url)

    def _request_failed(self, request: Request) -> None:
        reason = request.failure or "failed"
        if _navigated_away(reason):
            return
        self.failed_requests.append(f"{request.method} {request.url}: {reason}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.error_responses.append((response.status, response.url))

    def problems(self, expected: Iterable[Expected] = ()) -> list[str]:
        """Returns: every console error, page error, failed request and error response that
        is not one of ``expected``."""
        allowed = list(expected)
        responses = [
            f"HTTP {status} {url}"
            for status, url in self.error_responses
            if not any(e.matches(status, url) for e in allowed)
        ]
        # A browser logs every error response it fetched as a console error too ("Failed to
        # load resource: the server responded with a status of 403"): the expected ones are
        # no problem there either.
        consoles = [
            text
            for text in self.console_errors
            if not (allowed and "Failed to load resource" in text and _expected_log(text, allowed))
        ]
        return [
            *(f"console error: {text}" for text in consoles),
            *(f"page error: {text}" for text in self.page_errors),
            *(f"request failed: {text}" for text in self.failed_requests),
            *responses,
        ]

    def assert_clean(self, expected: Iterable[Expected] = ()) -> None:
        found = self.problems(expected)
        assert not found, "\n".join(found)


def _expected_log(text: str, allowed: list[Expected]) -> bool:
    status = re.search(r"status of (\d+)", text)
    return status is not None and any(
        e.status == int(status.group(1)) and re.search(e.url, text) for e in allowed
    )


def _navigated_away(reason: str) -> bool:
    """A fetch cut off because the page went elsewhere (a click, a reload, auto refresh) is
    the browser's doing, not a failure of the server."""
    return reason == "net::ERR_ABORTED"


def watched(page: Page) -> PageWatch:
    """Returns: a watch recording what goes wrong on ``page`` from now on."""
    return PageWatch(page).attach()
