"""The wire schema: what an agent pushes and what the server accepts.

Stage: batch -> (spool -> transport) -> ingest. Both sides import this module; the server never
redefines it. One batch is one agent tick: a single wall-clock timestamp, the node's identity, a
per-node monotonic ``seq``, per-collector status and the samples grouped by metric family.
Counters travel raw (cumulative); a reading that failed or is unsupported is simply absent.

Layout of a sample: ``[labels, value]`` inside its family, so the metric name is sent once per
family rather than once per sample.

Two forms of a batch (``schema_version``):

- 1, ``Batch``: the samples with their names and labels. Every server takes it, and it is what
  the agent spools: it stands on its own.
- 2, ``CompactBatch``: a batch whose families and label sets, in order, are exactly those of an
  earlier batch of the node that the server acknowledged with a layout key (``Ack.layout``).
  It carries that key and the values alone, in the same order, so labels travel once per
  change of the node's series rather than every tick. A server that does not hold the key
  (restarted, another replica) answers 409 ``unknown_layout``, and the agent sends the batch
  again in form 1. An agent asks for layout keys with ``protocol.LAYOUTS_HEADER``; an old agent
  never gets one and an old server never gives one, so either side may be older.

What the server can store bounds what the schema admits: values are finite floats (the agent
drops NaN and infinite readings), integers fit a signed 64-bit column, and no string holds a
NUL character (PostgreSQL text cannot; the codec refuses it, see ``codec.py``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from agent.wire.bench import BenchOrder

SCHEMA_VERSION: Literal[1] = 1
COMPACT_SCHEMA_VERSION: Literal[2] = 2
MAX_SAMPLES_PER_BATCH = 100_000
"""Values in one compact batch (the server's ``max_series_per_batch`` is lower by default)."""
LAYOUT_KEY_RE = re.compile(r"^[0-9a-f]{32}$")

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

MAX_NAME_LENGTH = 200
MAX_LABEL_VALUE_LENGTH = 1024
MAX_LABELS_PER_SAMPLE = 32
MAX_SAMPLES_PER_FAMILY = 20_000
MAX_FAMILIES_PER_BATCH = 5_000
MAX_GPUS_PER_NODE = 64
MAX_EVENTS_PER_BATCH = 1_000
MAX_JOB_USAGES_PER_BATCH = 4_096
MAX_INT64 = 2**63 - 1

# Labels an agent may not set on a sample: the server attaches node identity itself.
RESERVED_LABELS = frozenset({"instance", "job"})

MetricName = Annotated[
    str, StringConstraints(pattern=METRIC_NAME_RE.pattern, max_length=MAX_NAME_LENGTH)
]
LabelName = Annotated[
    str, StringConstraints(pattern=LABEL_NAME_RE.pattern, max_length=MAX_NAME_LENGTH)
]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE_LENGTH)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS_PER_SAMPLE)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
ShortText = Annotated[str, StringConstraints(max_length=256)]
Count = Annotated[int, Field(ge=0, le=MAX_INT64)]
"""A non-negative integer a database column can hold (seq, bytes, pids)."""


class _Wire(BaseModel):
    """Base for wire models: strict types, unknown keys refused, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class NodeIdentity(_Wire):
    """Who sent the batch. ``node_id`` is stable across restarts and renames."""

    node_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    hostname: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=16)

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        _refuse_reserved(labels)
        return labels


class CollectorStatus(_Wire):
    """How one collector fared this tick (node_exporter's scrape_collector_* equivalent)."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    success: bool
    duration_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    error: Annotated[str, StringConstraints(max_length=1024)] | None = None


class MetricFamily(_Wire):
    """All samples of one metric name in this batch."""

    name: MetricName
    samples: Annotated[
        list[tuple[Labels, FiniteFloat]], Field(min_length=1, max_length=MAX_SAMPLES_PER_FAMILY)
    ]

    @field_validator("samples")
    @classmethod
    def _no_reserved_labels(
        cls, samples: list[tuple[dict[str, str], float]]
    ) -> list[tuple[dict[str, str], float]]:
        for labels, _ in samples:
            _refuse_reserved(labels)
        return samples


class HostFacts(_Wire):
    """Slow-changing facts about the host, sent with the inventory."""

    os: ShortText = ""
    kernel: ShortText = ""
    architecture: ShortText = ""
    cpu_model: ShortText = ""
    cpu_count: Count = 0
    memory_total_bytes: Count = 0
    boot_time_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    agent_version: ShortText = ""


class GpuFacts(_Wire):
    """Static facts about one GPU (inventory, not time series)."""

    index: Annotated[int, Field(ge=0, lt=MAX_GPUS_PER_NODE)]
    uuid: ShortText
    model: ShortText = ""
    pci_bus_id: ShortText = ""
    serial: ShortText | None = None
    vbios_version: ShortText | None = None
    memory_total_bytes: Count | None = None
    unsupported: Annotated[list[ShortText], Field(max_length=256)] = Field(
        default_factory=list,
        description="Readings the start-up capability probe found unsupported on this GPU.",
    )


class Inventory(_Wire):
    """What the node is made of. Sent on start, on change, and now and then."""

    host: HostFacts
    gpus: Annotated[list[GpuFacts], Field(max_length=MAX_GPUS_PER_NODE)] = Field(
        default_factory=list
    )
    driver_version: ShortText | None = None
    gpu_status: ShortText = Field(
        default="",
        description="Why no GPU data flows, when none does (for example: no NVIDIA driver).",
    )


class GpuEvent(_Wire):
    """One health event of one GPU (today: an XID), sent once, in the batch after it happened."""

    time: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        description="Wall-clock Unix time the agent saw the event, in seconds."
    )
    kind: Literal["xid"] = "xid"
    source: Literal["nvml", "kmsg"]
    code: Annotated[int, Field(ge=0, le=65_535)]
    gpu_index: Annotated[int, Field(ge=0, lt=MAX_GPUS_PER_NODE)] | None = None
    uuid: ShortText | None = None
    pci_bus_id: ShortText | None = None
    pid: Count | None = None
    message: Annotated[str, StringConstraints(max_length=1024)] = ""
    mnemonic: ShortText = ""
    severity: Literal["info", "warning", "critical"]
    action: ShortText = Field(description="Recommended immediate action, e.g. RESET_GPU.")


