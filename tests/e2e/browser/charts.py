"""The charts of a page, as the web contract marks them: every ``.chart`` carries its PromQL in
``data-query`` and, once drawn, ``data-state="ready"`` with ``data-points`` (all series) or
``data-error``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

_READ = """els => els.map(e => ({
    query: e.dataset.query || "", state: e.dataset.state || "",
    points: e.dataset.points || "", error: e.dataset.error || ""}))"""
_ALL_READY = """() => [...document.querySelectorAll('.chart')]
    .every(e => e.dataset.state === 'ready')"""


@dataclass(frozen=True)
class Chart:
    query: str
    state: str
    points: int | None  # None: not a number (or absent)
    error: str

    def describe(self) -> str:
        return (
            f"chart {self.query!r}: state={self.state!r} points={self.points} error={self.error!r}"
        )


def charts(page: Page) -> list[Chart]:
    """Returns: every chart on ``page`` as it stands now."""
    found: list[dict[str, Any]] = page.eval_on_selector_all(".chart", _READ)
    return [
        Chart(c["query"], c["state"], int(c["points"]) if c["points"].isdigit() else None,
              c["error"])
        for c in found
    ]  # fmt: skip


def wait_ready(page: Page, timeout_s: float = 20.0) -> list[Chart]:
    """Wait until every chart on ``page`` says it is ready (drawn or failed); returns them."""
    page.wait_for_function(_ALL_READY, timeout=timeout_s * 1000)
    return charts(page)


def drawn(found: list[Chart]) -> bool:
    """Returns: whether every chart drew points, without an error."""
    return all(c.state == "ready" and not c.error and (c.points or 0) > 0 for c in found)


def open_until_drawn(page: Page, url: str, timeout_s: float) -> list[Chart]:
    """Open ``url`` and reload it until every chart has points (the demo's history grows a
    sample every agent interval) or ``timeout_s`` passes; returns: the charts as last seen."""
    deadline = time.monotonic() + timeout_s
    page.goto(url)
    while True:
        found = wait_ready(page)
        if drawn(found) or time.monotonic() > deadline:
            return found
        time.sleep(2.0)
        page.reload()


def assert_drawn(found: list[Chart], page: str) -> None:
    assert found, f"{page}: no .chart element"
    bad = [c.describe() for c in found if not drawn([c])]
    assert not bad, f"{page}: {len(bad)} of {len(found)} charts without points:\n" + "\n".join(bad)
