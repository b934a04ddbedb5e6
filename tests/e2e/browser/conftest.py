"""The browser tests' fixtures: one real ``dcmon demo`` for the whole session (a server, an
agent with simulated GPUs carrying the demo jobs, and the faults scenario's troubled node),
Debian's chromium under Playwright, and the screenshot folder.

Without chromium or Playwright the tests skip with the reason; with
DCMON_REQUIRE_INTEGRATION=1 they fail instead. The demo starts once and the tests share it:
its charts need a few samples, which ``warm_demo`` waits for, once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.browser.charts import drawn, open_until_drawn
from tests.e2e.browser.chromium import VIEWPORT, chromium_path, launch
from tests.e2e.browser.watch import PageWatch, watched
from tests.e2e.processes import DCMON, Process, get, running, wait_for
from tests.integration import free_port, integration_required

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[3]
FAULTY_NODE = "demo-gpu-node"
# The demo's agents push every 2 s; hint rounds every 10 s with a 60 s idle bar, so its idle
# notebook and the faulty node's XID get their hints while the tests run (the demo's own
# defaults are a minute and three minutes, sized for a person watching).
DEMO_ENV = {"DCMON_SERVER_HINTS_IDLE_SECONDS": "60", "DCMON_SERVER_HINTS_INTERVAL_SECONDS": "10"}
CHARTS_WARM_TIMEOUT_S = 120.0
PAGE_TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> None:
    if integration_required():
        pytest.fail(f"{reason}, and DCMON_REQUIRE_INTEGRATION=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium (``shutil.which("chromium")``), never a downloaded browser."""
    executable = chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (Debian: apt-get install chromium; see .ci/run)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional dependency)
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    assert executable is not None
    with sync_playwright() as playwright:
        chromium = launch(playwright, executable)
        yield chromium
        chromium.close()


@dataclass(frozen=True)
class Demo:
    url: str
    data_dir: Path
    process: Process

    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()

    def api(self, path: str) -> Any:
        response = get(self.url + path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def local_node(self) -> str:
        """Returns: the name of the demo's own node (this machine's hostname)."""
        names = [n["name"] for n in self.api("/api/v1/nodes")["nodes"]]
        others = [name for name in names if name != FAULTY_NODE]
        assert len(others) == 1, names
        return others[0]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Demo]:
    """``dcmon demo --scenario faults`` on a free port, with simulated GPUs; stopped with
    Ctrl-C at the end, which must be clean."""
    tmp = tmp_path_factory.mktemp("browser-demo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        *DCMON, "demo", "--port", str(port), "--data-dir", str(tmp / "demo"),
        "--gpus", "simulated", "--interval", "2", "--scenario", "faults",
        "--faults-skip", "55",  # the XID 5 s in, so its alert and hint come while we look
    ]  # fmt: skip
    with running(argv, tmp / "demo.log", DEMO_ENV) as process:
        wait_for(lambda: f"{url}/" in process.output(), 60, "the demo banner")
        wait_for(
            lambda: len(get(f"{url}/api/v1/nodes").json()["nodes"]) == 2, 60, "both demo nodes"
        )
        yield Demo(url, tmp / "demo", process)
        assert process.stop(signal.SIGINT, timeout=40) == 0, process.output()[-3000:]
    assert "Traceback" not in process.output(), process.output()[-5000:]


OpenPage = Callable[[], tuple["Page", PageWatch]]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Returns: a maker of fresh pages (own cookies, 1440x900), each with its watch."""
    contexts = []

    def make() -> tuple[Page, PageWatch]:
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        return page, watched(page)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def warm_demo(demo: Demo, browser: Browser) -> Demo:
    """The demo once its fleet charts have points (its history is a few samples deep)."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        found = open_until_drawn(page, demo.url + "/", CHARTS_WARM_TIMEOUT_S)
        if found and not drawn(found):
            pytest.fail(
                f"the fleet page's charts had no points after {CHARTS_WARM_TIMEOUT_S:g} s:\n"
                + "\n".join(c.describe() for c in found)
            )
    finally:
        context.close()
    return demo


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder for the pages' screenshots: $DCMON_SCREENSHOTS, else artifacts/screenshots
    under the repository root."""
    folder = Path(os.environ.get("DCMON_SCREENSHOTS") or REPO / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
