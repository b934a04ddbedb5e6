"""The server process's collector policy: startup's objects frozen, thresholds raised."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from server import gc_policy


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored")
def test_tune_freezes_the_heap_and_makes_full_collections_rare() -> None:
    gc.unfreeze()
    gc_policy.tune()
    assert gc.get_freeze_count() > 1000  # the test process's modules and objects at least
    assert gc.get_threshold() == (50_000, 20, 100)
