"""Every page of the web UI, in chromium against the real demo: it loads with no console error,
no uncaught exception and no failed or error request; it says which page it is
(``body[data-page]``); each of its charts drew points from the query API; and a 1440x900
screenshot of it lands in the screenshot folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.browser.charts import assert_drawn, open_until_drawn
from tests.e2e.browser.conftest import FAULTY_NODE, Demo, OpenPage
from tests.e2e.processes import get, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

TRAINING_JOB = "systemd:simulated-training.service"
TRAINING_GPU = 2  # the demo's training job runs on GPUs 2-3 of the demo's own node
# Past the warm-up, a page's charts have points at once; this bounds the reloads of one that
# does not, so that a chart that never draws fails in seconds, not minutes.
PAGE_CHARTS_TIMEOUT_S = 15.0


def _hint_path(demo: Demo) -> str:
    """Returns: one open hint's page (the faulty node's XID makes one within a round)."""
    wait_for(lambda: bool(demo.api("/api/v1/hints")["hints"]), 90, "a hint")
    return f"/hints/{quote(demo.api('/api/v1/hints')['hints'][0]['id'], safe='')}"


# name: (body[data-page], the path on the demo, whether the page must have charts)
PAGES: dict[str, tuple[str, Callable[[Demo], str], bool]] = {
    "fleet": ("fleet", lambda d: "/", True),
    "node": ("node", lambda d: f"/nodes/{quote(d.local_node(), safe='')}", True),
    "gpu": ("gpu", lambda d: f"/nodes/{quote(d.local_node(), safe='')}/gpus/{TRAINING_GPU}", True),
    # GPU 5 of the faulty node runs hot (GPU 3 falls off the bus at once: no series to draw)
    "faulty-gpu": ("gpu", lambda d: f"/nodes/{FAULTY_NODE}/gpus/5", True),
    "jobs": ("jobs", lambda d: "/jobs", False),
    "job": ("job", lambda d: f"/jobs/{quote(TRAINING_JOB, safe='')}", True),
    "alerts": ("alerts", lambda d: "/alerts", False),
    "hints": ("hints", lambda d: "/hints", False),
    "hint": ("hint", _hint_path, False),
    "benchmarks": ("benchmarks", lambda d: "/benchmarks", False),
    "login": ("login", lambda d: "/login", False),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_clean_with_charts_drawn(
    name: str, warm_demo: Demo, open_page: OpenPage, screenshots: Path
) -> None:
    data_page, path_of, has_charts = PAGES[name]
    path = path_of(warm_demo)
    assert get(warm_demo.url + path).status_code == 200, path
    page, watch = open_page()
    found = open_until_drawn(page, warm_demo.url + path, PAGE_CHARTS_TIMEOUT_S)
    page.screenshot(path=str(screenshots / f"{name}.png"))
    assert page.get_attribute("body", "data-page") == data_page, (path, page.url)
    if has_charts or found:
        assert_drawn(found, path)
    page.wait_for_load_state("networkidle")
    watch.assert_clean()
