"""The thermal_zone collector: zone temperatures in Celsius and cooling-device states."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.thermal_zone import ThermalZoneCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree


def test_gpu_server_zones_and_cooling_devices() -> None:
    samples = ThermalZoneCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_thermal_zone_temp", zone="0", type="acpitz") == 27.8
    assert value(samples, "node_thermal_zone_temp", zone="1", type="x86_pkg_temp") == 61.0
    assert value(samples, "node_thermal_zone_temp", zone="2", type="x86_pkg_temp") == 58.0
    states = {
        (s.name, s.labels["name"], s.labels["type"]): s.value
        for s in samples
        if s.name.startswith("node_cooling_device")
    }
    assert states[("node_cooling_device_cur_state", "2", "Processor")] == 1
    assert states[("node_cooling_device_cur_state", "0", "Processor")] == 0
    assert states[("node_cooling_device_max_state", "2", "Processor")] == 3
    # intel_powerclamp answers -1 while idle injection is off: the state is left out
    assert states[("node_cooling_device_max_state", "4", "intel_powerclamp")] == 50
    assert ("node_cooling_device_cur_state", "4", "intel_powerclamp") not in states
    assert len(samples) == 3 + 4 * 2 + 1
    assert_conforms(samples, source="thermal_zone")


def test_no_thermal_class_yields_nothing() -> None:
    assert ThermalZoneCollector(tree_paths(RECORDED)).collect(0.0) == []


def test_a_zone_whose_sensor_cannot_be_read_is_left_out(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            "sys/class/thermal/thermal_zone0/type": "acpitz\n",  # temp refused (EINVAL): absent
            "sys/class/thermal/thermal_zone10/type": "pch_cannonlake\n",
            "sys/class/thermal/thermal_zone10/temp": "-5000\n",
            "sys/class/thermal/thermal_zone2/type": "iwlwifi_1\n",
            "sys/class/thermal/thermal_zone2/temp": "43000\n",
            "sys/class/thermal/cooling_device0/type": "Fan\n",
            "sys/class/thermal/cooling_device0/max_state": "4\n",  # no cur_state: device left out
            "sys/class/thermal/thermal_zone_extra/type": "not a zone\n",
        },
    )

    samples = ThermalZoneCollector(paths).collect(0.0)

    assert [(s.labels["zone"], s.value) for s in samples] == [("2", 43.0), ("10", -5.0)]
    assert "node_cooling_device_max_state" not in names(samples)


def test_a_temperature_that_is_not_a_number_raises(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            "sys/class/thermal/thermal_zone0/type": "acpitz\n",
            "sys/class/thermal/thermal_zone0/temp": "hot\n",
        },
    )

    with pytest.raises(MalformedFileError, match="thermal_zone0/temp"):
        ThermalZoneCollector(paths).collect(0.0)
