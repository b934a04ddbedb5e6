"""The newcomer's path, clicked in chromium on the real demo: the fleet page's node link leads to
that node's page, its GPU link to that GPU's page with its history drawn (a GPU's history in two
clicks), and the GPU's job link to the job's page."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.e2e.browser.charts import assert_drawn, wait_ready
from tests.e2e.browser.conftest import Demo, OpenPage
from tests.e2e.browser.test_pages import TRAINING_GPU, TRAINING_JOB

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _path(url: str) -> str:
    return unquote(urlsplit(url).path)


def _click_through(page: Page, link: Locator) -> None:
    """Click ``link`` and wait for the page it leads to."""
    with page.expect_navigation():
        link.click()


def test_fleet_to_node_to_gpu_to_job_in_clicks(warm_demo: Demo, open_page: OpenPage) -> None:
    node = warm_demo.local_node()
    page, watch = open_page()
    page.goto(warm_demo.url + "/")
    assert page.get_attribute("body", "data-page") == "fleet"

    node_link = page.locator(f'a.node-link[href$="/nodes/{quote(node, safe="")}"]')
    if node_link.count() == 0:  # however the page spells the href, the link's text is the name
        node_link = page.locator("a.node-link", has_text=node)
    _click_through(page, node_link.first)
    assert _path(page.url) == f"/nodes/{node}", page.url
    assert page.get_attribute("body", "data-page") == "node"

    gpu_links = page.locator("a.gpu-link")
    assert gpu_links.count() >= 8, "the node page links each of its 8 GPUs"
    hrefs = [_path(gpu_links.nth(i).get_attribute("href") or "") for i in range(gpu_links.count())]
    wanted = f"/nodes/{node}/gpus/{TRAINING_GPU}"
    assert wanted in hrefs, hrefs
    _click_through(page, gpu_links.nth(hrefs.index(wanted)))
    assert _path(page.url) == wanted, page.url
    assert page.get_attribute("body", "data-page") == "gpu"
    assert_drawn(wait_ready(page), wanted)

    job_link = page.locator("a.job-link", has_text="simulated-training")
    if job_link.count() == 0:
        job_link = page.locator("a.job-link")
    assert job_link.count() >= 1, "the GPU page links the job running on it"
    _click_through(page, job_link.first)
    assert _path(page.url) == f"/jobs/{TRAINING_JOB}", page.url
    assert page.get_attribute("body", "data-page") == "job"
    assert_drawn(wait_ready(page), page.url)
    watch.assert_clean()


def test_fleet_busiest_gpu_links_reach_gpu_pages(warm_demo: Demo, open_page: OpenPage) -> None:
    """The fleet's busiest/idlest GPU lists link straight to GPU pages: one click."""
    page, watch = open_page()
    page.goto(warm_demo.url + "/")
    links = page.locator("a.gpu-link")
    assert links.count() >= 1, "the fleet page lists GPUs linking to their pages"
    href = _path(links.first.get_attribute("href") or "")
    _click_through(page, links.first)
    assert _path(page.url) == href and "/gpus/" in href, (href, page.url)
    assert page.get_attribute("body", "data-page") == "gpu"
    assert_drawn(wait_ready(page), href)
    watch.assert_clean()
