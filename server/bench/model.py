"""Benchmark requests as the server keeps them: states, bounds and the domain errors. Pure.

A request's life (``agent.wire.bench`` is the agent's side of it)::

    pending ──> waiting ──> running ──> done | failed | refused | cancelled
       │           │           │
       │           └───────────┴──> expired   (no start by expires_at; a silent agent)
       ├──> cancelled                          (an admin cancels it before the agent took it)
       └──> expired                            (not picked up by expires_at)

Open states are pending, waiting and running; a node has at most one open request. Cancelling
a waiting or running request only sets ``cancel_requested``: the order then carries
``cancel=True`` and the request ends when the agent reports ``cancelled`` (or another final
state that crossed the cancel), or expires.

**Expiry.** A pending or waiting request expires at its ``expires_at``. A running request
expires when the agent has sent no report for ``silence_bound_seconds(level, duration_s)``:
the longest a healthy agent can be quiet, which is one whole run of the level on every device
(the agent sends progress at most every few seconds, but a single test such as the burn can
run for its full duration without new progress) plus ``SILENCE_MARGIN_SECONDS``.

Errors (``BenchError`` and its subclasses; the router maps them to HTTP in one place)::

    BenchError
    ├── RequestNotFoundError      404: no such request
    ├── NotYourRequestError       403: a node reporting on another node's request
    ├── RequestClosedError        409: the request is already final or expired
    └── InvalidBenchRequestError  422: nodes unknown, nothing matched, a bad combination
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agent.wire.bench import MAX_DEVICES, BenchOrder

State = Literal[
    "pending", "waiting", "running", "done", "failed", "refused", "cancelled", "expired"
]
OPEN_STATES: frozenset[str] = frozenset({"pending", "waiting", "running"})
NOT_STARTED: frozenset[str] = frozenset({"pending", "waiting"})
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "refused", "cancelled", "expired"})

DEFAULT_EXPIRES_IN_SECONDS = 3600.0
MIN_EXPIRES_IN_SECONDS = 60.0
MAX_EXPIRES_IN_SECONDS = 7 * 86400.0
SILENCE_MARGIN_SECONDS = 300.0
# One whole run of each level on one device, generously (agent/bench/harness.py: quick is
# bounded to 60 s for all devices; standard runs ~10 timed tests of 10 s budgets plus a 30 s
# burn; burn runs a 10 s matmul then the burn, whose duration is added separately).
LEVEL_SECONDS_PER_DEVICE = {"quick": 60.0, "standard": 240.0, "burn": 60.0}
DEFAULT_BURN_SECONDS = {"quick": 2.0, "standard": 30.0, "burn": 60.0}
DEVICES_WHEN_ALL = 8


def silence_bound_seconds(level: str, duration_s: float | None, devices: int | None) -> float:
    """Returns: how long a running request may go without a report before it expires.

    Args:
        duration_s: the burn's duration asked for (None: the level's default).
        devices: how many devices the request names (None: every device, counted as
            ``DEVICES_WHEN_ALL``, the usual eight of a GPU node).
    """
    count = devices if devices is not None else DEVICES_WHEN_ALL
    per_device = LEVEL_SECONDS_PER_DEVICE.get(level, 240.0)
    burn = duration_s if duration_s is not None else DEFAULT_BURN_SECONDS.get(level, 60.0)
    if level == "quick":
        return per_device + count * burn + SILENCE_MARGIN_SECONDS
    return count * (per_device + burn) + SILENCE_MARGIN_SECONDS


class BenchError(Exception):
    """A benchmark request or report the server refuses; the message says why."""


class RequestNotFoundError(BenchError):
    pass


class NotYourRequestError(BenchError):
    pass


class RequestClosedError(BenchError):
    """The request is final or expired: the agent should stop reporting on it."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class InvalidBenchRequestError(BenchError):
    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems  # (location, message)


@dataclass(frozen=True)
class BenchRequest:
    """One request, as stored."""

    request_id: str
    node_id: str
    node_name: str
    state: str
    level: str
    gpus: tuple[int, ...] | None
    duration_s: float | None
    force: bool
    created_at: float
    created_by: str
    expires_at: float
    deadline_at: float
    updated_at: float
    started_at: float | None
    last_report_at: float | None
    finished_at: float | None
    cancel_requested: bool
    message: str
    progress: dict[str, Any] | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def order(self) -> BenchOrder:
        """Returns: the order the node's push answers carry while the request is open."""
        return BenchOrder(
            id=self.request_id,
            level=self.level,  # type: ignore[arg-type]  # stored from a Level
            gpus=list(self.gpus) if self.gpus is not None else None,
            duration_s=self.duration_s,
            force=self.force,
            expires_at=self.expires_at,
            cancel=self.cancel_requested,
        )


@dataclass(frozen=True)
class NewRequest:
    """What an admin asks for; the nodes are resolved by the store."""

    level: str
    gpus: tuple[int, ...] | None
    duration_s: float | None
    force: bool
    expires_in_s: float
    created_by: str

    def __post_init__(self) -> None:
        if self.gpus is not None and len(self.gpus) > MAX_DEVICES:
            raise InvalidBenchRequestError(f"at most {MAX_DEVICES} GPUs per request")


@dataclass(frozen=True)
class Skipped:
    """A node left out of a request: it already has an open one."""

    node: str
    node_id: str
    reason: str
    open_request: str | None = None


@dataclass(frozen=True)
class Created:
    created: tuple[BenchRequest, ...]
    skipped: tuple[Skipped, ...]
