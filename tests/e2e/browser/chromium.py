"""Debian's chromium driven by Playwright: never a downloaded browser.

Shared by the browser tests and ``bench/web_fleet.py``. Flags for CI containers: headless,
``--disable-gpu`` (no display, no GPU process), and ``--no-sandbox`` only when running as root,
where chromium refuses to start its sandbox.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

VIEWPORT = {"width": 1440, "height": 900}


def chromium_path() -> str | None:
    """Returns: the system chromium's path, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_args() -> list[str]:
    """Returns: chromium's command-line flags for a headless run in a container."""
    args = ["--disable-gpu"]
    if os.geteuid() == 0:  # chromium will not sandbox itself as root
        args.append("--no-sandbox")
    return args


def launch(playwright: Playwright, executable: str) -> Browser:
    """Returns: a headless chromium started from ``executable``."""
    return playwright.chromium.launch(
        executable_path=executable, headless=True, args=chromium_args()
    )
