"""The hwmon collector: node_exporter's device-path chip names, sensor labels, Celsius."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.collectors.host.hwmon import HwmonCollector, chip_name, clean_name
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, tree_paths, value, write_tree

HWMON = GPU_SERVER / "sys" / "class" / "hwmon"


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("hwmon0", "platform_coretemp_0"),  # device -> /sys/devices/platform/coretemp.0
        ("hwmon1", "platform_coretemp_1"),
        ("hwmon2", "nvme_nvme0"),  # device -> .../nvme/nvme0
        ("hwmon3", "acpitz"),  # no device link: the name file
        ("hwmon4", "0000:a0:03_1_0000:a1:00_0"),  # a PCI NIC: parent port and function
        ("hwmon5", "hwmon5"),  # neither: the folder's own name
    ],
)
def test_chip_names_follow_node_exporter(folder: str, expected: str) -> None:
    assert chip_name(str(HWMON / folder)) == expected


def test_gpu_server_temperatures_thresholds_and_chip_names() -> None:
    samples = HwmonCollector(tree_paths(GPU_SERVER)).collect(0.0)

    package = {"chip": "platform_coretemp_1", "sensor": "package_id_1"}
    assert value(samples, "node_hwmon_temp_celsius", **package) == 71.0
    assert value(samples, "node_hwmon_temp_max_celsius", **package) == 86.0
    assert value(samples, "node_hwmon_temp_crit_celsius", **package) == 96.0
    composite = {"chip": "nvme_nvme0", "sensor": "composite"}
    assert value(samples, "node_hwmon_temp_celsius", **composite) == 38.85
    assert value(samples, "node_hwmon_temp_crit_celsius", **composite) == 84.85
    assert value(samples, "node_hwmon_temp_celsius", chip="nvme_nvme0", sensor="temp3") == 45.85
    assert label_values(samples, "node_hwmon_temp_celsius", "sensor") >= {"core_0", "core_4"}
    assert value(samples, "node_hwmon_chip_names", chip="nvme_nvme0", chip_name="nvme") == 1
    assert (
        value(samples, "node_hwmon_chip_names", chip="0000:a0:03_1_0000:a1:00_0", chip_name="mlx5")
        == 1
    )
    assert label_values(samples, "node_hwmon_chip_names", "chip") == {
        "platform_coretemp_0",
        "platform_coretemp_1",
        "nvme_nvme0",
        "acpitz",
        "0000:a0:03_1_0000:a1:00_0",
    }  # hwmon5 has no name file
    assert len([s for s in samples if s.name == "node_hwmon_temp_celsius"]) == 3 + 3 + 3 + 1 + 1 + 1
    assert_conforms(samples, source="hwmon")


def test_no_hwmon_class_yields_nothing() -> None:
    assert HwmonCollector(tree_paths(RECORDED)).collect(0.0) == []


def test_sensor_files_in_the_device_folder_count_and_repeated_labels_are_skipped(
    scratch: Path,
) -> None:
    chip = "sys/devices/platform/it87.2608"
    write_tree(
        scratch,
        {
            f"{chip}/temp1_input": "41000\n",
            f"{chip}/temp1_label": "CPU\n",
            f"{chip}/temp2_input": "99000\n",
            f"{chip}/temp2_label": "cpu\n",
            f"{chip}/temp3_input": "not wired\n",
            f"{chip}/hwmon/hwmon0/name": "it8728\n",
        },
    )
    os.symlink("../../../it87.2608", scratch / chip / "hwmon/hwmon0/device")
    (scratch / "sys/class/hwmon").mkdir(parents=True)
    os.symlink("../../devices/platform/it87.2608/hwmon/hwmon0", scratch / "sys/class/hwmon/hwmon0")

    samples = HwmonCollector(tree_paths(scratch)).collect(0.0)

    temps = [(s.labels, s.value) for s in samples if s.name == "node_hwmon_temp_celsius"]
    assert temps == [({"chip": "platform_it87_2608", "sensor": "cpu"}, 41.0)]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Package id 0", "package_id_0"),
        ("Tctl", "tctl"),
        ("  --x--  ", "x"),
        ("0000:00:18.3", "0000:00:18_3"),
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean
