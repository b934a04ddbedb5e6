"""The loadavg collector."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.loadavg import LoadavgCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, tree_paths, value, write_tree


def test_recorded_vm_load_averages() -> None:
    samples = LoadavgCollector(tree_paths(RECORDED)).collect(0.0)

    assert [s.name for s in samples] == ["node_load1", "node_load5", "node_load15"]
    assert value(samples, "node_load1") == 0.11
    assert value(samples, "node_load5") == 0.10
    assert value(samples, "node_load15") == 0.06
    assert_conforms(samples, source="loadavg")


def test_gpu_server_busy_node() -> None:
    samples = LoadavgCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_load1") == 47.25
    assert value(samples, "node_load15") == 40.03


@pytest.mark.parametrize("text", ["", "0.1 0.2\n", "0.1 high 0.3 1/2 3\n"])
def test_malformed_loadavg_raises(scratch: Path, text: str) -> None:
    with pytest.raises(MalformedFileError, match="loadavg"):
        LoadavgCollector(write_tree(scratch, {"proc/loadavg": text})).collect(0.0)
