"""The ``powersupplyclass`` collector: mains adapters, batteries and UPSes the kernel knows.

Input: ``/sys/class/power_supply/<supply>/`` (ACPI ``AC``/``ADP1`` mains adapters and ``BAT0``
batteries, USB-C ports, HID UPSes). Output, named as node_exporter's ``powersupplyclass``
collector, one gauge per attribute the supply has, labelled ``{power_supply}``:

- as read: ``online``, ``present``, ``authentic``, ``calibrate``, ``capacity`` (percent),
  ``capacity_alert_min``/``_max``, ``cyclecount`` (``cycle_count``), ``time_to_empty_seconds`` and
  ``time_to_full_seconds`` (``time_to_*_now``), each ``node_power_supply_<name>``;
- from the kernel's micro-units to base units (A, V, W, Wh, Ah): ``current_ampere``
  (``current_now``), ``voltage_volt`` (``voltage_now``), ``power_watt`` (``power_now``),
  ``energy_watthour`` (``energy_now``), ``charge_ampere`` (``charge_now``) and the ``_boot``,
  ``_min``, ``_max``, ``_full``, ``_empty``, ``_design``, charge-control and input-limit
  attributes under their file names;
- from tenths of a degree: ``temp_celsius`` and the other ``temp_*_celsius``;
- ``node_power_supply_info`` = 1 with the text attributes as labels (``type``, ``status``,
  ``health``, ``manufacturer``, ``model_name``, ``serial_number``, ...). node_exporter gives it
  only the labels the supply has; here every label is always present, empty when the supply
  lacks it, which Prometheus stores identically (an empty label is no label).

No ``/sys/class/power_supply`` (most servers and VMs) yields nothing; an attribute the driver
refuses (ENODATA from a battery that is not present, ENODEV, EINVAL) is left out. A numeric
attribute that does not parse raises ``MalformedFileError``.
"""

from __future__ import annotations

import os

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import parse_int, read_attribute

MICRO = 1e6
"""Divisor of the kernel's micro-units (µA, µV, µW, µWh, µAh)."""
TENTH = 10.0
"""Divisor of the kernel's tenths of a degree Celsius."""

# sysfs file -> (metric suffix, divisor to base units)
NUMERIC_ATTRIBUTES: dict[str, tuple[str, float]] = {
    "authentic": ("authentic", 1.0),
    "calibrate": ("calibrate", 1.0),
    "capacity": ("capacity", 1.0),
    "capacity_alert_max": ("capacity_alert_max", 1.0),
    "capacity_alert_min": ("capacity_alert_min", 1.0),
    "cycle_count": ("cyclecount", 1.0),
    "online": ("online", 1.0),
    "present": ("present", 1.0),
    "time_to_empty_now": ("time_to_empty_seconds", 1.0),
    "time_to_full_now": ("time_to_full_seconds", 1.0),
    "current_boot": ("current_boot", MICRO),
    "current_max": ("current_max", MICRO),
    "current_now": ("current_ampere", MICRO),
    "energy_empty": ("energy_empty", MICRO),
    "energy_empty_design": ("energy_empty_design", MICRO),
    "energy_full": ("energy_full", MICRO),
    "energy_full_design": ("energy_full_design", MICRO),
    "energy_now": ("energy_watthour", MICRO),
    "voltage_boot": ("voltage_boot", MICRO),
    "voltage_max": ("voltage_max", MICRO),
    "voltage_max_design": ("voltage_max_design", MICRO),
    "voltage_min": ("voltage_min", MICRO),
    "voltage_min_design": ("voltage_min_design", MICRO),
    "voltage_now": ("voltage_volt", MICRO),
    "voltage_ocv": ("voltage_ocv", MICRO),
    "charge_control_limit": ("charge_control_limit", MICRO),
    "charge_control_limit_max": ("charge_control_limit_max", MICRO),
    "charge_counter": ("charge_counter", MICRO),
    "charge_empty": ("charge_empty", MICRO),
    "charge_empty_design": ("charge_empty_design", MICRO),
    "charge_full": ("charge_full", MICRO),
    "charge_full_design": ("charge_full_design", MICRO),
    "charge_now": ("charge_ampere", MICRO),
    "charge_term_current": ("charge_term_current", MICRO),
    "constant_charge_current": ("constant_charge_current", MICRO),
    "constant_charge_current_max": ("constant_charge_current_max", MICRO),
    "constant_charge_voltage": ("constant_charge_voltage", MICRO),
    "constant_charge_voltage_max": ("constant_charge_voltage_max", MICRO),
    "precharge_current": ("precharge_current", MICRO),
    "input_current_limit": ("input_current_limit", MICRO),
    "power_now": ("power_watt", MICRO),
    "temp": ("temp_celsius", TENTH),
    "temp_alert_max": ("temp_alert_max_celsius", TENTH),
    "temp_alert_min": ("temp_alert_min_celsius", TENTH),
    "temp_ambient": ("temp_ambient_celsius", TENTH),
    "temp_ambient_max": ("temp_ambient_max_celsius", TENTH),
    "temp_ambient_min": ("temp_ambient_min_celsius", TENTH),
    "temp_max": ("temp_max_celsius", TENTH),
    "temp_min": ("temp_min_celsius", TENTH),
}
"""Every numeric attribute node_exporter reports, with its metric suffix and unit divisor."""

INFO_ATTRIBUTES = (
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
    "scope",
)
"""Text attributes that become labels of ``node_power_supply_info`` (beside ``power_supply``)."""

INFO_METRIC = "node_power_supply_info"


def metric_name(suffix: str) -> str:
    """Returns: the metric of a ``NUMERIC_ATTRIBUTES`` suffix."""
    return f"node_power_supply_{suffix}"


class PowerSupplyClassCollector:
    """Reads the numeric and text attributes of every power supply."""

    name = "powersupplyclass"

    def __init__(self, paths: HostPaths) -> None:
        self._root = paths.sys / "class" / "power_supply"

    def collect(self, now: float) -> list[Sample]:
        """Returns: each supply's gauges and its info sample; nothing without the class.

        Raises:
            MalformedFileError: a numeric attribute holds something other than an integer.
        """
        try:
            with os.scandir(self._root) as listing:
                supplies = sorted(entry.name for entry in listing if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        samples: list[Sample] = []
        for supply in supplies:
            samples.extend(self._supply(supply))
        return samples

    def _supply(self, supply: str) -> list[Sample]:
        folder = f"{self._root}/{supply}"
        try:
            with os.scandir(folder) as listing:
                files = {entry.name for entry in listing if entry.is_file(follow_symlinks=False)}
        except (FileNotFoundError, NotADirectoryError):
            return []  # unplugged while being read
        samples: list[Sample] = []
        for file_name, (suffix, divisor) in NUMERIC_ATTRIBUTES.items():
            if file_name not in files:
                continue
            path = f"{folder}/{file_name}"
            text = read_attribute(path)
            if text is not None:
                value = parse_int(path, text) / divisor
                samples.append(Sample(metric_name(suffix), {"power_supply": supply}, value))
        labels = {"power_supply": supply}
        for file_name in INFO_ATTRIBUTES:
            text = read_attribute(f"{folder}/{file_name}") if file_name in files else None
            labels[file_name] = text or ""
        samples.append(Sample(INFO_METRIC, labels, 1.0))
        return samples
