"""The host collector registry, options, and the catalog as the contract of every collector."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent.wire
from agent.collectors.base import Collector, HostPaths, Sample
from agent.collectors.host import HOST_COLLECTORS, HostOptions, build_host_collectors
from agent.collectors.host.filesystem import FilesystemCollector
from agent.wire.catalog import MetricSpec, parse_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, fake_statvfs_result, tree_paths

HOST_TOML = Path(agent.wire.__file__).parent / "catalog" / "host.toml"
TABLE = {
    "cpu", "stat", "loadavg", "meminfo", "vmstat", "filesystem", "diskstats",
    "netdev", "netclass", "pressure", "hwmon", "time", "uname", "filefd", "rapl",
    "netstat", "sockstat", "softnet", "udp_queues", "conntrack", "arp", "entropy", "timex",
    "kernel_hung",
}  # fmt: skip


def host_specs() -> list[MetricSpec]:
    return parse_catalog(HOST_TOML.read_text(encoding="utf-8"), HOST_TOML.name)


def collect_all(paths: HostPaths) -> Iterator[tuple[str, list[Sample]]]:
    """Runs every host collector on a tree; filesystem with a fake statvfs."""
    for name, factory in HOST_COLLECTORS.items():
        collector: Collector
        if name == "filesystem":
            collector = FilesystemCollector(paths, HostOptions(), lambda _p: fake_statvfs_result())
        else:
            collector = factory.build(paths, HostOptions())
        try:
            yield name, list(collector.collect(1_800_000_000.0))
        finally:
            if isinstance(collector, FilesystemCollector):
                collector.close()


def test_registry_has_every_collector_all_on_by_default() -> None:
    assert set(HOST_COLLECTORS) == TABLE
    assert all(factory.default_enabled for factory in HOST_COLLECTORS.values())


def test_each_factory_builds_a_collector_with_its_own_name() -> None:
    for name, factory in HOST_COLLECTORS.items():
        collector = factory.build(tree_paths(GPU_SERVER), HostOptions())
        assert collector.name == name
        if isinstance(collector, FilesystemCollector):
            collector.close()


def test_build_host_collectors_applies_overrides_and_refuses_unknown_names() -> None:
    built = build_host_collectors(HostPaths(), HostOptions(), {"hwmon": False, "time": False})

    assert [c.name for c in built] == [n for n in HOST_COLLECTORS if n not in ("hwmon", "time")]
    for collector in built:
        if isinstance(collector, FilesystemCollector):
            collector.close()
    with pytest.raises(KeyError, match="gpu"):
        build_host_collectors(HostPaths(), HostOptions(), {"gpu": True})


def test_catalog_sources_are_exactly_the_host_collectors() -> None:
    assert {spec.source for spec in host_specs()} == TABLE


@pytest.mark.parametrize("tree", [RECORDED, GPU_SERVER], ids=["recorded-vm", "gpu-server"])
def test_every_collector_conforms_to_the_catalog(tree: Path) -> None:
    for name, samples in collect_all(tree_paths(tree)):
        assert_conforms(samples, source=name)


def test_gpu_server_tree_exercises_every_catalog_entry_but_optional_meminfo_fields() -> None:
    emitted = {s.name for _, samples in collect_all(tree_paths(GPU_SERVER)) for s in samples}

    # kernel_hung needs Linux 6.13, newer than the tree's 5.15 (recorded-vm has it).
    missing = {
        spec.name for spec in host_specs() if spec.source not in ("meminfo", "rapl", "kernel_hung")
    } - emitted
    assert missing == set()


def test_defaults_are_node_exporters_except_the_documented_network_one() -> None:
    options = HostOptions()

    assert options.mount_points_exclude == (
        "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
    )
    assert re.search(options.fs_types_exclude, "overlay")
    assert re.search(options.fs_types_exclude, "erofs")
    assert not re.search(options.fs_types_exclude, "tmpfs")
    assert options.disk_devices_exclude == r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
    assert options.network_devices_exclude == "^(veth|cali|lxc).*$"
    assert options.statvfs_timeout_seconds == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [{"disk_devices_exclude": "("}, {"statvfs_timeout_seconds": 0.0}],
    ids=["bad-regex", "zero-timeout"],
)
def test_invalid_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HostOptions(**kwargs)  # type: ignore[arg-type]


def test_nothing_is_read_at_construction(scratch: Path) -> None:
    empty = HostPaths(scratch / "proc", scratch / "sys", scratch)
    built = build_host_collectors(empty, HostOptions())

    assert len(built) == len(HOST_COLLECTORS)
    assert os.listdir(scratch) == []
    for collector in built:
        if isinstance(collector, FilesystemCollector):
            collector.close()
