"""Helpers for tests that need real external programs (promtool, node_exporter, PostgreSQL...).

Without the program such a test skips with the reason; with DCMON_REQUIRE_INTEGRATION=1 (CI sets
it) a missing program fails the test instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def integration_required() -> bool:
    return os.environ.get("DCMON_REQUIRE_INTEGRATION", "") == "1"


def require_binary(name: str, *candidates: str) -> str:
    """Returns: the path of the first of ``name``/``candidates`` found on PATH.

    Skips the test when none is found, or fails it when integration is required.
    """
    for candidate in (name, *candidates):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} is not installed (Debian: see .ci/run)"
    if integration_required():
        pytest.fail(f"{message}, and DCMON_REQUIRE_INTEGRATION=1")
    pytest.skip(message)


def free_port() -> int:
    """Returns: a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
