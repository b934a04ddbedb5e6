"""The bench API's bodies and answers (pydantic, at the boundary only). Times are Unix seconds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agent.wire.bench import MAX_DEVICES, Level
from server.bench.model import (
    DEFAULT_EXPIRES_IN_SECONDS,
    MAX_EXPIRES_IN_SECONDS,
    MIN_EXPIRES_IN_SECONDS,
    BenchRequest,
    Skipped,
)
from server.bench.requests import MAX_NODES_PER_REQUEST
from server.bench.results import DeviceRunView, FigureView

NodeName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)]
LabelValue = Annotated[str, StringConstraints(max_length=1024)]
GpuIndex = Annotated[int, Field(ge=0, lt=1024)]
RequestState = Literal[
    "pending", "waiting", "running", "done", "failed", "refused", "cancelled", "expired"
]
Verdict = Literal["pass", "warn", "fail", "unjudged"]


class BenchRequestsIn(BaseModel):
    """Benchmark these nodes: named, or matched by every label of ``selector``."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NODES_PER_REQUEST,
        description="Node names (or node ids); give this or selector",
    )
    selector: dict[LabelName, LabelValue] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Node labels that must all match (exact values); give this or nodes",
    )
    gpus: list[GpuIndex] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_DEVICES,
        description="Device indices (NVML's) to run on; default: every device",
    )
    level: Level = "quick"
    duration_s: float | None = Field(
        default=None, gt=0, le=7 * 86400, description="The burn's duration; default: the level's"
    )
    force: bool = Field(default=False, description="Run even while jobs use the GPUs")
    expires_in_s: float = Field(
        default=DEFAULT_EXPIRES_IN_SECONDS,
        ge=MIN_EXPIRES_IN_SECONDS,
        le=MAX_EXPIRES_IN_SECONDS,
        description="Not started within this long: the request expires",
    )

    @model_validator(mode="after")
    def _one_target(self) -> BenchRequestsIn:
        if (self.nodes is None) == (self.selector is None):
            raise ValueError("give either nodes or selector, not both or neither")
        if self.gpus is not None and len(set(self.gpus)) != len(self.gpus):
            raise ValueError("gpus lists a device twice")
        return self


class BenchProgressOut(BaseModel):
    done: int
    total: int
    test: str = ""
    device: int | None = None


class BenchRequestOut(BaseModel):
    id: str
    node: str
    node_id: str
    state: RequestState
    level: str
    gpus: list[int] | None
    duration_s: float | None
    force: bool
    created_at: float
    created_by: str
    expires_at: float
    updated_at: float
    started_at: float | None
    last_report_at: float | None
    finished_at: float | None
    cancel_requested: bool
    message: str
    progress: BenchProgressOut | None
    run_id: int | None = Field(default=None, description="The stored run of a final report")
    result: dict[str, Any] | None = Field(
        default=None,
        description="The stored result tree (agent.wire.bench.BenchRun: figures, the agent's "
        "judgement, health checks); on GET of one request only",
    )

    @classmethod
    def of(
        cls,
        request: BenchRequest,
        run_id: int | None = None,
        result: dict[str, Any] | None = None,
    ) -> BenchRequestOut:
        progress = None
        if request.progress is not None:
            progress = BenchProgressOut.model_validate(request.progress)
        return cls(
            id=request.request_id,
            node=request.node_name,
            node_id=request.node_id,
            state=request.state,
            level=request.level,
            gpus=list(request.gpus) if request.gpus is not None else None,
            duration_s=request.duration_s,
            force=request.force,
            created_at=request.created_at,
            created_by=request.created_by,
            expires_at=request.expires_at,
            updated_at=request.updated_at,
            started_at=request.started_at,
            last_report_at=request.last_report_at,
            finished_at=request.finished_at,
            cancel_requested=request.cancel_requested,
            message=request.message,
            progress=progress,
            run_id=run_id,
            result=result,
        )


