"""The health half of the live snapshot: why a GPU is failing, with the reading that showed it.

Stage: latest values, events and benchmark results -> (this) -> ``Gpu.failures`` of the
snapshot. Classification (the engine only weighs what is found here):

- ``gpu_lost``: ``dcmon_gpu_up`` is 0 in the node's newest batch (the GPU stopped answering);
- ``ecc_uncorrectable``: ``DCGM_FI_DEV_ECC_DBE_VOL_TOTAL`` (double-bit errors since the driver
  loaded) above 0 in the newest batch;
- ``row_remap_failure``: ``DCGM_FI_DEV_ROW_REMAP_FAILURE`` is 1 in the newest batch;
- ``fatal_xid``: an XID the agent rated ``critical`` within the lookback (the agent's XID
  table marks the codes that need a GPU reset or node service critical; the rule pack's
  ``GpuXidFatal`` lists the same codes), matched to the GPU by UUID, else by index;
- ``bench_failed`` / ``bench_fleet_outlier``: the device's latest benchmark run failed, or one
  of its latest figures is an outlier against the fleet median of its SKU
  (``server.bench.service.BenchService.fleet``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from server.bench.snapshot import FleetSnapshot
from server.events.store import EventRecord
from server.hints.model import Failure, FailureKind
from server.latest.cache import NodeLatest

GPU_UP = "dcmon_gpu_up"
ECC_DBE = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
REMAP_FAILURE = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
SLOWDOWN = "DCGM_FI_DEV_SLOWDOWN_TEMP"
XID = "DCGM_FI_DEV_XID_ERRORS"
BENCH_PASSED = "dcmon_bench_passed"
BENCH_OUTLIER = "dcmon_bench_fleet_outlier"

LATEST_METRICS = (GPU_UP, ECC_DBE, REMAP_FAILURE, SLOWDOWN)

# (node name, GPU UUID or "#<index>") -> failures
FailureMap = Mapping[tuple[str, str], tuple[Failure, ...]]


def latest_by_uuid(node: NodeLatest) -> dict[str, dict[str, float]]:
    """Returns: UUID -> {metric: value} of the health and threshold series in the batch."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in LATEST_METRICS:
        for labels, value in node.families.get(metric, ()):
            uuid = labels.get("UUID")
            if uuid:
                found[uuid].setdefault(metric, value)
    return found


def latest_failures(readings: Mapping[str, float]) -> list[Failure]:
    """Returns: the failures one GPU's newest readings show."""
    found = []
    if readings.get(GPU_UP) == 0:
        found.append(Failure(FailureKind.GPU_LOST, "", GPU_UP, 0.0))
    dbe = readings.get(ECC_DBE, 0.0)
    if dbe > 0:
        found.append(Failure(FailureKind.ECC_UNCORRECTABLE, f"{dbe:g} DBE", ECC_DBE, dbe))
    if readings.get(REMAP_FAILURE, 0.0) >= 1:
        found.append(Failure(FailureKind.ROW_REMAP_FAILURE, "", REMAP_FAILURE, 1.0))
    return found


def xid_failures(events: Iterable[EventRecord]) -> dict[tuple[str, str], list[Failure]]:
    """Returns: (node, UUID or "#<index>") -> one fatal-XID failure per code, newest first."""
    found: dict[tuple[str, str], list[Failure]] = defaultdict(list)
    seen: set[tuple[str, str, int]] = set()
    for record in events:
        event = record.event
        if event.severity != "critical":
            continue
        if event.uuid:
            where = event.uuid
        elif event.gpu_index is not None:
            where = f"#{event.gpu_index}"
        else:
            continue
        if (record.node_name, where, event.code) in seen:
            continue
        seen.add((record.node_name, where, event.code))
        detail = f"{event.code} {event.mnemonic}".strip()
        found[(record.node_name, where)].append(
            Failure(FailureKind.FATAL_XID, detail, XID, float(event.code))
        )
    return found


def bench_failures(fleet: FleetSnapshot) -> dict[tuple[str, str], list[Failure]]:
    """Returns: (node, UUID or "#<index>") -> the benchmark failures of each GPU device."""
    found: dict[tuple[str, str], list[Failure]] = defaultdict(list)
    for device in fleet.devices:
        if device.kind == "cpu":
            continue  # a CPU run of the benchmark says nothing about a GPU
        where = device.gpu_uuid or f"#{device.gpu_index}"
        key = (device.node_name, where)
        if not device.passed:
            found[key].append(Failure(FailureKind.BENCH_FAILED, device.level, BENCH_PASSED, 0.0))
        outliers = fleet.outliers(device.gpu_key)
        if outliers:
            tests = ", ".join(sorted(v.result.test for v in outliers))
            found[key].append(Failure(FailureKind.BENCH_FLEET_OUTLIER, tests, BENCH_OUTLIER, 1.0))
    return found
