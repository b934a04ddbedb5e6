"""Stored hints: their lifecycle states, the stored view, filters and the domain errors.

Stage: rebalancing (server). A hint of the engine (``server.hints.hint.Hint``) is stored under
its content id; the same advice on the same state keeps that id from round to round, so the
operator's decision follows it. States:

    new ──> acknowledged ──> applied
     │           │
     ├───────────┴──> dismissed
     └───────────┴──> expired  (no round produced it for ``hints_expire_rounds`` rounds, or
                                 for ``hints_ttl_seconds``)

``new`` and ``acknowledged`` are open: the advice stands. ``dismissed``, ``applied`` and
``expired`` have ended. A hint the engine produces again keeps its state, with two returns to
``new``: an expired hint produced again (the situation is back), and a dismissed or applied
hint produced again once ``hints_dismiss_seconds`` / ``hints_applied_seconds`` have passed
since the operator's decision.

Errors (raised by the store and service, mapped to HTTP once in ``router.py``)::

    HintError
     ├── HintNotFoundError      no hint with that id (404)
     └── HintStateError         a state the caller may not set, or no change from an ended one (409)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class HintState(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"
    APPLIED = "applied"
    EXPIRED = "expired"


OPEN_STATES = frozenset({HintState.NEW, HintState.ACKNOWLEDGED})
ENDED_STATES = frozenset({HintState.DISMISSED, HintState.APPLIED, HintState.EXPIRED})
SETTABLE_STATES = frozenset({HintState.ACKNOWLEDGED, HintState.DISMISSED, HintState.APPLIED})
"""What an operator or scheduler may set; ``new`` and ``expired`` are the server's to set."""
ENGINE = "engine"
"""``state_changed_by`` of a change the rounds made (new, expired, reopened)."""


class HintError(Exception):
    """A hint request the store refuses."""


class HintNotFoundError(HintError):
    pass


class HintStateError(HintError):
    """A change of state that is not allowed from the hint's current state."""


@dataclass(frozen=True)
class StoredHint:
    """A hint as stored: the engine's content, when it was seen, and its lifecycle.

    Gains: whole GPUs made usable, GPU-hours over the engine's horizon, watts; cost: moves and
    restart seconds summed. Times are Unix seconds on the server's clock. ``missed_rounds``:
    rounds in a row that did not produce it.
    """

    id: str
    kind: str
    node: str | None
    gpu: int | None
    pod: str | None
    remedy: str
    actions: tuple[dict[str, Any], ...]
    evidence: tuple[dict[str, Any], ...]
    gain_gpus: float
    gain_gpu_hours: float
    gain_watts: float
    cost_moves: int
    cost_restart_s: float
    confidence: float
    reason: str
    first_seen: float
    last_seen: float
    missed_rounds: int
    state: HintState
    state_changed_at: float
    state_changed_by: str
    note: str

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class HintFilter:
    """What ``GET /api/v1/hints`` asks for; ``None`` is no condition.

    ``states`` empty: the open states. ``node`` matches the subject's node or any move's source
    or target; ``pod`` the subject's pod or any moved pod. ``min_*`` are lower bounds on the
    gain, all of them must hold.
    """

    kind: str | None = None
    node: str | None = None
    pod: str | None = None
    states: frozenset[HintState] = field(default_factory=frozenset)
    min_gpus: float | None = None
    min_gpu_hours: float | None = None
    min_watts: float | None = None
    limit: int = 100


@dataclass(frozen=True)
class Synced:
    """What one round changed in the store."""

    added: int = 0
    refreshed: int = 0
    reopened: int = 0
    expired: int = 0
