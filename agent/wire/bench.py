"""The wire contract of remote benchmark runs: the server's order, the agent's reports.

Both sides import this module, so a field is written once. The flow (DESIGN decision 9):

1. An admin asks the server (``POST /api/v1/bench/requests``); the server keeps one open
   request per node.
2. The server's answer to a node's push (``Ack.bench`` on ``/api/v1/ingest``,
   ``BulkAnswer.bench`` on the bulk route) carries that node's open request as a
   ``BenchOrder``; nodes need no inbound port. ``cancel`` set: stop it.
3. The agent runs it (``dcmon bench``'s job, compute in a subprocess) and reports with
   ``POST BENCH_REPORT_PATH`` (its node token): ``waiting`` (the GPUs are busy; it retries
   until the order expires), ``running`` with progress, then one final state, with the result
   tree (``BenchRun``) for ``done`` and, where some tests ran, ``failed``.

Unknown keys are ignored in both directions (a newer agent or server adds fields); every list
and string is bounded, so a report cannot grow without limit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BENCH_REQUESTS_PATH = "/api/v1/bench/requests"
BENCH_REPORT_PATH = "/api/v1/bench/requests/{request_id}/report"
BENCH_RESULTS_PATH = "/api/v1/bench/results"

Level = Literal["quick", "standard", "burn"]
ReportState = Literal["waiting", "running", "done", "failed", "refused", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "refused", "cancelled"})

MAX_DEVICES = 64
MAX_RESULTS_PER_DEVICE = 64
MAX_TEXT = 2048
MAX_ID = 64


class _Lenient(BaseModel):
    """Strict types, unknown keys ignored (forward compatible), immutable."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class BenchOrder(_Lenient):
    """A request for this node, in the reply to its push."""

    id: str = Field(min_length=1, max_length=MAX_ID)
    level: Level = "quick"
    gpus: list[int] | None = Field(default=None, max_length=MAX_DEVICES)  # None: every GPU
    duration_s: float | None = Field(default=None, gt=0, le=7 * 86400)  # the burn's duration
    force: bool = False
    expires_at: float = 0.0  # Unix seconds: not started after this
    cancel: bool = False  # the server asks the agent to stop (or never start) this request


class BenchProgress(_Lenient):
    done: int = Field(ge=0)
    total: int = Field(ge=0)
    test: str = Field(default="", max_length=MAX_ID)
    device: int | None = None


class Conditions(_Lenient):
    """What a GPU did during one test, sampled from NVML (absent on a CPU)."""

    samples: int = 0
    sm_clock_mhz: list[float] = Field(default_factory=list, max_length=3)  # min, median, max
    power_w: list[float] = Field(default_factory=list, max_length=3)
    temperature_c: list[float] = Field(default_factory=list, max_length=3)
    throttle_reasons: list[str] = Field(default_factory=list, max_length=32)


class Figure(_Lenient):
    """One test on one device (``agent.bench.result.BenchResult``)."""

    test: str = Field(max_length=MAX_ID)
    device: int
    status: str = Field(max_length=32)
    value: float | None = None
    unit: str = Field(default="", max_length=32)
    params: dict[str, int | float | str] = Field(default_factory=dict, max_length=32)
    duration_s: float = 0.0
    detail: str = Field(default="", max_length=MAX_TEXT)
    extra: dict[str, float] = Field(default_factory=dict, max_length=64)
    conditions: Conditions | None = None


class DeviceInfo(_Lenient):
    index: int
    name: str = Field(max_length=256)
    kind: str = Field(max_length=16)  # "cuda" or "cpu"
    uuid: str | None = Field(default=None, max_length=MAX_ID)  # NVML's, None on a CPU
    sku: str | None = Field(default=None, max_length=MAX_ID)  # the SKU table's key
    pci_bus_id: str | None = Field(default=None, max_length=MAX_ID)


class DeviceRun(_Lenient):
    device: DeviceInfo
    results: list[Figure] = Field(default_factory=list, max_length=MAX_RESULTS_PER_DEVICE)
    passed: bool = True


class Judgement(_Lenient):
    """One figure against its SKU's reference (``agent.wire.skus.Verdict``)."""

    device: int
    test: str = Field(max_length=MAX_ID)
    status: str = Field(max_length=16)  # pass, warn, fail, unjudged
    basis: str | None = Field(default=None, max_length=32)
    reference: float | None = None
    ratio: float | None = None
    reason: str = Field(default="", max_length=MAX_TEXT)


class CheckFinding(_Lenient):
    level: str = Field(max_length=16)  # fail, warn
    check: str = Field(max_length=MAX_ID)
    message: str = Field(max_length=MAX_TEXT)


class BenchRun(_Lenient):
    """The judged result tree ``dcmon bench --json`` prints."""

    level: str = Field(max_length=16)
    backend: str = Field(max_length=32)
    started_at: float
    duration_s: float
    passed: bool
    note: str = Field(default="", max_length=MAX_TEXT)
    devices: list[DeviceRun] = Field(default_factory=list, max_length=MAX_DEVICES)
    judgement: list[Judgement] = Field(
        default_factory=list, max_length=MAX_DEVICES * MAX_RESULTS_PER_DEVICE
    )
    checks: dict[str, list[CheckFinding]] = Field(default_factory=dict, max_length=MAX_DEVICES)


class BenchReport(_Lenient):
    """The agent's report on one request (POST ``BENCH_REPORT_PATH``)."""

    state: ReportState
    message: str = Field(default="", max_length=MAX_TEXT)
    progress: BenchProgress | None = None
    result: BenchRun | None = None
