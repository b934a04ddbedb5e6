"""What the XID sources observe and what the events collector hands to the batch.

Stage: sources (``kmsg.py``, ``nvml_source.py``) -> ``XidObservation`` -> ``EventsCollector``
-> ``XidEvent`` -> batch (``GpuEvent`` on the wire). An observation is raw: the GPU as the
source names it (a PCI bus id and/or an NVML index), the code and whatever text came with it.
An event is resolved and classified; its field names are exactly those of the wire's
``GpuEvent``, so the batch converts it with ``GpuEvent.model_construct(**asdict(event))``.

PCI bus ids are compared in one canonical form, NVML's long one (``00000000:65:00.0``): the
kernel log prints a short one (``0000:65:00``), so ``normalise_bus_id`` converts both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.collectors.gpu.busid import normalise_bus_id

__all__ = ["Severity", "Source", "XidEvent", "XidObservation", "normalise_bus_id"]

Source = Literal["nvml", "kmsg"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True, kw_only=True)
class XidObservation:
    """One XID as a source saw it, before the GPU is resolved and the code classified.

    Attributes:
        source: which source reported it.
        time: wall-clock Unix time of the event, in seconds.
        code: the XID.
        pci_bus_id: the GPU's bus id in canonical form (``normalise_bus_id``), when known.
        gpu_index: the GPU's NVML index, when known (NVML events only).
        pid: the process the driver blamed, when it named one.
        process: that process's name, when the driver printed it.
        message: the driver's text (the whole kernel log message for kmsg).
        root_cause: the earlier XID the driver says caused this one ("caused by previous Xid").
        recovery_action: NVML's GPU recovery action value, when the event carries one.
    """

    source: Source
    time: float
    code: int
    pci_bus_id: str | None = None
    gpu_index: int | None = None
    pid: int | None = None
    process: str | None = None
    message: str = ""
    root_cause: int | None = None
    recovery_action: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class XidEvent:
    """One XID of one GPU, resolved and classified; the agent-side twin of ``GpuEvent``.

    Attributes:
        time: wall-clock Unix time of the event, in seconds.
        kind: always ``"xid"`` for now.
        source: the source whose report was kept (kmsg when both saw it: its text is richer).
        code: the XID.
        gpu_index: NVML index of the GPU, when resolved.
        uuid: the GPU's UUID, when resolved.
        pci_bus_id: the GPU's PCI bus id, NVML's spelling.
        pid: the process the driver blamed, when it named one.
        message: the driver's text, at most 1024 characters.
        mnemonic: the XID's name in NVIDIA's catalog (empty for codes outside dcmon's table).
        severity: info, warning or critical.
        action: the recommended immediate action, e.g. ``RESET_GPU``.
    """

    time: float
    kind: Literal["xid"] = "xid"
    source: Source
    code: int
    gpu_index: int | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    pid: int | None = None
    message: str = ""
    mnemonic: str = ""
    severity: Severity
    action: str
