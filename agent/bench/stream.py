"""The benchmark worker's stream: one JSON object per line on its stdout, and its decoding.

Stage: ``worker`` (harness -> lines) -> pipe -> ``workers`` (lines -> events) -> ``job``. In
order, a worker writes::

    {"event": "plan", "total": 12, "backend": "torch", "note": "", "devices": [{...}]}
    {"event": "start", "device": 0, "test": "matmul_fp32"}       one per test, before it runs
    {"event": "result", "result": {...}}                           one per ``BenchResult``
    {"event": "run", "run": {...}}                                 the ``RunResult``, last

or, when the request cannot run here (no such device, backend missing), one
``{"event": "refused", "message": "..."}`` and exit status 2. ``Exited`` is not written: the
seam adds it when the worker's stream ends, with its exit status. The pipe is a boundary, so
lines are validated (pydantic over the result dataclasses); a bad line is ``StreamError``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agent.bench.backend import Device
from agent.bench.result import BenchResult, RunResult


@dataclass(frozen=True)
class Planned:
    total: int  # results the run will record
    backend: str
    note: str
    devices: tuple[Device, ...]


@dataclass(frozen=True)
class Started:
    device: int
    test: str


@dataclass(frozen=True)
class Finished:
    result: BenchResult


@dataclass(frozen=True)
class Completed:
    run: RunResult


@dataclass(frozen=True)
class Refused:
    """The request cannot run here; nothing ran."""

    message: str


@dataclass(frozen=True)
class Exited:
    """The worker ended: ``code`` is its exit status (negative: killed by that signal, as
    ``subprocess`` reports it); ``detail`` says what it left (its last stderr lines)."""

    code: int
    detail: str = ""


WorkerEvent = Planned | Started | Finished | Completed | Refused | Exited


class StreamError(ValueError):
    """A line is not one the worker writes."""


def encode(event: Planned | Started | Finished | Completed | Refused) -> str:
    """Returns: the event as one line of JSON (no newline)."""
    tree: dict[str, Any]
    if isinstance(event, Planned):
        devices = [dataclasses.asdict(d) for d in event.devices]
        tree = {"event": "plan", "total": event.total, "backend": event.backend}
        tree |= {"note": event.note, "devices": devices}
    elif isinstance(event, Started):
        tree = {"event": "start", "device": event.device, "test": event.test}
    elif isinstance(event, Finished):
        tree = {"event": "result", "result": event.result.to_dict()}
    elif isinstance(event, Completed):
        tree = {"event": "run", "run": event.run.to_dict()}
    else:
        tree = {"event": "refused", "message": event.message}
    return json.dumps(tree, allow_nan=False, separators=(",", ":"))


def decode(line: str) -> Planned | Started | Finished | Completed | Refused:
    """Returns: the event one line holds. Raises: StreamError."""
    try:
        tree = json.loads(line)
        kind = tree["event"] if isinstance(tree, dict) else None
        if kind == "plan":
            devices = _adapter(tuple[Device, ...]).validate_python(tree["devices"])
            return Planned(int(tree["total"]), str(tree["backend"]), str(tree["note"]), devices)
        if kind == "start":
            return Started(int(tree["device"]), str(tree["test"]))
        if kind == "result":
            return Finished(_adapter(BenchResult).validate_python(tree["result"]))
        if kind == "run":
            return Completed(_adapter(RunResult).validate_python(tree["run"]))
        if kind == "refused":
            return Refused(str(tree["message"]))
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise StreamError(f"bad worker line ({exc}): {line[:200]!r}") from None
    raise StreamError(f"unknown worker line: {line[:200]!r}")


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)