class BenchSkippedOut(BaseModel):
    node: str
    node_id: str
    reason: str
    open_request: str | None

    @classmethod
    def of(cls, skipped: Skipped) -> BenchSkippedOut:
        return cls(
            node=skipped.node,
            node_id=skipped.node_id,
            reason=skipped.reason,
            open_request=skipped.open_request,
        )


class BenchRequestsCreated(BaseModel):
    created: list[BenchRequestOut]
    skipped: list[BenchSkippedOut] = Field(description="Nodes left out: they have an open request")


class BenchRequestList(BaseModel):
    requests: list[BenchRequestOut]


class BenchReportAnswer(BaseModel):
    id: str
    state: RequestState
    cancel: bool = Field(description="An admin asked to stop this request")


class BenchFleetVerdictOut(BaseModel):
    """A figure against its SKU's fleet; on a device's latest figure of each test only."""

    outlier: bool
    judged: bool = Field(description="False: too few devices of the SKU have this test")
    median: float | None
    ratio: float | None = Field(description="value / the fleet median")
    reason: str


class BenchFigureOut(BaseModel):
    run_id: int
    request_id: str | None
    level: str
    node: str
    node_id: str
    gpu: str = Field(description="The device key: NVML's UUID, or <node>/cpu<index>")
    gpu_index: int
    gpu_uuid: str | None
    device_name: str
    sku: str
    test: str
    value: float | None
    unit: str
    status: str
    verdict: Verdict
    basis: str | None
    reference: float | None
    ratio: float | None = Field(description="value / the SKU's reference")
    reason: str
    time: float = Field(description="The run's start, agent clock")
    fleet: BenchFleetVerdictOut | None = None

    @classmethod
    def of(cls, figure: FigureView, fleet: BenchFleetVerdictOut | None = None) -> BenchFigureOut:
        return cls(
            run_id=figure.run_id,
            request_id=figure.request_id,
            level=figure.level,
            node=figure.node_name,
            node_id=figure.node_id,
            gpu=figure.gpu_key,
            gpu_index=figure.gpu_index,
            gpu_uuid=figure.gpu_uuid,
            device_name=figure.device_name,
            sku=figure.sku,
            test=figure.test,
            value=figure.value,
            unit=figure.unit,
            status=figure.status,
            verdict=figure.verdict,
            basis=figure.basis,
            reference=figure.reference,
            ratio=figure.ratio,
            reason=figure.reason,
            time=figure.time,
            fleet=fleet,
        )


class BenchPeersOut(BaseModel):
    sku: str
    test: str
    count: int
    median: float
    scaled_mad: float
    limit: float | None = Field(description="Below this a device is an outlier; None: too few")


class BenchResultsOut(BaseModel):
    results: list[BenchFigureOut]
    fleet: list[BenchPeersOut]


class BenchDeviceRunOut(BaseModel):
    run_id: int
    request_id: str | None
    node: str
    gpu: str
    gpu_index: int
    gpu_uuid: str | None
    kind: str
    device_name: str
    sku: str
    level: str
    passed: bool
    time: float

    @classmethod
    def of(cls, run: DeviceRunView) -> BenchDeviceRunOut:
        return cls(
            run_id=run.run_id,
            request_id=run.request_id,
            node=run.node_name,
            gpu=run.gpu_key,
            gpu_index=run.gpu_index,
            gpu_uuid=run.gpu_uuid,
            kind=run.kind,
            device_name=run.device_name,
            sku=run.sku,
            level=run.level,
            passed=run.passed,
            time=run.time,
        )


class BenchHistoryOut(BaseModel):
    gpu: str
    runs: list[BenchDeviceRunOut]
    figures: list[BenchFigureOut]


class BenchFleetFigureOut(BaseModel):
    gpu: str
    node: str
    gpu_index: int
    sku: str
    test: str
    value: float
    unit: str
    time: float
    fleet: BenchFleetVerdictOut


class BenchFleetOut(BaseModel):
    groups: list[BenchPeersOut]
    gpus: list[BenchFleetFigureOut] = Field(
        description="Each device's latest figure per test, judged"
    )
