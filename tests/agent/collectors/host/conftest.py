"""Fixtures for the host collector tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary folder removed at teardown (pytest's tmp_path keeps old runs around)."""
    with tempfile.TemporaryDirectory(prefix="dcmon-host-") as folder:
        yield Path(folder)
