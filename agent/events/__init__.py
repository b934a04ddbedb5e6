"""XID and health events: the kernel-log and NVML sources, the XID table, the collector.

Importing this package loads neither the driver nor the XID table; ``EventsCollector`` reads
the table when built and ``NvmlEventSource.start()`` starts its thread.
"""

from __future__ import annotations

from agent.events.collector import (
    GPU_LABEL_NAMES,
    LAST_XID,
    XID_ERRORS_TOTAL,
    EventsCollector,
    GpuRef,
    GpuResolver,
    XidSource,
    labels_resolver,
)
from agent.events.kmsg import KmsgReader
from agent.events.model import XidEvent, XidObservation, normalise_bus_id
from agent.events.nvml_source import NvmlEventSource
from agent.events.xid import XidTable, XidTableError, load_xid_table

__all__ = [
    "GPU_LABEL_NAMES",
    "LAST_XID",
    "XID_ERRORS_TOTAL",
    "EventsCollector",
    "GpuRef",
    "GpuResolver",
    "KmsgReader",
    "NvmlEventSource",
    "XidEvent",
    "XidObservation",
    "XidSource",
    "XidTable",
    "XidTableError",
    "labels_resolver",
    "load_xid_table",
    "normalise_bus_id",
]
