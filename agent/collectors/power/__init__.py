"""Power collectors: node power that the host kernel does not report, read from the BMC.

Stage: collectors. Input: the node's baseboard management controller over in-band IPMI
(``ipmitool``). Output: ``Sample``s listed in ``agent/wire/catalog/power.toml``. CPU package and
DRAM energy (RAPL) is a host collector (``agent/collectors/host/rapl.py``) and GPU energy comes
with the GPU collector. Nothing is built or started at import.
"""

from __future__ import annotations

from agent.collectors.power.ipmi import (
    DcmiOutputError,
    DcmiPowerReading,
    IpmiCommandError,
    IpmiError,
    IpmiPowerCollector,
    IpmiPowerOptions,
    parse_power_reading,
    run_command,
)

__all__ = [
    "DcmiOutputError",
    "DcmiPowerReading",
    "IpmiCommandError",
    "IpmiError",
    "IpmiPowerCollector",
    "IpmiPowerOptions",
    "parse_power_reading",
    "run_command",
]
