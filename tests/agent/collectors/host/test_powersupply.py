"""The powersupplyclass collector: node_exporter's gauges in base units and the info labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.powersupply import PowerSupplyClassCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree

BATTERY = "sys/class/power_supply/BAT0"


def test_gpu_server_mains_adapter() -> None:
    samples = PowerSupplyClassCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_power_supply_online", power_supply="AC") == 1
    (info,) = [s for s in samples if s.name == "node_power_supply_info"]
    assert info.labels["power_supply"] == "AC" and info.labels["type"] == "Mains"
    assert {key for key, text in info.labels.items() if text} == {"power_supply", "type"}
    assert len(samples) == 2  # uevent and the device/subsystem links are not attributes
    assert_conforms(samples, source="powersupplyclass")


def test_no_power_supply_class_yields_nothing() -> None:
    assert PowerSupplyClassCollector(tree_paths(RECORDED)).collect(0.0) == []


def test_battery_units_and_info(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            f"{BATTERY}/type": "Battery\n",
            f"{BATTERY}/status": "Discharging\n",
            f"{BATTERY}/present": "1\n",
            f"{BATTERY}/technology": "Li-ion\n",
            f"{BATTERY}/cycle_count": "187\n",
            f"{BATTERY}/voltage_min_design": "11550000\n",
            f"{BATTERY}/voltage_now": "12233000\n",
            f"{BATTERY}/power_now": "9874000\n",
            f"{BATTERY}/energy_full_design": "57000000\n",
            f"{BATTERY}/energy_full": "51300000\n",
            f"{BATTERY}/energy_now": "30210000\n",
            f"{BATTERY}/capacity": "58\n",
            f"{BATTERY}/capacity_level": "Normal\n",
            f"{BATTERY}/temp": "312\n",
            f"{BATTERY}/model_name": "5B10W13975\n",
            f"{BATTERY}/manufacturer": "SMP\n",
            f"{BATTERY}/serial_number": "  1234\n",
            f"{BATTERY}/alarm": "0\n",  # not an attribute node_exporter reports
        },
    )

    samples = PowerSupplyClassCollector(paths).collect(0.0)

    supply = {"power_supply": "BAT0"}
    assert value(samples, "node_power_supply_voltage_volt", **supply) == 12.233
    assert value(samples, "node_power_supply_voltage_min_design", **supply) == 11.55
    assert value(samples, "node_power_supply_power_watt", **supply) == 9.874
    assert value(samples, "node_power_supply_energy_watthour", **supply) == 30.21
    assert value(samples, "node_power_supply_energy_full_design", **supply) == 57.0
    assert value(samples, "node_power_supply_capacity", **supply) == 58
    assert value(samples, "node_power_supply_cyclecount", **supply) == 187
    assert value(samples, "node_power_supply_temp_celsius", **supply) == 31.2
    (info,) = [s for s in samples if s.name == "node_power_supply_info"]
    assert info.labels["status"] == "Discharging"
    assert info.labels["serial_number"] == "1234"
    assert info.labels["technology"] == "Li-ion" and info.labels["usb_type"] == ""
    assert "node_power_supply_alarm" not in names(samples)
    assert_conforms(samples, source="powersupplyclass")


def test_a_numeric_attribute_that_does_not_parse_raises(scratch: Path) -> None:
    paths = write_tree(scratch, {f"{BATTERY}/type": "Battery\n", f"{BATTERY}/capacity": "full\n"})

    with pytest.raises(MalformedFileError, match="BAT0/capacity"):
        PowerSupplyClassCollector(paths).collect(0.0)
