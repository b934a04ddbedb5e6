"""dcmon's host collectors against the real node_exporter on this machine.

Starts ``prometheus-node-exporter`` (Debian's, 1.5 here) on 127.0.0.1, scrapes it, runs every
host collector on the real ``/proc`` and ``/sys``, and checks that the two agree on names,
label names and types, and on values that do not move between two reads; counters, read by
dcmon after node_exporter's scrape, must not be behind it. Types compare as written: the
families node_exporter exposes ``untyped`` (netstat, vmstat) are ``untyped`` in the catalog too.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host import HOST_COLLECTORS, HostOptions, build_host_collectors
from agent.collectors.host.filesystem import FilesystemCollector
from agent.wire.catalog import default_catalog
from tests.integration import free_port, require_binary

pytestmark = pytest.mark.integration

# dcmon names node_exporter 1.5 cannot know; each with the reason.
_SOFTNET_1_6 = "the other softnet_data columns came in node_exporter 1.6"
NOT_IN_NODE_EXPORTER_1_5 = {
    "node_pressure_irq_stalled_seconds_total": (
        "IRQ pressure (Linux >= 6.1 with IRQ time accounting) was added to node_exporter after 1.5"
    ),
    "node_softnet_cpu_collision_total": _SOFTNET_1_6,
    "node_softnet_received_rps_total": _SOFTNET_1_6,
    "node_softnet_flow_limit_count_total": _SOFTNET_1_6,
    "node_softnet_backlog_len": _SOFTNET_1_6,
    "node_netstat_TcpExt_TCPOFOQueue": "in the default netstat fields since node_exporter 1.8",
    "node_netstat_TcpExt_TCPRcvQDrop": "in the default netstat fields since node_exporter 1.9",
    "node_kernel_hung_tasks_total": "the kernel_hung collector came in node_exporter 1.11",
}

# Family prefixes of the network-stack and clock collectors: every family node_exporter
# reports under one of them, dcmon reports too.
STACK_PREFIXES = (
    "node_netstat_",
    "node_sockstat_",
    "node_softnet_",
    "node_udp_queues",
    "node_nf_conntrack_",
    "node_arp_",
    "node_entropy_",
    "node_timex_",
    "node_kernel_hung_",
    "node_network_receive_nohandler_total",
)
# Collectors that may report nothing here only where node_exporter reports nothing for them
# either (a module not loaded, no neighbours, an older kernel).
MAY_BE_EMPTY_WITH_NODE_EXPORTER = {
    "conntrack": "node_nf_conntrack_entries",
    "arp": "node_arp_entries",
    "kernel_hung": "node_kernel_hung_tasks_total",
    "cpufreq": "node_cpu_scaling_frequency_hertz",
    "schedstat": "node_schedstat_running_seconds_total",
    "thermal_zone": "node_thermal_zone_temp",
    "powersupplyclass": "node_power_supply_online",
    "infiniband": "node_infiniband_info",
}

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Exposition:
    """The parts of a Prometheus text exposition these checks need."""

    types: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def label_names(self, name: str) -> set[frozenset[str]]:
        return {frozenset(s.labels) for s in self.samples if s.name == name}

    def values(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {frozenset(s.labels.items()): s.value for s in self.samples if s.name == name}


def parse_exposition(text: str) -> Exposition:
    exposition = Exposition()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            exposition.types[name] = kind
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"unparsable exposition line {line!r}"
            labels = {
                key: raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                for key, raw in _LABEL.findall(match.group(2) or "")
            }
            exposition.samples.append(Sample(match.group(1), labels, float(match.group(3))))
    return exposition


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    """A node_exporter on 127.0.0.1 and a free port; yields its /metrics URL."""
    binary = require_binary("prometheus-node-exporter", "node_exporter")
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15.0
        while True:
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                pytest.fail(f"node_exporter did not come up on {url}: {stderr[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@pytest.fixture(scope="module")
def both(node_exporter: str) -> tuple[Exposition, Exposition]:
    """node_exporter's scrape and dcmon's samples, taken back to back."""
    theirs = parse_exposition(httpx.get(node_exporter, timeout=10.0).text)
    collectors = build_host_collectors(HostPaths(), HostOptions())
    try:
        catalog = default_catalog()
        ours = Exposition()
        for collector in collectors:
            for sample in collector.collect(time.time()):
                ours.samples.append(sample)
                ours.types[sample.name] = catalog[sample.name].type
    finally:
        for collector in collectors:
            if isinstance(collector, FilesystemCollector):
                collector.close()
    return theirs, ours


def test_shared_families_have_the_same_label_names_and_type(
    both: tuple[Exposition, Exposition],
) -> None:
    theirs, ours = both
    shared = sorted(set(ours.types) & set(theirs.types))
    problems = []
    for name in shared:
        if ours.types[name] != theirs.types[name]:
            problems.append(f"{name}: TYPE {ours.types[name]} != {theirs.types[name]}")
        if theirs.label_names(name) and ours.label_names(name) != theirs.label_names(name):
            problems.append(
                f"{name}: labels {ours.label_names(name)} != {theirs.label_names(name)}"
            )

    assert len(shared) >= 100  # cpu, stat, load, ~50 meminfo, vmstat, fs, disk, net, psi...
    assert problems == []


def test_dcmon_names_node_exporter_does_not_know_are_allowlisted(
    both: tuple[Exposition, Exposition],
) -> None:
    theirs, ours = both

    unknown = {name for name in ours.types if name not in theirs.types}

    assert unknown - set(NOT_IN_NODE_EXPORTER_1_5) == set()


def test_static_values_agree_exactly(both: tuple[Exposition, Exposition]) -> None:
    theirs, ours = both

    for name in (
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_boot_time_seconds",
        "node_filefd_maximum",
    ):
        assert ours.values(name) == theirs.values(name), name
    root = frozenset({("mountpoint", "/")})
    ours_root = {k: v for k, v in ours.values("node_filesystem_size_bytes").items() if root <= k}
    theirs_root = {
        k: v for k, v in theirs.values("node_filesystem_size_bytes").items() if root <= k
    }
    assert ours_root and ours_root == theirs_root
    for name in ("node_network_mtu_bytes", "node_network_up", "node_network_carrier"):
        assert ours.values(name) == theirs.values(name), name
    assert ours.values("node_uname_info") == theirs.values("node_uname_info")
    assert set(ours.values("node_cpu_seconds_total")) == set(
        theirs.values("node_cpu_seconds_total")
    )


def test_moving_gauges_agree_within_tolerance(both: tuple[Exposition, Exposition]) -> None:
    theirs, ours = both

    for name in ("node_load1", "node_load5", "node_load15"):
        (mine,), (their,) = ours.values(name).values(), theirs.values(name).values()
        assert abs(mine - their) <= 0.5 + 0.1 * max(mine, their), name
    mem_ours = ours.values("node_memory_MemAvailable_bytes")
    mem_theirs = theirs.values("node_memory_MemAvailable_bytes")
    (available,), (their_available,) = mem_ours.values(), mem_theirs.values()
    assert abs(available - their_available) <= 0.05 * their_available


def test_every_host_collector_produced_something_here(
    both: tuple[Exposition, Exposition],
) -> None:
    theirs, ours = both
    catalog = default_catalog()
    sources: defaultdict[str, int] = defaultdict(int)
    for sample in ours.samples:
        sources[catalog[sample.name].source] += 1

    # This machine has no hwmon and no powercap (a VM); every other collector must report,
    # but for those node_exporter has nothing for either.
    may_be_empty = {"hwmon", "rapl"} | {
        name
        for name, family in MAY_BE_EMPTY_WITH_NODE_EXPORTER.items()
        if family not in theirs.types
    }
    assert set(HOST_COLLECTORS) - set(sources) <= may_be_empty


def test_stack_families_node_exporter_reports_are_all_reported(
    both: tuple[Exposition, Exposition],
) -> None:
    theirs, ours = both

    families = {name for name in theirs.types if name.startswith(STACK_PREFIXES)}

    assert len(families) >= 60  # netstat ~40, sockstat 20, softnet, timex 17, ...
    assert families - set(ours.types) == set()


def test_stack_values_that_do_not_move_agree_exactly(both: tuple[Exposition, Exposition]) -> None:
    theirs, ours = both

    static = [
        "node_entropy_pool_size_bits",
        "node_netstat_Ip_Forwarding",
        "node_timex_tick_seconds",
        "node_timex_tai_offset_seconds",
        "node_timex_status",
        "node_timex_sync_status",
        "node_timex_loop_time_constant",
    ]
    if "node_nf_conntrack_entries_limit" in theirs.types:
        static.append("node_nf_conntrack_entries_limit")
    for name in static:
        assert ours.values(name) == theirs.values(name), name
    for name in ("node_softnet_processed_total", "node_udp_queues", "node_arp_entries"):
        assert set(ours.values(name)) == set(theirs.values(name)), name
    available = ours.values("node_entropy_available_bits")
    (pool,) = ours.values("node_entropy_pool_size_bits").values()
    assert len(available) == 1 and 0 <= next(iter(available.values())) <= pool


def test_stack_counters_read_after_node_exporter_are_not_behind(
    both: tuple[Exposition, Exposition],
) -> None:
    theirs, ours = both
    catalog = default_catalog()

    checked = 0
    for name in sorted(set(ours.types) & set(theirs.types)):
        if not name.startswith(STACK_PREFIXES) or not catalog[name].monotonic:
            continue
        mine = ours.values(name)
        for labels, their in theirs.values(name).items():
            assert labels in mine, f"{name}{dict(labels)} missing"
            assert mine[labels] >= their, f"{name}{dict(labels)}: {mine[labels]} < {their}"
            checked += 1

    assert checked >= 40


def test_tcp_max_conn_is_outside_the_default_fields_of_both(
    both: tuple[Exposition, Exposition],
) -> None:
    theirs, ours = both

    # Dashboard 1860 charts it, but node_exporter's default netstat fields never selected it
    # (on Linux it is always -1), so neither reports it.
    assert "node_netstat_Tcp_MaxConn" not in theirs.types
    assert "node_netstat_Tcp_MaxConn" not in ours.types
