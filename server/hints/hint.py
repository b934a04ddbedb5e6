"""The hint: what to do, to what, why (evidence), what it gains, what it costs, how sure.

Stage: hints output. Each hint kind builds ``Hint`` values through ``make_hint``, which derives
the id from the content (kind, subject, remedy, actions), so the same advice on the same state
keeps its id from round to round and a lifecycle (acknowledged, dismissed) can follow it.

Actions are moves ``(pod, from node, to node, GPUs)``; a move to no node releases the pod
(suspend or requeue: its capacity is freed). dcmon advises; it never moves a job itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    DRAIN = "drain"
    RELIEVE_HOT = "relieve_hot"
    RECLAIM_IDLE = "reclaim_idle"
    DEFRAGMENT = "defragment"
    CONSOLIDATE = "consolidate"


class Remedy(StrEnum):
    """What the operator is asked to do; the moves say to what."""

    MOVE = "move"  # restart the pods on the named targets
    RELEASE = "release"  # suspend or requeue the pods, freeing their GPUs
    REDUCE_POWER = "reduce_power"  # lower the power limit or clocks in place (no target fits)
    CORDON = "cordon"  # take the GPU out of scheduling, then move what runs there


@dataclass(frozen=True)
class Subject:
    """What the hint is about: a node, a GPU of a node, or a pod."""

    node: str | None = None
    gpu: int | None = None
    pod: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.node is not None:
            parts.append(self.node if self.gpu is None else f"{self.node}/gpu{self.gpu}")
        if self.pod is not None:
            parts.append(f"pod {self.pod}")
        return " ".join(parts) or "cluster"


@dataclass(frozen=True)
class Move:
    """Pod ``pod`` leaves ``from_node`` (its GPUs ``from_gpus``) for ``to_node`` on ``to_gpus``.

    ``to_node`` None releases the pod.
    """

    pod: str
    from_node: str
    to_node: str | None
    from_gpus: tuple[int, ...] = ()
    to_gpus: tuple[int, ...] = ()

    @property
    def is_release(self) -> bool:
        return self.to_node is None


@dataclass(frozen=True)
class Evidence:
    """One value the hint rests on: the series, the window it covers, the value and the bar."""

    series: str
    window_s: float
    value: float
    threshold: float | None = None
    node: str | None = None
    gpu: int | None = None
    pod: str | None = None


@dataclass(frozen=True)
class Gain:
    """Expected gain: whole GPUs made usable, GPU-hours recovered, watts saved."""

    gpus_usable: float = 0.0
    gpu_hours: float = 0.0
    watts: float = 0.0


@dataclass(frozen=True)
class Cost:
    """Expected cost: pods moved or released, and restart time summed over them (seconds)."""

    moves: int = 0
    restart_s: float = 0.0


@dataclass(frozen=True)
class Hint:
    id: str
    kind: Kind
    subject: Subject
    remedy: Remedy
    actions: tuple[Move, ...]
    evidence: tuple[Evidence, ...]
    gain: Gain
    cost: Cost
    confidence: float
    reason: str

    @property
    def moved_pods(self) -> tuple[str, ...]:
        return tuple(m.pod for m in self.actions)


def hint_id(kind: Kind, subject: Subject, remedy: Remedy, actions: tuple[Move, ...]) -> str:
    """Returns: 16 hex digits of a SHA-256 over the hint's content (stable across rounds)."""
    text = "|".join(
        [
            kind.value,
            f"{subject.node}:{subject.gpu}:{subject.pod}",
            remedy.value,
            *(f"{m.pod}:{m.from_node}:{m.from_gpus}>{m.to_node}:{m.to_gpus}" for m in actions),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_hint(
    kind: Kind,
    subject: Subject,
    remedy: Remedy,
    actions: tuple[Move, ...],
    evidence: tuple[Evidence, ...],
    gain: Gain,
    restart_s: float,
    confidence: float,
    reason: str,
) -> Hint:
    """Returns: a hint with its content-derived id, its cost counted from its actions."""
    return Hint(
        id=hint_id(kind, subject, remedy, actions),
        kind=kind,
        subject=subject,
        remedy=remedy,
        actions=actions,
        evidence=evidence,
        gain=gain,
        cost=Cost(moves=len(actions), restart_s=restart_s),
        confidence=min(1.0, max(0.0, confidence)),
        reason=reason,
    )
