"""The hint API's JSON: hints with their moves and evidence, a round's figures, the state
change body, and the flat export for schedulers (pydantic at the boundary only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.rebalancing.model import HintState, StoredHint
from server.rebalancing.service import RoundReport

MAX_NOTE_CHARS = 2000


class MoveOut(BaseModel):
    """Pod ``pod`` leaves ``from_node`` (its GPUs ``from_gpus``) for ``to_node`` on
    ``to_gpus``; ``to_node`` null: release the pod (suspend or requeue it)."""

    pod: str
    from_node: str
    from_gpus: list[int]
    to_node: str | None
    to_gpus: list[int]

    @classmethod
    def of(cls, action: dict[str, Any]) -> MoveOut:
        return cls.model_validate(action)


class EvidenceOut(BaseModel):
    """A value the hint rests on: the series, the window it covers (seconds; 0 for an event),
    the value and the bar it crossed."""

    series: str
    window_s: float | None
    value: float | None
    threshold: float | None = None
    node: str | None = None
    gpu: int | None = None
    pod: str | None = None


class SubjectOut(BaseModel):
    node: str | None
    gpu: int | None
    pod: str | None


class GainOut(BaseModel):
    gpus: float = Field(description="whole GPUs made usable")
    gpu_hours: float = Field(description="GPU-hours recovered over the engine's horizon")
    watts: float = Field(description="watts saved")


class CostOut(BaseModel):
    moves: int = Field(description="pods moved or released")
    restart_s: float = Field(description="restart time summed over them, seconds")


class HintSummaryOut(BaseModel):
    id: str
    kind: str
    state: HintState
    subject: SubjectOut
    remedy: str = Field(description="move, release, reduce_power or cordon")
    actions: list[MoveOut]
    gain: GainOut
    cost: CostOut
    confidence: float = Field(description="0..1")
    reason: str
    first_seen: float = Field(description="Unix seconds")
    last_seen: float = Field(description="Unix seconds: the last round that produced it")
    state_changed_at: float
    state_changed_by: str = Field(description="the token id that changed it, or 'engine'")
    note: str

    @classmethod
    def fields_of(cls, hint: StoredHint) -> dict[str, Any]:
        return {
            "id": hint.id,
            "kind": hint.kind,
            "state": hint.state,
            "subject": SubjectOut(node=hint.node, gpu=hint.gpu, pod=hint.pod),
            "remedy": hint.remedy,
            "actions": [MoveOut.of(a) for a in hint.actions],
            "gain": GainOut(
                gpus=hint.gain_gpus, gpu_hours=hint.gain_gpu_hours, watts=hint.gain_watts
            ),
            "cost": CostOut(moves=hint.cost_moves, restart_s=hint.cost_restart_s),
            "confidence": hint.confidence,
            "reason": hint.reason,
            "first_seen": hint.first_seen,
            "last_seen": hint.last_seen,
            "state_changed_at": hint.state_changed_at,
            "state_changed_by": hint.state_changed_by,
            "note": hint.note,
        }

    @classmethod
    def of(cls, hint: StoredHint) -> HintSummaryOut:
        return cls(**cls.fields_of(hint))


class HintOut(HintSummaryOut):
    evidence: list[EvidenceOut]

    @classmethod
    def of(cls, hint: StoredHint) -> HintOut:
        evidence = [EvidenceOut.model_validate(e) for e in hint.evidence]
        return cls(**cls.fields_of(hint), evidence=evidence)


class RoundOut(BaseModel):
    """This replica's latest round (rounds run on the leader only)."""

    at: float
    build_seconds: float
    engine_seconds: float
    nodes: int
    pods: int
    pending: int
    hints: int
    hints_by_kind: dict[str, int]
    added: int
    reopened: int
    expired: int

    @classmethod
    def of(cls, report: RoundReport) -> RoundOut:
        return cls(
            at=report.at,
            build_seconds=report.build_seconds,
            engine_seconds=report.engine_seconds,
            nodes=report.nodes,
            pods=report.pods,
            pending=report.pending,
            hints=report.hints,
            hints_by_kind=report.hints_by_kind,
            added=report.synced.added,
            reopened=report.synced.reopened,
            expired=report.synced.expired,
        )


class HintListOut(BaseModel):
    hints: list[HintSummaryOut]
    round: RoundOut | None = Field(description="this replica's latest round; null if none ran")
    rounds: int = Field(description="rounds this replica ran since it started")
    failed_rounds: int


class HintStateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["acknowledged", "dismissed", "applied"]
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)


class ExportMoveOut(BaseModel):
    pod: str
    action: Literal["move", "release"]
    from_node: str
    from_gpus: list[int]
    to_node: str | None = Field(description="null for a release")
    to_gpus: list[int]


class ExportHintOut(BaseModel):
    id: str
    kind: str
    remedy: str
    state: HintState
    node: str | None
    gpu: int | None
    pod: str | None
    confidence: float
    gain_gpus: float
    gain_gpu_hours: float
    gain_watts: float
    moves: list[ExportMoveOut]
    reason: str

    @classmethod
    def of(cls, hint: StoredHint) -> ExportHintOut:
        return cls(
            id=hint.id,
            kind=hint.kind,
            remedy=hint.remedy,
            state=hint.state,
            node=hint.node,
            gpu=hint.gpu,
            pod=hint.pod,
            confidence=hint.confidence,
            gain_gpus=hint.gain_gpus,
            gain_gpu_hours=hint.gain_gpu_hours,
            gain_watts=hint.gain_watts,
            moves=[
                ExportMoveOut(**a, action="release" if a["to_node"] is None else "move")
                for a in hint.actions
            ],
            reason=hint.reason,
        )


class ExportOut(BaseModel):
    version: Literal[1] = 1
    generated_at: float = Field(description="Unix seconds")
    hints: list[ExportHintOut]
