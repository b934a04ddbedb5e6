"""The catalog contract over the whole agent: every metric a collector emits is in the catalog,
with exactly the catalog's label names, and comes from the collector the catalog names.

Each collector runs alone (its own ``collect``, its own samples), so a metric is attributed to
the collector that really produced it, never looked up in the catalog it is checked against:
host collectors on this machine and on a recorded GPU server tree, the GPU collector on fake
NVML (a healthy 8-GPU H100 node), the agent's own collector in an agent with nothing else on.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.collectors.base import Collector, Sample
from agent.collectors.gpu import GpuCollector
from agent.collectors.registry import build_collectors, known_collectors
from agent.config import load_settings
from agent.main import build
from agent.transport.memory import MemoryTransport
from agent.wire.catalog import Catalog, default_catalog
from agent.wire.schema import Ack
from tests.catalog_check import catalog_problems
from tests.fakes.nvml import healthy_h100_node

RECORDED = Path(__file__).resolve().parents[1] / "data" / "host"
NOW = 1_800_000_000.0


def _alone(collectors: Iterable[Collector]) -> dict[str, list[Sample]]:
    """Returns: per collector name, what it emitted on its second reading (the first settles
    rates), each collector read on its own, in the order the agent reads them."""
    emitted: dict[str, list[Sample]] = {}
    for tick in (NOW, NOW + 10):
        for collector in collectors:
            emitted[collector.name] = list(collector.collect(tick))
    return emitted


def _problems(emitted: dict[str, list[Sample]], catalog: Catalog | None = None) -> list[str]:
    return [
        problem
        for name, samples in emitted.items()
        for problem in catalog_problems(samples, catalog, source=name)
    ]


def _built(overrides: dict[str, Any], tmp_path: Path) -> dict[str, list[Sample]]:
    settings = load_settings(None, {"state_dir": tmp_path, **overrides})
    with ExitStack() as stack:
        built = build_collectors(settings, "contract-host", stack)
        return _alone(built.collectors)


def test_each_collector_on_this_host_emits_only_its_own_catalog_metrics(tmp_path: Path) -> None:
    emitted = _built({"gpu": {"backend": "simulated", "simulated_count": 2}}, tmp_path)
    assert not _problems(emitted), _problems(emitted)
    producing = {name for name, samples in emitted.items() if samples}
    assert {"cpu", "meminfo", "loadavg", "stat", "gpu"} <= producing, producing


def test_each_collector_on_a_gpu_server_tree_emits_only_its_own_catalog_metrics(
    tmp_path: Path,
) -> None:
    tree = RECORDED / "gpu-server"
    overrides = {
        "host": {"proc_root": tree / "proc", "sys_root": tree / "sys", "rootfs": tmp_path},
        "gpu": {"backend": "none"},
        "collectors": {"disabled": ["filesystem"]},  # its mount points do not exist here
    }
    emitted = _built(overrides, tmp_path)
    assert not _problems(emitted), _problems(emitted)
    producing = {name for name, samples in emitted.items() if samples}
    assert {"cpu", "meminfo", "diskstats", "netdev", "vmstat"} <= producing, producing


def test_the_gpu_collector_on_fake_nvml_emits_only_gpu_metrics() -> None:
    gpu = GpuCollector(healthy_h100_node(8), hostname="gpu01", budget_seconds=5.0)
    try:
        emitted = _alone([gpu])
    finally:
        gpu.close()
    assert not _problems(emitted), _problems(emitted)
    assert len(emitted["gpu"]) >= 8 * 13
    assert {sample.name for sample in emitted["gpu"]} >= {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    }


def test_an_agent_with_only_its_own_collector_emits_only_agent_metrics(tmp_path: Path) -> None:
    others = sorted(set(known_collectors()) - {"agent"})
    settings = load_settings(
        None,
        {"state_dir": tmp_path, "gpu": {"backend": "none"}, "collectors": {"disabled": others}},
    )
    with ExitStack() as stack:
        transport = MemoryTransport(lambda payload: Ack(status="accepted", seq=0))
        wiring = build(settings, stack, transport)
        wiring.agent.tick()
        batch = wiring.agent.tick()
    samples = [
        Sample(family.name, labels, value)
        for family in batch.metrics
        for labels, value in family.samples
    ]
    assert [status.name for status in batch.collectors] == ["agent"]
    assert samples
    assert not catalog_problems(samples, source="agent")


def test_a_metric_from_another_collector_than_the_catalog_names_is_reported() -> None:
    """The check can fail: a catalog that names the wrong source for one metric is caught."""
    wrong = Catalog(
        replace(spec, source="cpu") if spec.name == "node_load1" else spec
        for spec in default_catalog().values()
    )
    emitted = {"loadavg": [Sample("node_load1", {}, 0.5)]}
    assert _problems(emitted, wrong) == ["node_load1: catalog source 'cpu', emitted by 'loadavg'"]
    assert _problems(emitted) == []


def test_the_hostname_setting_names_the_host_the_batches_carry(tmp_path: Path) -> None:
    others = sorted(set(known_collectors()) - {"agent"})
    base = {"state_dir": tmp_path, "gpu": {"backend": "none"}, "collectors": {"disabled": others}}
    for extra, expected in (({}, socket.gethostname()), ({"hostname": "sim-node"}, "sim-node")):
        settings = load_settings(None, {**base, **extra})
        with ExitStack() as stack:
            transport = MemoryTransport(lambda payload: Ack(status="accepted", seq=0))
            batch = build(settings, stack, transport).agent.tick()
        assert batch.node.hostname == expected
