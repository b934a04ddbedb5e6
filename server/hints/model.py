"""The cluster snapshot the hint engine reads: nodes and GPUs, pods, pending demand, telemetry.

Stage: hints input. The live server builds a ``Snapshot`` from its jobs, latest values, history,
health and benchmark results; the trace-replay simulator builds one from its cluster state. The
engine (``engine.rebalance``) reads it and never changes it; ``engine.apply`` returns a new one.

Units are in the names: CPU in milli-cores, memory in MiB, a GPU share in milli of one GPU
(1000 = a whole GPU), times and windows in seconds, temperatures in °C, power in watts,
utilization in percent (0-100), shares of a window in 0..1.

Free capacity is stored, not derived: ``Node.cpu_milli_free`` and ``Gpu.free_milli`` are what is
left after everything placed there (tracked pods and anything else), so a move only adds and
subtracts its pod's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

MILLI = 1000


class SnapshotError(ValueError):
    """A snapshot that contradicts itself: duplicate names, a pod on an unknown node or GPU."""


class Health(StrEnum):
    OK = "ok"
    FAILING = "failing"


class FailureKind(StrEnum):
    """Why a GPU is failing; the snapshot builder classifies, the engine only weighs."""

    FATAL_XID = "fatal_xid"  # an XID whose recommended action is a reset or node service
    ECC_UNCORRECTABLE = "ecc_uncorrectable"  # volatile double-bit errors
    ROW_REMAP_FAILURE = "row_remap_failure"  # no spare rows left to remap
    GPU_LOST = "gpu_lost"  # fell off the bus / driver does not answer
    BENCH_FAILED = "bench_failed"  # a benchmark check failed
    BENCH_FLEET_OUTLIER = "bench_fleet_outlier"  # slow against the fleet median of its SKU


class ClockEvent(StrEnum):
    """Clock-event reasons that slow a job; values as the ``reason`` label of
    ``dcmon_gpu_clocks_event_reason``."""

    SW_POWER_CAP = "sw_power_cap"
    HW_SLOWDOWN = "hw_slowdown"
    SW_THERMAL_SLOWDOWN = "sw_thermal_slowdown"
    HW_THERMAL_SLOWDOWN = "hw_thermal_slowdown"
    HW_POWER_BRAKE_SLOWDOWN = "hw_power_brake_slowdown"


THERMAL_EVENTS = frozenset({ClockEvent.SW_THERMAL_SLOWDOWN, ClockEvent.HW_THERMAL_SLOWDOWN})
# Hardware slowdowns only: SW power cap means the GPU runs at its power limit, which is how a
# busy GPU normally runs (dense training sits there), so it is no sign of a hot node.
POWER_EVENTS = frozenset({ClockEvent.HW_POWER_BRAKE_SLOWDOWN, ClockEvent.HW_SLOWDOWN})


@dataclass(frozen=True)
class Failure:
    """One reason a GPU is failing, with the series and value that showed it."""

    kind: FailureKind
    detail: str = ""  # e.g. the XID code "79"
    series: str = ""  # e.g. "DCGM_FI_DEV_XID_ERRORS"
    value: float = 1.0


@dataclass(frozen=True)
class Gpu:
    """One GPU of a node: identity, free share and health.

    ``free_milli`` is the share not allocated to any pod. ``slowdown_celsius`` is the GPU's own
    slowdown threshold (``DCGM_FI_DEV_SLOWDOWN_TEMP``) when known.
    """

    index: int
    uuid: str = ""
    model: str = ""
    memory_mib: int = 0
    free_milli: int = MILLI
    failures: tuple[Failure, ...] = ()
    slowdown_celsius: float | None = None

    @property
    def health(self) -> Health:
        return Health.FAILING if self.failures else Health.OK


@dataclass(frozen=True)
class Node:
    """One node: CPU and memory capacity and what is free, its GPUs, labels.

    ``schedulable`` False (cordoned, draining, powered down) means nothing may move there.
    """

    name: str
    cpu_milli: int
    cpu_milli_free: int
    memory_mib: int
    memory_mib_free: int
    gpus: tuple[Gpu, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    schedulable: bool = True

    def gpu(self, index: int) -> Gpu:
        for gpu in self.gpus:
            if gpu.index == index:
                return gpu
        raise SnapshotError(f"node {self.name} has no GPU {index}")

    @property
    def gpu_milli_free(self) -> int:
        return sum(g.free_milli for g in self.gpus)

    @property
    def gpu_milli_allocated(self) -> int:
        return MILLI * len(self.gpus) - self.gpu_milli_free


@dataclass(frozen=True)
class Request:
    """What a pod asks for: CPU, memory, and ``num_gpu`` GPUs each holding ``gpu_milli``.

    A share below 1000 is for one GPU; several GPUs are whole. ``gpu_models`` lists the GPU
    models the pod may use (empty: any).
    """

    cpu_milli: int
    memory_mib: int
    num_gpu: int = 0
    gpu_milli: int = 0
    gpu_models: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.num_gpu < 0 or not 0 <= self.gpu_milli <= MILLI:
            raise SnapshotError(f"bad GPU request {self.num_gpu} x {self.gpu_milli} milli")
        if (self.num_gpu == 0) != (self.gpu_milli == 0):
            raise SnapshotError("a GPU count needs a share and a share needs a GPU count")
        if self.num_gpu > 1 and self.gpu_milli != MILLI:
            raise SnapshotError("several GPUs are whole GPUs")

    @property
    def gpu_milli_total(self) -> int:
        return self.num_gpu * self.gpu_milli


@dataclass(frozen=True)
class Pod:
    """A pod (or a job's share on one node): its request, where it runs and how it may move.

    ``node`` None: not placed (pending or released). ``gang``: pods of one gang move together
    or not at all. ``preemptible`` False: never moved or released. ``restart_s`` overrides the
    policy's restart cost for this pod. ``started_at_s`` is on the snapshot's clock.
    """

    id: str
    request: Request
    node: str | None = None
    gpus: tuple[int, ...] = ()
    gang: str | None = None
    preemptible: bool = True
    scheduler: str = ""
    qos: str = ""
    started_at_s: float | None = None
    restart_s: float | None = None


@dataclass(frozen=True)
class PendingShape:
    """A request shape waiting for capacity, and how many wait (or its weight in the mix)."""

    request: Request
    count: int = 1


@dataclass(frozen=True)
class GpuWindow:
    """One GPU's telemetry over the last ``window_s`` seconds.

    ``util_pct`` and ``power_watts`` are means (``DCGM_FI_DEV_GPU_UTIL``,
    ``DCGM_FI_DEV_POWER_USAGE``), ``temperature_celsius`` the maximum (``DCGM_FI_DEV_GPU_TEMP``),
    ``memory_used_mib`` the mean (``DCGM_FI_DEV_FB_USED``); ``clock_event_share`` the share of
    the window each reason held the clocks down (``dcmon_gpu_clocks_event_reason``).
    """

    node: str
    gpu: int
    window_s: float
    util_pct: float = 0.0
    memory_used_mib: float = 0.0
    power_watts: float = 0.0
    temperature_celsius: float = 0.0
    clock_event_share: Mapping[ClockEvent, float] = field(default_factory=dict)

    def share_of(self, events: frozenset[ClockEvent]) -> float:
        """Returns: the largest share of the window any of ``events`` held (0..1)."""
        return max((s for e, s in self.clock_event_share.items() if e in events), default=0.0)


@dataclass(frozen=True)
class JobActivity:
    """A pod's activity over its life and the last ``window_s`` seconds.

    ``idle_s``: length of the idle run now under way (0 when active). ``running_s``: time since
    it started. ``resumed_gaps_s``: lengths of earlier idle runs that ended in activity, the
    learned duty cycle. ``duty_cycle``: share of its running time it was active (0..1).
    ``gpu_util_pct`` and ``cpu_util_pct`` are means over the window.
    """

    pod: str
    window_s: float
    gpu_util_pct: float
    cpu_util_pct: float
    idle_s: float
    running_s: float
    resumed_gaps_s: tuple[float, ...] = ()
    duty_cycle: float | None = None


@dataclass(frozen=True)
class Telemetry:
    gpus: tuple[GpuWindow, ...] = ()
    jobs: tuple[JobActivity, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything one round of the engine reads; ``now_s`` is the snapshot's clock."""

    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...] = ()
    pending: tuple[PendingShape, ...] = ()
    telemetry: Telemetry = field(default_factory=Telemetry)
    now_s: float = 0.0

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise SnapshotError("duplicate node names")
        ids = [p.id for p in self.pods]
        if len(set(ids)) != len(ids):
            raise SnapshotError("duplicate pod ids")
        for node in self.nodes:
            if len({g.index for g in node.gpus}) != len(node.gpus):
                raise SnapshotError(f"node {node.name}: duplicate GPU indices")
        by_name = {n.name: n for n in self.nodes}
        for pod in self.pods:
            if pod.node is None:
                if pod.gpus:
                    raise SnapshotError(f"pod {pod.id} holds GPUs but no node")
                continue
            host = by_name.get(pod.node)
            if host is None:
                raise SnapshotError(f"pod {pod.id} on unknown node {pod.node}")
            if len(pod.gpus) != pod.request.num_gpu or len(set(pod.gpus)) != len(pod.gpus):
                raise SnapshotError(f"pod {pod.id} holds GPUs {pod.gpus}, not its request")
            for index in pod.gpus:
                host.gpu(index)

    @cached_property
    def node_by_name(self) -> Mapping[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def pod_by_id(self) -> Mapping[str, Pod]:
        return {p.id: p for p in self.pods}

    @cached_property
    def pods_by_node(self) -> Mapping[str, tuple[Pod, ...]]:
        grouped: dict[str, list[Pod]] = {n.name: [] for n in self.nodes}
        for pod in self.pods:
            if pod.node is not None:
                grouped[pod.node].append(pod)
        return {name: tuple(pods) for name, pods in grouped.items()}

    @cached_property
    def gang_members(self) -> Mapping[str, tuple[str, ...]]:
        """Returns: per gang, the ids of its placed pods, sorted."""
        gangs: dict[str, list[str]] = {}
        for pod in self.pods:
            if pod.gang is not None and pod.node is not None:
                gangs.setdefault(pod.gang, []).append(pod.id)
        return {gang: tuple(sorted(ids)) for gang, ids in gangs.items()}

    @cached_property
    def gpu_window(self) -> Mapping[tuple[str, int], GpuWindow]:
        return {(w.node, w.gpu): w for w in self.telemetry.gpus}

    @cached_property
    def activity(self) -> Mapping[str, JobActivity]:
        return {a.pod: a for a in self.telemetry.jobs}
