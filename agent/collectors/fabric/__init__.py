"""Fabric collectors that are not a host interface: the simulated InfiniBand and RoCE fabric.

Stage: collectors. The real InfiniBand/RoCE collector reads ``/sys/class/infiniband`` like every
host collector and lives with them (``agent/collectors/host/infiniband.py``); this package holds
its stand-in for simulated nodes, which emits the same series (``agent/wire/catalog/fabric.toml``).
Nothing is built or started at import.
"""

from __future__ import annotations

from agent.collectors.fabric.simulated import SimulatedFabricCollector

__all__ = ["SimulatedFabricCollector"]
