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
from agent.collectors.host.infiniband import InfinibandCollector
from agent.wire.catalog import MetricSpec, parse_catalog
from tests.catalog_check import assert_conforms

from ._helpers import DATA, GPU_SERVER, RECORDED, fake_statvfs_result, tree_paths

CATALOG = Path(agent.wire.__file__).parent / "catalog"
HOST_CATALOGS = ("host.toml", "hardware.toml", "fabric.toml", "textfile.toml")
TABLE = {
    "cpu", "stat", "loadavg", "meminfo", "vmstat", "filesystem", "diskstats",
    "netdev", "netclass", "pressure", "hwmon", "time", "uname", "filefd", "rapl",
    "netstat", "sockstat", "softnet", "udp_queues", "conntrack", "arp", "entropy", "timex",
    "kernel_hung", "cpufreq", "schedstat", "thermal_zone", "powersupplyclass", "infiniband",
    "textfile",
}  # fmt: skip


def host_specs() -> list[MetricSpec]:
    return [
        spec
        for name in HOST_CATALOGS
        for spec in parse_catalog((CATALOG / name).read_text(encoding="utf-8"), name)
    ]


def collect_all(paths: HostPaths) -> Iterator[tuple[str, list[Sample]]]:
    """Runs every host collector on a tree; filesystem with a fake statvfs."""
    for name, factory in HOST_COLLECTORS.items():
        collector: Collector
        if name == "filesystem":
            collector = FilesystemCollector(paths, HostOptions(), lambda _p: fake_statvfs_result())
        else:
            # the trees keep their text files (node_exporter's textfile directory) in textfile/
            options = HostOptions(textfile_directory=str(paths.proc.parent / "textfile"))
            collector = factory.build(paths, options)
        try:
            yield name, list(collector.collect(1_800_000_000.0))
        finally:
            _close(collector)


def _close(collector: Collector) -> None:
    """Stops a collector's worker thread, where it has one (filesystem, cpufreq)."""
    close = getattr(collector, "close", None)
    if callable(close):
        close()


def test_registry_has_every_collector_all_on_by_default() -> None:
    assert set(HOST_COLLECTORS) == TABLE
    assert all(factory.default_enabled for factory in HOST_COLLECTORS.values())


def test_each_factory_builds_a_collector_with_its_own_name() -> None:
    for name, factory in HOST_COLLECTORS.items():
        collector = factory.build(tree_paths(GPU_SERVER), HostOptions())
        assert collector.name == name
        _close(collector)


def test_build_host_collectors_applies_overrides_and_refuses_unknown_names() -> None:
    built = build_host_collectors(HostPaths(), HostOptions(), {"hwmon": False, "time": False})

    assert [c.name for c in built] == [n for n in HOST_COLLECTORS if n not in ("hwmon", "time")]
    for collector in built:
        _close(collector)
    with pytest.raises(KeyError, match="gpu"):
        build_host_collectors(HostPaths(), HostOptions(), {"gpu": True})


def test_catalog_sources_are_exactly_the_host_collectors() -> None:
    assert {spec.source for spec in host_specs()} == TABLE


@pytest.mark.parametrize("tree", [RECORDED, GPU_SERVER], ids=["recorded-vm", "gpu-server"])
def test_every_collector_conforms_to_the_catalog(tree: Path) -> None:
    for name, samples in collect_all(tree_paths(tree)):
        # the text files' own samples keep their writers' names
        own = [s for s in samples if name != "textfile" or s.name.startswith("node_textfile_")]
        assert_conforms(own, source=name)


def test_gpu_server_tree_exercises_every_catalog_entry_but_optional_meminfo_fields() -> None:
    emitted = {s.name for _, samples in collect_all(tree_paths(GPU_SERVER)) for s in samples}

    # kernel_hung needs Linux 6.13, newer than the tree's 5.15 (recorded-vm has it); the
    # InfiniBand entries have their own tree (below); a server's power supply is a mains
    # adapter, without a battery's attributes; cpuinfo_cur_freq and the average frequency are
    # read only as root on some drivers.
    optional = ("meminfo", "rapl", "kernel_hung", "infiniband")
    battery = {"node_power_supply_online", "node_power_supply_info"}
    missing = {
        spec.name
        for spec in host_specs()
        if spec.source not in optional
        and (spec.source != "powersupplyclass" or spec.name in battery)
        and spec.name not in ("node_cpu_frequency_hertz", "node_cpu_frequency_avg_hertz")
    } - emitted
    assert missing == set()


def test_connectx_tree_exercises_every_infiniband_entry_but_the_legacy_counters() -> None:
    emitted = {s.name for s in InfinibandCollector(tree_paths(DATA / "connectx")).collect(0.0)}

    # legacy_* come from HCAs without extended PMA counters (the tree's are ConnectX-6/7);
    # port_discards_received is not a PMA counter an mlx5 port has
    missing = {
        spec.name
        for spec in host_specs()
        if spec.source == "infiniband"
        and "_legacy_" not in spec.name
        and spec.name != "node_infiniband_port_discards_received_total"
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
        _close(collector)
