"""The catalog contract over the whole agent: every metric any collector emits is in the catalog,
with exactly the catalog's label names, from the collector the catalog names."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from agent.collectors.base import Sample
from agent.config import load_settings
from agent.main import build
from agent.transport.memory import MemoryTransport
from agent.wire.catalog import default_catalog
from agent.wire.schema import Ack
from tests.catalog_check import catalog_problems

RECORDED = Path(__file__).resolve().parents[1] / "data" / "host"


def _tick_samples(settings_overrides: dict[str, object], tmp_path: Path) -> dict[str, list[Sample]]:
    settings = load_settings(None, {"state_dir": tmp_path, **settings_overrides})
    with ExitStack() as stack:
        transport = MemoryTransport(lambda payload: Ack(status="accepted", seq=0))
        wiring = build(settings, stack, transport)
        wiring.agent.tick()
        batch = wiring.agent.tick()  # the second tick has every rate-free reading settled
    per_collector: dict[str, list[Sample]] = {}
    sources = {spec.name: spec.source for spec in default_catalog().values()}
    for family in batch.metrics:
        for labels, value in family.samples:
            source = sources.get(family.name, "?")
            per_collector.setdefault(source, []).append(Sample(family.name, labels, value))
    assert all(status.success for status in batch.collectors), batch.collectors
    return per_collector


def test_everything_the_agent_emits_on_this_host_is_in_the_catalog(tmp_path: Path) -> None:
    emitted = _tick_samples({"gpu": {"backend": "simulated", "simulated_count": 2}}, tmp_path)
    problems = [
        problem
        for source, samples in emitted.items()
        for problem in catalog_problems(samples, source=source)
    ]
    assert not problems, problems
    assert {"cpu", "meminfo", "gpu", "agent"} <= set(emitted)


def test_everything_the_agent_emits_on_a_gpu_server_tree_is_in_the_catalog(tmp_path: Path) -> None:
    tree = RECORDED / "gpu-server"
    overrides = {
        "host": {"proc_root": tree / "proc", "sys_root": tree / "sys", "rootfs": tmp_path},
        "gpu": {"backend": "simulated", "simulated_count": 8},
        "collectors": {"disabled": ["filesystem"]},  # its mount points do not exist here
    }
    emitted = _tick_samples(overrides, tmp_path)
    problems = [
        problem
        for source, samples in emitted.items()
        for problem in catalog_problems(samples, source=source)
    ]
    assert not problems, problems
    assert len(emitted["gpu"]) >= 8 * 13
