"""The processes on a GPU, as NVML lists them: running processes and their utilization.

Stage: ``NvmlSession`` (``nvml.py``) -> (this) -> ``PynvmlBackend.running_processes`` and
``process_utilization`` -> ``GpuCollector`` (job attribution). Input: a GPU index and the
session's calls. Output: ``GpuProcess`` and ``ProcessUtilization`` records, one per PID, with
NVML's "not available" sentinels turned into None.

Drivers of the R535 branch write a wider entry into ``…RunningProcesses_v3`` than the binding
may expect (the struct drift nvitop documents); which layout to read is probed from the
driver's symbols once per session (``layout``) and forgotten with the session.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from agent.collectors.gpu.backend import (
    GpuProcess,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotFound,
    NvmlNotSupported,
    ProcessUtilization,
)
from agent.collectors.gpu.nvml import (
    ERROR_FUNCTION_NOT_FOUND,
    ERROR_INSUFFICIENT_SIZE,
    NVML_SUCCESS,
    NvmlSession,
    error_for_code,
)

_log = logging.getLogger(__name__)

# NVML's "not available" in 64-bit process memory (WDDM, MIG).
_NOT_AVAILABLE_ULL = (1 << 64) - 1


class NvmlProcesses:
    """Lists one GPU's processes through ``session``; the layout probe is per session."""

    def __init__(self, session: NvmlSession) -> None:
        self._nvml = session
        self._layout: str | None = None

    def release(self) -> None:
        """Nothing is held in the driver."""

    def forget(self) -> None:
        self._layout = None

    def running(self, index: int) -> list[GpuProcess]:
        """Returns: compute and graphics processes of GPU ``index``, one entry per PID."""
        merged: dict[int, GpuProcess] = {}
        for kind in ("Compute", "Graphics"):
            try:
                entries = self._processes(kind, index)
            except (NvmlNotSupported, NvmlFunctionNotFound):
                if kind == "Compute":
                    raise
                continue  # a compute-only board
            for entry in entries:
                pid = int(entry.pid)
                if pid in merged:
                    continue  # one entry per PID; the compute entry wins
                merged[pid] = GpuProcess(
                    pid=pid,
                    used_memory_bytes=_optional_count(entry.usedGpuMemory, _NOT_AVAILABLE_ULL),
                    kind=kind.lower(),
                    gpu_instance_id=_optional_count(getattr(entry, "gpuInstanceId", None)),
                    compute_instance_id=_optional_count(getattr(entry, "computeInstanceId", None)),
                )
        return list(merged.values())

    def utilization(self, index: int, since_us: int) -> list[ProcessUtilization]:
        """Returns: per-process SM and memory utilization samples newer than ``since_us``."""
        try:
            samples = self._nvml.device("nvmlDeviceGetProcessUtilization", index, since_us)
        except NvmlNotFound:
            return []  # no process ran since then (an idle GPU answers this)
        return [
            ProcessUtilization(
                pid=int(sample.pid),
                sm_percent=int(sample.smUtil),
                memory_percent=int(sample.memUtil),
                timestamp_us=int(sample.timeStamp),
            )
            for sample in samples
        ]

    def _processes(self, kind: str, index: int) -> list[Any]:
        layout = self.layout()
        function = f"nvmlDeviceGet{kind}RunningProcesses"
        if layout == "r535":
            return self._processes_r535(f"{function}_v3", index)
        return list(self._nvml.device(f"{function}_{layout}", index))

    def layout(self) -> str:
        """How to list processes with this driver and binding; probed once per session.

        Drivers of the R535 branch (they have ``nvmlDeviceGetConfComputeMemSizeInfo`` but not
        yet ``nvmlDeviceGetRunningProcessDetailList``) fill the ``…RunningProcesses_v3`` calls
        with a wider entry (an extra confidential-computing memory field) without a version
        bump; older and newer drivers use the v2 layout there. Reading one layout as the other
        scrambles PIDs. nvidia-ml-py's own ``_v3`` uses the layout its ``c_nvmlProcessInfo_v3_t``
        declares, so the binding's choice is checked too.

        Returns:
            ``"r535"`` (the ``_v3`` call read with the wide layout), ``"v3"`` or ``"v2"`` (the
            binding's functions of that suffix).
        """
        nvml = self._nvml
        with nvml.lock:
            if self._layout is not None:
                return self._layout
            nv = nvml.module()
            if nvml.driver_has("nvmlDeviceGetComputeRunningProcesses_v3"):
                r535 = nvml.driver_has(
                    "nvmlDeviceGetConfComputeMemSizeInfo"
                ) and not nvml.driver_has("nvmlDeviceGetRunningProcessDetailList")
                binding_wide = _has_field(
                    getattr(nv, "c_nvmlProcessInfo_v3_t", None), "usedGpuCcProtectedMemory"
                )
                if r535:
                    layout = "v3" if binding_wide else "r535"
                else:
                    layout = "v2" if binding_wide else "v3"
            elif nvml.driver_has("nvmlDeviceGetComputeRunningProcesses_v2"):
                layout = "v2"
            else:
                raise NvmlFunctionNotFound(
                    "the driver lists no running processes (no _v2 or _v3 call)",
                    code=ERROR_FUNCTION_NOT_FOUND,
                )
            if layout != "v3":
                _log.info("NVML running processes: using the %s process layout", layout)
            self._layout = layout
            return layout

    def _processes_r535(self, function: str, index: int) -> list[Any]:
        """Call an R535 ``…RunningProcesses_v3`` directly, with the entry layout it writes."""
        nvml = self._nvml
        entry_type = nvml.module().c_nvmlProcessDetail_v1_t  # same fields as R535's v3 entry
        with nvml.device_lock(index):
            handle = nvml.handle(index)
            fn = nvml.function_pointer(function)
            count = ctypes.c_uint(0)
            status = int(fn(handle, ctypes.pointer(count), None))
            if status == NVML_SUCCESS:
                return []
            entries: Any = None
            if status == ERROR_INSUFFICIENT_SIZE:
                count.value = count.value * 2 + 5  # room for processes starting meanwhile
                entries = (entry_type * count.value)()
                status = int(fn(handle, ctypes.pointer(count), entries))
            if status != NVML_SUCCESS:
                error = error_for_code(status, function)
                if isinstance(error, NvmlGpuLost):
                    nvml.forget_handle(index)
                raise error
            return [entries[slot] for slot in range(count.value)]


def _optional_count(value: Any, not_available: int = 0xFFFFFFFF) -> int | None:
    """Returns: ``value`` as int, or None where NVML has no value (None or its sentinel)."""
    if value is None or int(value) == not_available:
        return None
    return int(value)


def _has_field(struct: Any, name: str) -> bool:
    return any(entry[0] == name for entry in getattr(struct, "_fields_", ()))
