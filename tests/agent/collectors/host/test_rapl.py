"""The rapl collector: node_exporter's zone names, index and path labels, joules, root-only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError, read_table
from agent.collectors.host.rapl import (
    ZONE_METRICS,
    RaplCollector,
    list_zones,
    zone_name_and_index,
)
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import DATA, RECORDED, tree_paths, value, write_tree

RAPL_SERVER = DATA / "rapl-server"
POWERCAP = "sys/class/powercap"

# A laptop-style tree: package with core and uncore, psys as a top-level zone, the MMIO
# interface repeating package-0, and zones without a catalog metric.
LAPTOP = {
    f"{POWERCAP}/intel-rapl/enabled": "1\n",
    f"{POWERCAP}/intel-rapl:0/name": "package-0\n",
    f"{POWERCAP}/intel-rapl:0/energy_uj": "5000000\n",
    f"{POWERCAP}/intel-rapl:0:0/name": "core\n",
    f"{POWERCAP}/intel-rapl:0:0/energy_uj": "2500000\n",
    f"{POWERCAP}/intel-rapl:0:1/name": "uncore\n",
    f"{POWERCAP}/intel-rapl:0:1/energy_uj": "250000\n",
    f"{POWERCAP}/intel-rapl:1/name": "psys\n",
    f"{POWERCAP}/intel-rapl:1/energy_uj": "9000001\n",
    f"{POWERCAP}/intel-rapl-mmio:0/name": "package-0\n",
    f"{POWERCAP}/intel-rapl-mmio:0/energy_uj": "5000002\n",
    f"{POWERCAP}/intel-rapl:2/name": "package-0-die-1\n",
    f"{POWERCAP}/intel-rapl:2/energy_uj": "1\n",
    f"{POWERCAP}/dtpm:0/name": "soc\n",
    f"{POWERCAP}/dtpm:0/energy_uj": "1\n",
}


def labels(folder: str, index: int) -> dict[str, str]:
    return {"index": str(index), "path": f"/sys/class/powercap/{folder}"}


def test_two_socket_server_packages_and_dram_in_joules() -> None:
    samples = RaplCollector(tree_paths(RAPL_SERVER)).collect(0.0)

    assert value(samples, "node_rapl_package_joules_total", **labels("intel-rapl:0", 0)) == (
        183746.120332
    )
    assert value(samples, "node_rapl_package_joules_total", **labels("intel-rapl:1", 1)) == (
        97310.554018
    )
    assert value(samples, "node_rapl_dram_joules_total", **labels("intel-rapl:0:0", 0)) == (
        41230.993874
    )
    assert value(samples, "node_rapl_dram_joules_total", **labels("intel-rapl:1:0", 1)) == (
        38801.722456
    )
    assert len(samples) == 4  # the intel-rapl control-type folder has no name: not a zone
    assert_conforms(samples, source="rapl")


def test_laptop_zones_psys_and_the_mmio_duplicate_told_apart_by_path(scratch: Path) -> None:
    samples = RaplCollector(write_tree(scratch, LAPTOP)).collect(0.0)

    assert value(samples, "node_rapl_core_joules_total", **labels("intel-rapl:0:0", 0)) == 2.5
    assert value(samples, "node_rapl_uncore_joules_total", **labels("intel-rapl:0:1", 0)) == 0.25
    assert value(samples, "node_rapl_psys_joules_total", **labels("intel-rapl:1", 0)) == 9.000001
    assert value(samples, "node_rapl_package_joules_total", **labels("intel-rapl:0", 0)) == 5.0
    assert value(samples, "node_rapl_package_joules_total", **labels("intel-rapl-mmio:0", 0)) == (
        5.000002
    )
    assert len(samples) == 5  # package-0-die-1 and the dtpm "soc" zone have no catalog metric
    assert_conforms(samples, source="rapl")


def test_every_rapl_catalog_entry_is_emitted_by_some_tree(scratch: Path) -> None:
    emitted = {s.name for s in RaplCollector(tree_paths(RAPL_SERVER)).collect(0.0)}
    emitted |= {s.name for s in RaplCollector(write_tree(scratch, LAPTOP)).collect(0.0)}

    assert {spec.name for spec in default_catalog().from_source("rapl")} == emitted
    assert set(ZONE_METRICS.values()) == emitted


@pytest.mark.parametrize(
    ("raw", "usages", "expected"),
    [
        ("package-0", {}, ("package", 0)),
        ("package-12", {"package": 3}, ("package", 12)),  # the suffix wins over the count
        ("dram", {}, ("dram", 0)),
        ("dram", {"dram": 2}, ("dram", 2)),
        ("psys", {"package": 2}, ("psys", 0)),
        ("package-0-die-1", {}, ("package-0-die-1", 0)),  # three parts: kept whole
        ("package-x", {}, ("package-x", 0)),  # not a number: kept whole
    ],
)
def test_zone_name_and_index(raw: str, usages: dict[str, int], expected: tuple[str, int]) -> None:
    assert zone_name_and_index(raw, usages) == expected


def test_unindexed_names_count_in_byte_order_of_folders_like_node_exporter(scratch: Path) -> None:
    files = {}
    for socket in range(11):
        files[f"{POWERCAP}/intel-rapl:{socket}/name"] = f"package-{socket}\n"
        files[f"{POWERCAP}/intel-rapl:{socket}:0/name"] = "dram\n"
    write_tree(scratch, files)
    folders = sorted(path.name for path in (scratch / POWERCAP).iterdir())

    dram = {z.folder: z.index for z in list_zones(scratch / POWERCAP, folders) if z.name == "dram"}

    # "intel-rapl:10:0" sorts before "intel-rapl:1:0" (":" is after "0"), so with eleven
    # sockets the dram index stops matching the socket, as it does in node_exporter.
    assert dram["intel-rapl:0:0"] == 0
    assert dram["intel-rapl:10:0"] == 1
    assert dram["intel-rapl:1:0"] == 2
    assert dram["intel-rapl:2:0"] == 3


def test_root_only_energy_files_are_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse_packages(path: Path) -> str:
        if path.parent.name in ("intel-rapl:0", "intel-rapl:1"):
            raise PermissionError(13, "Permission denied", str(path))
        return read_table(path)

    collector = RaplCollector(tree_paths(RAPL_SERVER), read_file=refuse_packages)
    with caplog.at_level(logging.DEBUG, logger="agent.collectors.host.rapl"):
        first = collector.collect(0.0)
        second = collector.collect(10.0)

    for samples in (first, second):
        assert {s.name for s in samples} == {"node_rapl_dram_joules_total"}
        assert len(samples) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "intel-rapl:0, intel-rapl:1" in warnings[0].getMessage()
    assert "root" in warnings[0].getMessage()


def test_no_powercap_yields_nothing_and_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="agent.collectors.host.rapl"):
        assert RaplCollector(tree_paths(RECORDED)).collect(0.0) == []
    assert caplog.records == []


def test_a_driver_loaded_after_start_is_picked_up(scratch: Path) -> None:
    collector = RaplCollector(tree_paths(scratch))
    assert collector.collect(0.0) == []

    write_tree(scratch, {f"{POWERCAP}/intel-rapl:0/name": "package-0\n"})
    write_tree(scratch, {f"{POWERCAP}/intel-rapl:0/energy_uj": "1000000\n"})
    assert collector.collect(10.0)[0].value == 1.0

    write_tree(scratch, {f"{POWERCAP}/intel-rapl:0:0/name": "dram\n"})
    write_tree(scratch, {f"{POWERCAP}/intel-rapl:0:0/energy_uj": "3000000\n"})
    samples = collector.collect(20.0)
    assert value(samples, "node_rapl_dram_joules_total", **labels("intel-rapl:0:0", 0)) == 3.0


def test_the_counter_is_sent_raw_across_a_wrap(scratch: Path) -> None:
    paths = write_tree(scratch, {f"{POWERCAP}/intel-rapl:0/name": "package-0\n"})
    energy = scratch / POWERCAP / "intel-rapl:0" / "energy_uj"
    collector = RaplCollector(paths)

    energy.write_text("262143000000\n", encoding="utf-8")
    before = collector.collect(0.0)[0].value
    energy.write_text("1500000\n", encoding="utf-8")
    after = collector.collect(10.0)[0].value

    assert (before, after) == (262143.0, 1.5)  # the server sees the wrap as a counter reset


def test_a_zone_without_energy_file_is_skipped(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            f"{POWERCAP}/intel-rapl:0/name": "package-0\n",
            f"{POWERCAP}/intel-rapl:0:0/name": "dram\n",
            f"{POWERCAP}/intel-rapl:0:0/energy_uj": "7000000\n",
        },
    )

    samples = RaplCollector(paths).collect(0.0)

    assert [(s.name, s.value) for s in samples] == [("node_rapl_dram_joules_total", 7.0)]


def test_malformed_energy_fails_the_collection(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            f"{POWERCAP}/intel-rapl:0/name": "package-0\n",
            f"{POWERCAP}/intel-rapl:0/energy_uj": "lots\n",
        },
    )

    with pytest.raises(MalformedFileError, match="energy_uj"):
        RaplCollector(paths).collect(0.0)