class JobGpuUsage(_Wire):
    """One job on one GPU: what it used, cumulative since the agent first saw the pairing.

    Counters (``gpu_seconds``, ``energy_joules``, ``idle_seconds``) restart at 0 when the
    agent restarts; ``since`` says when this run of counting began, so the server can add up
    increases across restarts.
    """

    job_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    scheduler: Literal["slurm", "kubernetes", "container", "systemd", "user", "mapping"]
    user: ShortText = ""
    step: ShortText = ""
    gpu_index: Annotated[int, Field(ge=0, lt=MAX_GPUS_PER_NODE)]
    uuid: ShortText
    pids: Annotated[list[Count], Field(max_length=1024)] = Field(default_factory=list)
    since: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    memory_used_bytes: Count = 0
    sm_percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    gpu_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    idle_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    energy_joules: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class Batch(_Wire):
    """One agent tick."""

    schema_version: Literal[1] = SCHEMA_VERSION
    node: NodeIdentity
    seq: Count
    timestamp: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        description="Wall-clock Unix time of the tick, in seconds."
    )
    interval_seconds: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
    collectors: Annotated[list[CollectorStatus], Field(max_length=256)] = Field(
        default_factory=list
    )
    metrics: Annotated[list[MetricFamily], Field(max_length=MAX_FAMILIES_PER_BATCH)] = Field(
        default_factory=list
    )
    inventory: Inventory | None = None
    events: Annotated[list[GpuEvent], Field(max_length=MAX_EVENTS_PER_BATCH)] = Field(
        default_factory=list
    )
    jobs: Annotated[list[JobGpuUsage], Field(max_length=MAX_JOB_USAGES_PER_BATCH)] = Field(
        default_factory=list,
        description="Every job-GPU pairing active this tick (empty when no job uses a GPU).",
    )

    def sample_count(self) -> int:
        return sum(len(family.samples) for family in self.metrics)


class CompactBatch(Batch):
    """One agent tick whose series are a layout the server gave the node (form 2, see the
    module's docstring): ``values[i]`` is the value of the layout's i-th sample, families in
    order and samples in order within each. ``metrics`` stays empty; everything else is as in
    ``Batch``."""

    schema_version: Literal[2] = COMPACT_SCHEMA_VERSION  # type: ignore[assignment]
    metrics: Annotated[list[MetricFamily], Field(max_length=0)] = Field(default_factory=list)
    layout: Annotated[str, StringConstraints(pattern=LAYOUT_KEY_RE.pattern)] = Field(
        description="The layout key from the acknowledgement of an earlier batch of the node."
    )
    values: Annotated[list[FiniteFloat], Field(max_length=MAX_SAMPLES_PER_BATCH)]

    def sample_count(self) -> int:
        return len(self.values)


class RefusedSeries(_Wire):
    """Series of one metric family that the server did not store from an accepted batch.

    The rest of the batch is stored: a node past its active-series limit keeps its known series
    flowing and loses only the new ones, counted here per family and reason.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    metric: str
    series: int = Field(ge=1, description="How many of the family's series were not stored.")
    reason: str = Field(description="Stable code, e.g. cardinality_limit.")


class Ack(_Wire):
    """The server's answer to an accepted (or already accepted) batch."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    status: Literal["accepted", "duplicate"]
    seq: int
    samples: int = 0
    refused: list[RefusedSeries] = Field(
        default_factory=list,
        description="Series of this batch the server refused (the others are stored).",
    )
    bench: BenchOrder | None = Field(
        default=None,
        description="This node's open benchmark request, if any (agent.wire.bench).",
    )
    layout: str | None = Field(
        default=None,
        description=(
            "The layout key of this batch's series, when the agent asked for one and the "
            "server keeps it: later batches with the same families and label sets may be "
            "sent as a CompactBatch with this key."
        ),
    )


_CHECKED_NAME_SETS: set[tuple[str, ...]] = set()
_CHECKED_NAME_SETS_MAX = 4096


def _refuse_reserved(labels: dict[str, str]) -> None:
    # The same few label-name tuples repeat in every batch: remember the ones already checked
    # (bounded), which halves the cost of decoding a batch on the server.
    names = tuple(labels)
    if names in _CHECKED_NAME_SETS:
        return
    for name in names:
        if name in RESERVED_LABELS or name.startswith("__"):
            raise ValueError(f"label name {name!r} is reserved for the server")
    if len(_CHECKED_NAME_SETS) < _CHECKED_NAME_SETS_MAX:
        _CHECKED_NAME_SETS.add(names)
