"""dcmon's hardware and fabric collectors against the real node_exporter, on the same trees.

Debian's ``prometheus-node-exporter`` (1.5 here) runs on 127.0.0.1 with ``--path.sysfs`` and
``--path.procfs`` pointing at a recorded tree and only the collector under test enabled. Every
sample it reports must be one dcmon reports for that tree, with the same labels (an empty dcmon
label counts as absent, as Prometheus stores it), the same value and the catalog's type. dcmon
may report more: newer upstream series (hw_counters, the cpufreq governor) and its own
``dcmon_*``; what it leaves out on purpose is listed in ``DEVIATIONS``, each with its reason.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agent.collectors.base import Collector, HostPaths, Sample
from agent.collectors.host.cpufreq import CpufreqCollector
from agent.collectors.host.infiniband import InfinibandCollector
from agent.collectors.host.powersupply import PowerSupplyClassCollector
from agent.collectors.host.schedstat import SchedstatCollector
from agent.collectors.host.thermal_zone import ThermalZoneCollector
from agent.wire.catalog import default_catalog
from tests.integration import free_port, require_binary

from ._helpers import DATA, GPU_SERVER, tree_paths

pytestmark = pytest.mark.integration

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_THEIRS_ONLY = ("node_scrape_", "node_exporter_", "go_", "process_", "promhttp_", "node_textfile")

Key = tuple[str, frozenset[tuple[str, str]]]

DEVIATIONS: dict[Key, str] = {
    (
        "node_cooling_device_cur_state",
        frozenset({("name", "4"), ("type", "intel_powerclamp")}),
    ): "intel_powerclamp answers -1 while it injects no idle time; dcmon leaves the state out",
}


def scrape(tree: Path, collector: str) -> tuple[dict[Key, float], dict[str, str]]:
    """Returns: node_exporter's samples and TYPE lines for one collector on a recorded tree."""
    binary = require_binary("prometheus-node-exporter", "node_exporter")
    port = free_port()
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=error",
        "--collector.disable-defaults",
        f"--collector.{collector}",
        f"--path.sysfs={tree / 'sys'}",
        f"--path.procfs={tree / 'proc'}",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15.0
        while True:
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"node_exporter did not come up on {url}")
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=10)
    samples: dict[Key, float] = {}
    types: dict[str, str] = {}
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, line
            if match.group(1).startswith(_THEIRS_ONLY):
                continue
            labels = frozenset(_LABEL.findall(match.group(2) or ""))
            samples[(match.group(1), labels)] = float(match.group(3))
    assert f'node_scrape_collector_success{{collector="{collector}"}} 1' in response.text
    return samples, types


def ours(collector: Collector) -> dict[Key, float]:
    try:
        emitted: list[Sample] = list(collector.collect(1_800_000_000.0))
    finally:
        close = getattr(collector, "close", None)
        if callable(close):
            close()
    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if v)): s.value for s in emitted}


CASES: dict[str, tuple[Path, Callable[[HostPaths], Collector]]] = {
    "infiniband": (DATA / "connectx", InfinibandCollector),
    "cpufreq": (GPU_SERVER, lambda paths: CpufreqCollector(paths, wait_seconds=10.0)),
    "thermal_zone": (GPU_SERVER, ThermalZoneCollector),
    "powersupplyclass": (GPU_SERVER, PowerSupplyClassCollector),
    "schedstat": (GPU_SERVER, SchedstatCollector),
}


@pytest.fixture(scope="module")
def compared() -> Iterator[dict[str, tuple[dict[Key, float], dict[str, str], dict[Key, float]]]]:
    results = {}
    for name, (tree, build) in CASES.items():
        theirs, types = scrape(tree, name)
        results[name] = (theirs, types, ours(build(tree_paths(tree))))
    yield results


@pytest.mark.parametrize("collector", sorted(CASES))
def test_every_node_exporter_sample_is_ours_with_the_same_value_and_type(
    collector: str, compared: dict[str, tuple[dict[Key, float], dict[str, str], dict[Key, float]]]
) -> None:
    theirs, types, mine = compared[collector]
    catalog = default_catalog()
    assert theirs, "node_exporter reported nothing for the tree"
    problems = []
    for key, their_value in theirs.items():
        if key in DEVIATIONS:
            assert key not in mine, f"{key} is listed as a deviation but dcmon reports it"
            continue
        if key not in mine:
            problems.append(f"missing {key[0]}{dict(key[1])}")
        elif mine[key] != their_value:
            problems.append(
                f"{key[0]}{dict(key[1])}: dcmon {mine[key]}, node_exporter {their_value}"
            )
        if catalog[key[0]].type != types[key[0]]:
            problems.append(
                f"{key[0]}: catalog type {catalog[key[0]].type}, node_exporter {types[key[0]]}"
            )
    assert problems == []


def test_the_deviations_are_still_needed(
    compared: dict[str, tuple[dict[Key, float], dict[str, str], dict[Key, float]]],
) -> None:
    seen = set().union(*(theirs for theirs, _, _ in compared.values()))
    assert set(DEVIATIONS) <= seen
